import { describe, expect, it } from 'vitest';
import {
  keepLineRecord,
  keepQueuedMarker,
  mayReplaceMarker,
  mayReplaceRecord,
  type QueuedMarker,
} from '../../../lambda/core/fanout-records.ts';
import type { LineRecord, LineResult } from '../../../lambda/core/types.ts';
import type { WriteCondition } from '../../../lambda/shared/ports/archive.ts';
import { FakeArchive } from '../../support/fakes.ts';

const LINE = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const RUN_ID = '0b7e4c1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b';
const PLANNED = new Date('2026-04-30T23:59:00.000Z');
const counts = { bytes: 10, uploaded: 1, reused: 0 };

/** One result of each kind a worker can record, by the name the table below uses. */
const base = { id: LINE, durationMs: 5 };
const RESULTS = {
  skipped: { ...base, outcome: 'skipped', reason: 'not found (404)', notFinished: true },
  waiting: { ...base, outcome: 'waiting', until: '2026-05-01T11:00:00.000Z' },
  failed: { ...base, outcome: 'failed', reason: 'GET answered 503', errorName: 'HttpStatusError' },
  archived: { ...base, outcome: 'archived', ...counts },
  pending: { ...base, outcome: 'pending', reason: 'DELETE taken (202)', ...counts },
  dismantled: { ...base, outcome: 'dismantled', ...counts },
  'failed, line gone': {
    ...base,
    outcome: 'failed',
    reason: 'the DELETE reply states other files',
    errorName: 'ConflictError',
    conflict: true,
    dismantled: true,
    ...counts,
  },
} satisfies Record<string, LineResult>;
type Kind = keyof typeof RESULTS;
const KINDS = Object.keys(RESULTS) as Kind[];
const result = (kind: Kind): LineResult => RESULTS[kind];
const record = (kind: Kind, messageId: string = kind): LineRecord => ({
  schemaVersion: 1,
  runId: RUN_ID,
  lineId: LINE,
  at: '2026-05-01T10:00:00.000Z',
  messageIds: [messageId],
  result: result(kind),
});

/**
 * Which record may replace which. Rows: the record there (`unreadable`: one this version cannot
 * read); columns, in the order of {@link KINDS}: the record to write. `y` replaces, `.` keeps.
 */
const MAY_REPLACE: Record<Kind | 'unreadable', string> = {
  //                   skipped waiting failed archived pending dismantled failed-gone
  skipped: /*       */ '. . . y y y y',
  waiting: /*       */ '. . . y y y y',
  failed: /*        */ '. . . y y y y',
  archived: /*      */ '. . . . y y y',
  pending: /*       */ '. . . . . y y',
  dismantled: /*    */ '. . . . . . y',
  'failed, line gone': '. . . . . . .',
  unreadable: /*    */ '. . . . . . .',
};

describe('mayReplaceRecord', () => {
  const rows = Object.entries(MAY_REPLACE).flatMap(([held, marks]) =>
    marks.split(' ').map((mark, column) => [held, KINDS[column] as Kind, mark === 'y'] as const),
  );

  it.each(rows)('over a %s record, a %s record replaces it: %s', (held, next, expected) => {
    const there = held === 'unreadable' ? undefined : result(held as Kind);

    expect(mayReplaceRecord(there, result(next))).toBe(expected);
  });
});

/** A fake archive where another worker's write lands right before each of this one's conditional writes. */
class RacedArchive extends FakeArchive {
  readonly conditions: WriteCondition[] = [];
  constructor(private readonly racers: LineRecord[]) {
    super();
  }
  override async writeLineRecordIf(
    runId: string,
    planned: Date,
    lineId: string,
    value: unknown,
    over: WriteCondition,
  ): Promise<boolean> {
    this.conditions.push(over);
    const racer = this.racers.shift();
    if (racer !== undefined) this.putJson(this.lineRecordKey(runId, planned, lineId), racer);
    return super.writeLineRecordIf(runId, planned, lineId, value, over);
  }
}

