// zod/mini: the same schemas at a twentieth of the bundle size (cold start).
import * as z from 'zod/mini';
import { FULL_PASS } from '../core/request.ts';
import type { RunRequest } from '../core/types.ts';
import { MAX_DISMANTLES_RANGE } from '../shared/contract.ts';
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
  // The dismantle guard for this run, instead of MAX_DISMANTLES_PER_RUN / MAX_DISMANTLE_SHARE.
  maxDismantles: z.optional(
    z.int().check(z.minimum(MAX_DISMANTLES_RANGE.min), z.maximum(MAX_DISMANTLES_RANGE.max)),
  ),
  maxDismantleShare: z.optional(z.number().check(z.positive(), z.maximum(1))),
});

/**
 * What an EventBridge rule with a schedule expression delivers (and the same envelope from
 * `aws.scheduler`), field by field. A scheduled event says nothing but "run": any other field,
 * or a `detail` that says something, is refused rather than read as a full pass.
 */
const scheduledEvent = z.strictObject({
  version: z.optional(z.string()),
  id: z.optional(z.string()),
  'detail-type': z.literal('Scheduled Event'),
  source: z.enum(['aws.events', 'aws.scheduler']),
  account: z.optional(z.string()),
  time: z.optional(z.string()),
  region: z.optional(z.string()),
  resources: z.optional(z.array(z.string())),
  detail: z.optional(z.strictObject({})),
});

/** The fields that make a payload claim to be a scheduled event. */
const SCHEDULED_MARKERS: readonly string[] = ['source', 'detail-type'];

/** The fields that ask for something: a manual pass's, and the audit's. */
const REQUEST_FIELDS: ReadonlySet<string> = new Set([...Object.keys(manualPayload.shape), 'audit']);

/**
 * Refuses a payload that is a scheduled event and a request at once: which was meant cannot be
 * told, and reading it as either may do what nobody asked (a full pass instead of a dry run).
 */
function refuseMixedShapes(record: Record<string, unknown>): void {
  const keys = Object.keys(record);
  const markers = keys.filter((key) => SCHEDULED_MARKERS.includes(key));
  const requested = keys.filter((key) => REQUEST_FIELDS.has(key));
  if (markers.length > 0 && requested.length > 0) {
    throw new EventError(
      `event: scheduled-event fields (${markers.join(', ')}) mixed with request fields (${requested.join(', ')}): send one or the other`,
    );
  }
}

/**
 * Parses the invocation payload: `{}` (what the schedule sends), nothing, or an exact scheduled
 * event is a full pass; anything else must be a valid manual payload. A payload that mixes the
 * two, or a scheduled event with any other field, is refused: an {@link EventError} names the
 * fields.
 */
export function parseEvent(event: unknown): RunRequest {
  if (event === undefined || event === null) return FULL_PASS;
  const record = objectOf(event);
  refuseMixedShapes(record);
  const markers = SCHEDULED_MARKERS.filter((key) => key in record);
  if (markers.length > 0) {
    const scheduled = scheduledEvent.safeParse(record);
    if (!scheduled.success) {
      throw new EventError(
        `event: has ${markers.join(' and ')} but is not a scheduled event: ${describeIssues(scheduled.error.issues)}`,
      );
    }
    return FULL_PASS;
  }
  const parsed = manualPayload.safeParse(record);
  if (!parsed.success) {
    throw new EventError(`event: ${describeIssues(parsed.error.issues)}`);
  }
  const { dryRun, ids, archiveOnly, maxLines, onConflict, maxDurationSeconds, minAge } = parsed.data;
  const { maxDismantles, maxDismantleShare } = parsed.data;
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
    ...(maxDismantles === undefined ? {} : { maxDismantles }),
    ...(maxDismantleShare === undefined ? {} : { maxDismantleShare }),
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
    refuseMixedShapes(event as Record<string, unknown>);
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

/** The payload as an object, or an {@link EventError} saying what it is instead. */
function objectOf(event: unknown): Record<string, unknown> {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) {
    throw new EventError(
      `event: expected an object, got ${Array.isArray(event) ? 'an array' : typeof event}`,
    );
  }
  return event as Record<string, unknown>;
}
