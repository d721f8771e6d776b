/**
 * The work message of fan-out mode: what the planner sends for one line and the worker reads
 * back, and its JSON body. Shared by the core (the planner encodes, the worker takes parsed
 * messages), the queue adapter and the wiring that reads an SQS batch.
 */
// zod/mini, as in event.ts: classic zod would add about 450 KB to the bundles (cold start).
import * as z from 'zod/mini';
import { EventError } from './errors.ts';
import { isLineId } from './ids.ts';
import { shownWhole } from './redact.ts';
import { describeIssues } from './zod-issues.ts';

/**
 * The body of one work message (fan-out mode): which line, for which run. Nothing else: no
 * secret, no line data (the worker reads the line itself, just before work).
 */
export interface WorkMessage {
  readonly lineId: string;
  /** The planner's run id: the worker's manifests, receipts and records carry it. */
  readonly runId: string;
  /** When the planner sent it (ISO 8601); dates the run's folder of line records. */
  readonly plannedAt: string;
  /** Archive without DELETE (a manual `archiveOnly` run). */
  readonly archiveOnly: boolean;
  /** An operator's `keep-both` resolution of conflicts (a manual run with ids); absent: fail. */
  readonly onConflict?: 'keep-both';
  /** The planner run's grace period in seconds, when its payload set one (0: none); absent: `MIN_AGE`. */
  readonly minAgeSeconds?: number;
  /** The planner's dismantle guard holds this line: archive it, keep it on the service; why. */
  readonly hold?: string;
}

/** SendMessageBatch takes at most this many entries. */
export const SQS_BATCH_LIMIT = 10;

const uuid = () => z.string().check(z.refine(isLineId, { message: 'must be a UUID' }));
const messageBody = z.strictObject({
  lineId: uuid(),
  runId: uuid(),
  plannedAt: z.optional(z.iso.datetime()),
  archiveOnly: z.optional(z.boolean()),
  onConflict: z.optional(z.literal('keep-both')),
  minAgeSeconds: z.optional(z.int().check(z.nonnegative())),
  hold: z.optional(z.string().check(z.minLength(1), z.maxLength(1000))),
});

/** The JSON body of a {@link WorkMessage}; `archiveOnly` only when set. */
export function encodeWorkMessage(message: WorkMessage): string {
  const { lineId, runId, plannedAt, archiveOnly, onConflict, minAgeSeconds, hold } = message;
  return JSON.stringify({
    lineId,
    runId,
    plannedAt,
    ...(archiveOnly ? { archiveOnly: true } : {}),
    ...(onConflict === undefined ? {} : { onConflict }),
    ...(minAgeSeconds === undefined ? {} : { minAgeSeconds }),
    ...(hold === undefined ? {} : { hold }),
  });
}

/**
 * Parses a message body. A body that is not the planner's JSON (hand-written, truncated, from
 * another producer) throws an {@link EventError} saying what is wrong; `plannedAt` may be
 * missing (a message sent by hand), and then defaults to `now`. The line id comes back in lower case.
 */
export function parseWorkMessage(body: string, now: () => number): WorkMessage {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new EventError(`message body is not JSON: ${JSON.stringify(shownWhole(body, 80))}`);
  }
  const parsed = messageBody.safeParse(json);
  if (!parsed.success) throw new EventError(`message body: ${describeIssues(parsed.error.issues, '(body)')}`);
  return {
    // Canonical, lower case (UUIDs are case-insensitive): the worker keys its lines, and their
    // holds, by it, and the gate asks by the id the line's document gives, lower case.
    lineId: parsed.data.lineId.toLowerCase(),
    runId: parsed.data.runId,
    plannedAt: parsed.data.plannedAt ?? new Date(now()).toISOString(),
    archiveOnly: parsed.data.archiveOnly ?? false,
    ...(parsed.data.onConflict === undefined ? {} : { onConflict: parsed.data.onConflict }),
    ...(parsed.data.minAgeSeconds === undefined ? {} : { minAgeSeconds: parsed.data.minAgeSeconds }),
    ...(parsed.data.hold === undefined ? {} : { hold: parsed.data.hold }),
  };
}
