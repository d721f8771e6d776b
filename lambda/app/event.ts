// zod/mini: the same schemas at a twentieth of the bundle size (cold start).
import * as z from 'zod/mini';
import { FULL_PASS } from '../core/request.ts';
import type { RunRequest } from '../core/types.ts';
import { parseDuration } from '../shared/duration.ts';
import { EventError } from '../shared/errors.ts';
import { isLineId } from '../shared/ids.ts';
import { describeIssues } from '../shared/zod-issues.ts';

/** A non-empty list of line ids. */
function lineIds(emptyMessage: string) {
  return z
    .array(z.string().check(z.refine(isLineId, { message: 'must be a UUID' })))
    .check(z.minLength(1, { message: emptyMessage }), z.maxLength(1000));
}

const manualPayload = z.strictObject({
  dryRun: z.optional(z.boolean()),
  ids: z.optional(lineIds('must name at least one line (omit it for a full pass)')),
  archiveOnly: z.optional(z.boolean()),
  maxLines: z.optional(z.int().check(z.positive())),
  onConflict: z.optional(z.enum(['fail', 'keep-both'])),
  maxDurationSeconds: z.optional(z.int().check(z.positive(), z.maximum(7 * 24 * 3600))),
  // Seconds, or a duration such as "30m", "24h", "7d".
  minAge: z.optional(z.union([z.int().check(z.nonnegative()), z.string()])),
});

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
  const { dryRun, ids, archiveOnly, maxLines, onConflict, maxDurationSeconds, minAge } = parsed.data;
  const minAgeSeconds = typeof minAge === 'string' ? parseDuration(minAge, { allowZero: true }) : minAge;
  if (typeof minAge === 'string' && minAgeSeconds === undefined) {
    throw new EventError(
      `event: minAge: expected seconds or a duration such as 30m, 24h, 7d, got ${JSON.stringify(minAge)}`,
    );
  }
  if (onConflict === 'keep-both' && ids === undefined) {
    throw new EventError(
      'event: onConflict: "keep-both" resolves the conflicts of named lines only: give ids',
    );
  }
  return Object.freeze({
    dryRun: dryRun ?? false,
    ids: ids === undefined ? undefined : uniqueIds(ids),
    archiveOnly: archiveOnly ?? false,
    maxLines,
    onConflict: onConflict ?? 'fail',
    maxDurationSeconds,
    minAgeSeconds,
  });
}

/** What an invocation asks for: a housekeeping pass, or an audit of the archive. */
export type Invocation =
  | { readonly kind: 'pass'; readonly request: RunRequest }
  | { readonly kind: 'audit'; readonly ids: readonly string[] | undefined };

const auditPayload = z.strictObject({
  audit: z.literal(true),
  ids: z.optional(lineIds('must name at least one line (omit it to audit every line)')),
});

/**
 * Parses any invocation payload: `{"audit": true, "ids"?: [...]}` is an audit (read-only),
 * anything else goes through {@link parseEvent}.
 */
export function parseInvocation(event: unknown): Invocation {
  if (typeof event === 'object' && event !== null && !Array.isArray(event) && 'audit' in event) {
    const parsed = auditPayload.safeParse(event);
    if (!parsed.success) throw new EventError(`event: ${describeIssues(parsed.error.issues)}`);
    return { kind: 'audit', ids: parsed.data.ids === undefined ? undefined : uniqueIds(parsed.data.ids) };
  }
  return { kind: 'pass', request: parseEvent(event) };
}

/** Ids in lower case (UUIDs are case-insensitive), each once, in order. */
function uniqueIds(ids: readonly string[]): string[] {
  return [...new Set(ids.map((id) => id.toLowerCase()))];
}
