import { z } from 'zod';
import { EventError } from './errors.ts';
import { isLineId } from './tokens-line.ts';

/** What one invocation is asked to do, after parsing. */
export interface RunRequest {
  /** List and plan only: nothing is written to S3 and nothing is deleted. */
  readonly dryRun: boolean;
  /** Restrict the pass to these lines, read by id (no full listing). */
  readonly ids: readonly string[] | undefined;
  /** Archive, but do not send DELETE. */
  readonly archiveOnly: boolean;
  /** Start at most this many lines; the rest are deferred to the next run. */
  readonly maxLines: number | undefined;
}

export const FULL_PASS: RunRequest = Object.freeze({
  dryRun: false,
  ids: undefined,
  archiveOnly: false,
  maxLines: undefined,
});

const manualPayload = z
  .object({
    dryRun: z.boolean().optional(),
    ids: z
      .array(z.string().refine(isLineId, { message: 'must be a UUID' }))
      .min(1, { message: 'must name at least one line (omit it for a full pass)' })
      .max(1000)
      .optional(),
    archiveOnly: z.boolean().optional(),
    maxLines: z.number().int().positive().optional(),
  })
  .strict();

/** The shape of an EventBridge (rule or Scheduler) scheduled event. */
function isScheduledEvent(value: Record<string, unknown>): boolean {
  return (
    (value.source === 'aws.events' || value.source === 'aws.scheduler') &&
    typeof value['detail-type'] === 'string'
  );
}

/**
 * Parses the invocation payload: a scheduled event, `{}` or nothing is a full pass; anything
 * else must be a valid manual payload, or an {@link EventError} says what is wrong.
 */
export function parseEvent(event: unknown): RunRequest {
  if (event === undefined || event === null) return FULL_PASS;
  if (typeof event !== 'object' || Array.isArray(event)) {
    throw new EventError(
      `event: expected an object, got ${Array.isArray(event) ? 'an array' : typeof event}`,
    );
  }
  const record = event as Record<string, unknown>;
  if (isScheduledEvent(record)) return FULL_PASS;
  const parsed = manualPayload.safeParse(record);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const path = issue.path.length > 0 ? issue.path.join('.') : '(payload)';
      return `${path}: ${issue.message}`;
    });
    throw new EventError(`event: ${problems.join('; ')}`);
  }
  const { dryRun, ids, archiveOnly, maxLines } = parsed.data;
  return Object.freeze({
    dryRun: dryRun ?? false,
    ids: ids === undefined ? undefined : [...new Set(ids)],
    archiveOnly: archiveOnly ?? false,
    maxLines,
  });
}
