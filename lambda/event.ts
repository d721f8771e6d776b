// zod/mini: the same schemas at a twentieth of the bundle size (cold start).
import * as z from 'zod/mini';
import { parseDuration } from './duration.ts';
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
  /**
   * `keep-both`: an operator resolves conflicts of the named lines: the new version of a file is
   * archived beside the old one (never over it), the manifest records both, then the line is
   * dismantled. Only with `ids`. Default `fail`: a conflict keeps the line.
   */
  readonly onConflict: 'fail' | 'keep-both';
  /** A hard deadline for the run, in seconds (the terminal's `--max-duration`). */
  readonly maxDurationSeconds: number | undefined;
  /** A grace period for this run, in seconds, instead of `MIN_AGE` (0: none). */
  readonly minAgeSeconds: number | undefined;
}

export const FULL_PASS: RunRequest = Object.freeze({
  dryRun: false,
  ids: undefined,
  archiveOnly: false,
  maxLines: undefined,
  onConflict: 'fail',
  maxDurationSeconds: undefined,
  minAgeSeconds: undefined,
});

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

/** The issues of a failed zod/mini parse, in words, each prefixed with the path of the field. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], root = '(payload)'): string {
  return issues
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : root}: ${describeIssue(issue)}`)
    .join('; ');
}

/** zod/mini carries no message catalogue: say what was wrong in words of our own. */
function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'unrecognized_keys':
      return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((key) => `"${key}"`).join(', ')}`;
    case 'invalid_type':
      return `expected ${issue.expected}`;
    case 'invalid_format':
      return `expected an ISO 8601 ${issue.format}`;
    case 'invalid_value':
      return `expected ${issue.values.map((value) => JSON.stringify(value)).join(' or ')}`;
    case 'too_small':
      if (issue.message !== 'Invalid input') return issue.message;
      return `must be ${issue.inclusive === false ? 'greater than' : 'at least'} ${String(issue.minimum)}`;
    case 'too_big':
      return issue.message !== 'Invalid input' ? issue.message : `must be at most ${String(issue.maximum)}`;
    default:
      return issue.message;
  }
}