describe('keepLineRecord', () => {
  const key = new FakeArchive().lineRecordKey(RUN_ID, PLANNED, LINE);

  it('writes the record only where there is none (mustNotExist)', async () => {
    const archive = new RacedArchive([]);

    const outcome = await keepLineRecord(archive, record('dismantled'), PLANNED);

    expect(outcome).toBe('written');
    expect(archive.conditions).toEqual([{ mustNotExist: true }]);
    expect(archive.json(key)).toEqual(record('dismantled'));
  });

  it('does not write a skip over a dismantled record, and keeps that record as it is', async () => {
    const archive = new RacedArchive([]);
    archive.putJson(key, record('dismantled', 'first'));

    const outcome = await keepLineRecord(archive, record('skipped', 'copy'), PLANNED);

    expect(outcome).toBe('kept');
    expect(archive.conditions).toEqual([]);
    expect(archive.json(key)).toEqual(record('dismantled', 'first'));
  });

  it('reads again after a 412 and keeps the dismantled record another worker wrote after its look', async () => {
    const archive = new RacedArchive([record('dismantled', 'first')]);

    const outcome = await keepLineRecord(archive, record('skipped', 'copy'), PLANNED);

    expect(outcome).toBe('kept');
    expect(archive.conditions).toEqual([{ mustNotExist: true }]);
    expect(archive.json(key)).toEqual(record('dismantled', 'first'));
  });

  it('reads again after a failed condition and replaces a weaker record over the version it read (mustMatch)', async () => {
    const archive = new RacedArchive([record('skipped', 'copy')]);

    const outcome = await keepLineRecord(archive, record('dismantled', 'first'), PLANNED);

    expect(outcome).toBe('replaced');
    const [first, second] = archive.conditions;
    expect(first).toEqual({ mustNotExist: true });
    expect(second).toEqual({ mustMatch: expect.stringMatching(/^"etag-\d+"$/) });
    expect(archive.json(key)).toEqual(record('dismantled', 'first'));
  });

  it.each([
    ['not JSON', 'not json'],
    ['of a newer schema', JSON.stringify({ ...record('skipped'), schemaVersion: 2 })],
    ['with an outcome it does not know', JSON.stringify({ ...record('skipped'), result: { outcome: 'x' } })],
  ])('keeps a record it cannot read (%s)', async (_what, body) => {
    const archive = new RacedArchive([]);
    archive.put(key, body);

    const outcome = await keepLineRecord(archive, record('dismantled'), PLANNED);

    expect(outcome).toBe('kept');
    expect(archive.objects.get(key)?.bytes.toString()).toBe(body);
  });

  it('writes a dismantling that loses its first races to copies that got less far', async () => {
    const racers = [record('archived', 'a'), record('pending', 'b'), record('pending', 'c')];
    const archive = new RacedArchive([...racers]);

    const outcome = await keepLineRecord(archive, record('dismantled'), PLANNED);

    expect(outcome).toBe('replaced');
    expect(archive.conditions).toHaveLength(4);
    expect(archive.json(key)).toEqual(record('dismantled'));
  });

  it("keeps the discrepancy of a dismantling over a copy's plain dismantling written first", async () => {
    const archive = new FakeArchive();
    await keepLineRecord(archive, record('dismantled', 'copy'), PLANNED);

    const outcome = await keepLineRecord(archive, record('failed, line gone'), PLANNED);

    expect(outcome).toBe('replaced');
    expect(archive.json(key)).toEqual(record('failed, line gone'));
    expect(await keepLineRecord(archive, record('dismantled', 'late'), PLANNED)).toBe('kept');
  });

  it('gives up after three looks when every write of a record short of final loses a race', async () => {
    const racers = [record('pending', 'a'), record('pending', 'b'), record('pending', 'c')];
    const archive = new RacedArchive([...racers]);

    const outcome = await keepLineRecord(archive, record('archived'), PLANNED);

    expect(outcome).toBe('kept');
    expect(archive.json(key)).toEqual(racers[0]);
  });
});

describe('mayReplaceMarker', () => {
  const marker = (at: string): QueuedMarker => ({ runId: RUN_ID, at });

  it.each([
    ['an older marker', { lineId: LINE, runId: 'a', at: '2026-05-01T09:00:00.000Z' }, true],
    ['a marker of the same plan time', { lineId: LINE, runId: 'a', at: '2026-05-01T10:00:00.000Z' }, false],
    ['a newer marker', { lineId: LINE, runId: 'a', at: '2026-05-01T10:00:00.001Z' }, false],
    ['a marker with no time', { lineId: LINE, runId: 'a' }, true],
    ['a marker whose time is not one', { lineId: LINE, runId: 'a', at: 'soon' }, true],
    ['something that is not a marker', 'not json', true],
  ])('over %s: %s', (_what, held, expected) => {
    expect(mayReplaceMarker(held, marker('2026-05-01T10:00:00.000Z'))).toBe(expected);
  });
});

describe('keepQueuedMarker', () => {
  const key = new FakeArchive().queuedMarkerKey(LINE);
  const older = { runId: 'older-run', at: '2026-05-01T09:00:00.000Z' };
  const newer = { runId: 'newer-run', at: '2026-05-01T10:00:00.000Z' };

  it('marks a line that has no marker (mustNotExist)', async () => {
    const archive = new FakeArchive();

    expect(await keepQueuedMarker(archive, LINE, newer)).toBe('written');
    expect(archive.json(key)).toEqual({ lineId: LINE, ...newer });
  });

  it("replaces an older run's marker over its ETag", async () => {
    const archive = new FakeArchive();
    archive.putJson(key, { lineId: LINE, ...older });

    expect(await keepQueuedMarker(archive, LINE, newer)).toBe('replaced');
    expect(archive.json(key)).toEqual({ lineId: LINE, ...newer });
  });

  it('keeps the marker of a run planned later than this one', async () => {
    const archive = new FakeArchive();
    archive.putJson(key, { lineId: LINE, ...newer });

    expect(await keepQueuedMarker(archive, LINE, older)).toBe('kept');
    expect(archive.json(key)).toEqual({ lineId: LINE, ...newer });
  });
});
