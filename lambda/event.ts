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
    throw new EventError(`event: ${describeIssues(parsed.error.issues)}`);
  }
  const { dryRun, ids, archiveOnly, maxLines } = parsed.data;
  return Object.freeze({
    dryRun: dryRun ?? false,
    ids: ids === undefined ? undefined : [...new Set(ids)],
    archiveOnly: archiveOnly ?? false,
    maxLines,
  });
}

/** What an invocation asks for: a housekeeping pass, or an audit of the archive. */
export type Invocation =
  | { readonly kind: 'pass'; readonly request: RunRequest }
  | { readonly kind: 'audit'; readonly ids: readonly string[] | undefined };

const auditPayload = z
  .object({
    audit: z.literal(true),
    ids: z
      .array(z.string().refine(isLineId, { message: 'must be a UUID' }))
      .min(1, { message: 'must name at least one line (omit it to audit every line)' })
      .max(1000)
      .optional(),
  })
  .strict();

/**
 * Parses any invocation payload: `{"audit": true, "ids"?: [...]}` is an audit (read-only),
 * anything else goes through {@link parseEvent}.
 */
export function parseInvocation(event: unknown): Invocation {
  if (typeof event === 'object' && event !== null && !Array.isArray(event) && 'audit' in event) {
    const parsed = auditPayload.safeParse(event);
    if (!parsed.success) throw new EventError(`event: ${describeIssues(parsed.error.issues)}`);
    return { kind: 'audit', ids: parsed.data.ids === undefined ? undefined : [...new Set(parsed.data.ids)] };
  }
  return { kind: 'pass', request: parseEvent(event) };
}

function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(payload)'}: ${issue.message}`)
    .join('; ');
}
