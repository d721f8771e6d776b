import type { Archive, Versioned, WriteCondition } from '../shared/ports/archive.ts';
import type { LineRecord, LineResult } from './types.ts';

/*
 * The fan-out's own records never go backwards. SQS delivers at least once and two workers may
 * hold copies of one message at the same time, so a record is written conditionally, as receipts
 * are: `mustNotExist` where there is none, `mustMatch` the version read for a replacement, and a
 * failed condition (another writer got there first) means read again and decide again.
 */

/** How a conditional record write ended. */
export type RecordWrite = 'written' | 'replaced' | 'kept' | 'contended';

/** Looks at the record before giving up: each lost race costs one. */
const LOOKS = 3;
/**
 * Looks for a final record (a dismantling), which must not be lost: only a record that got
 * further may replace another, so the writers it can lose races to are bounded (at most one per
 * step forward), and these looks outlast them.
 */
const FINAL_LOOKS = 8;

/**
 * How far a result says its line got in the run. A line that left the service by our DELETE is
 * final (a discrepancy recorded with it included); otherwise archived, then its DELETE taken,
 * are steps forward, and the rest (skipped, waiting, failed before any of that) says nothing was
 * done that a later attempt could undo.
 */
const STANDING: Readonly<Record<LineResult['outcome'], number>> = {
  planned: 0,
  waiting: 0,
  skipped: 0,
  failed: 0,
  archived: 1,
  held: 1,
  pending: 2,
  dismantled: 3,
};
/** A line that left the service by our DELETE: nothing that did less replaces its record. */
const FINAL = STANDING.dismantled;
/**
 * A dismantling whose confirmation disagreed with the archive (a discrepancy) says more than a
 * plain one: two copies of a message may both see the line go, only one of them the discrepancy.
 */
const FINAL_WITH_DISCREPANCY = FINAL + 1;

function standing(result: LineResult): number {
  return result.outcome === 'failed' && result.dismantled === true
    ? FINAL_WITH_DISCREPANCY
    : STANDING[result.outcome];
}

/**
 * Whether a worker's record of a line may replace the one there (`held`; undefined when it is not
 * a record this version reads, which is never replaced). Only a record that got further: a line
 * dismantled is final (but for the record of its discrepancy, which says more), and copies that got equally far keep the first word (they would otherwise
 * churn the record, and a dismantling could lose every race to them).
 */
export function mayReplaceRecord(held: LineResult | undefined, next: LineResult): boolean {
  if (held === undefined) return false;
  return standing(next) > standing(held);
}

/** The result of a stored line record this version reads, or undefined. */
function resultOf(value: unknown): LineResult | undefined {
  const record = value as Partial<LineRecord> | undefined;
  const outcome = (record?.result as { outcome?: unknown } | undefined)?.outcome;
  if (record?.schemaVersion !== 1 || typeof outcome !== 'string' || !Object.hasOwn(STANDING, outcome)) {
    return undefined;
  }
  return record.result;
}

/** What a planner stores in `{prefix}_queued/{id}.json` (besides the line id). */
export interface QueuedMarker {
  readonly runId: string;
  /** When the run was planned (ISO 8601). */
  readonly at: string;
}

/**
 * Whether a planner's marker may replace the one there (`held`, as stored): only one of a run
 * planned later. A marker with no readable time is replaced (it only spaces out sends; nothing is
 * lost with it).
 */
export function mayReplaceMarker(held: unknown, next: QueuedMarker): boolean {
  const at = (held as { at?: unknown } | undefined)?.at;
  const heldAt = typeof at === 'string' ? Date.parse(at) : Number.NaN;
  return Number.isNaN(heldAt) || Date.parse(next.at) > heldAt;
}

/** One conditionally written object: read with its version, write under a condition (false when it fails). */
interface Slot {
  read(): Promise<Versioned<unknown> | undefined>;
  write(over: WriteCondition): Promise<boolean>;
}

/**
 * Writes unless the object there is to be kept: where there is none (`mustNotExist`), else
 * over the one read (`mustMatch` its version) when `mayReplace` allows it; a failed condition sends it back to read and
 * decide again, at most {@link LOOKS} times. `lookFirst` reads before the first write, so a
 * store that ignores conditional headers cannot let it land on one to be kept.
 */
async function keep(
  slot: Slot,
  mayReplace: (held: unknown) => boolean,
  lookFirst: boolean,
  looks = LOOKS,
): Promise<RecordWrite> {
  for (let look = 0; look < looks; look += 1) {
    if (look === 0 && !lookFirst) {
      if (await slot.write({ mustNotExist: true })) return 'written';
      continue;
    }
    const held = await slot.read();
    if (held === undefined) {
      if (await slot.write({ mustNotExist: true })) return 'written';
      continue;
    }
    if (!mayReplace(held.value)) return 'kept';
    if (await slot.write({ mustMatch: held.version })) return 'replaced';
  }
  return 'contended';
}

/**
 * Keeps a worker's record of a line, never over one it may not replace ({@link mayReplaceRecord}).
 * A final record is written where there is none at once (the usual case: one request); any other
 * only after a look, so a store that ignores conditional headers (some S3-compatible ones do)
 * still does not let a copy's skip land on a dismantling written before it.
 */
export function keepLineRecord(archive: Archive, record: LineRecord, planned: Date): Promise<RecordWrite> {
  const { runId, lineId } = record;
  return keep(
    {
      read: () => archive.readLineRecordForUpdate(runId, planned, lineId),
      write: (over) => archive.writeLineRecordIf(runId, planned, lineId, record, over),
    },
    (held) => mayReplaceRecord(resultOf(held), record.result),
    standing(record.result) < FINAL,
    standing(record.result) < FINAL ? LOOKS : FINAL_LOOKS,
  );
}

/** Keeps a line's queued marker, never over one of a run planned later ({@link mayReplaceMarker}). */
export function keepQueuedMarker(
  archive: Archive,
  lineId: string,
  marker: QueuedMarker,
): Promise<RecordWrite> {
  return keep(
    {
      read: () => archive.readQueuedMarkerForUpdate(lineId),
      write: (over) => archive.writeQueuedMarkerIf(lineId, marker, over),
    },
    (held) => mayReplaceMarker(held, marker),
    false,
  );
}
