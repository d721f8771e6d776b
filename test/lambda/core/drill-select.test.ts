import { describe, expect, it } from 'vitest';
import {
  drawSample,
  nextDrillSince,
  RECENT_OVERLAP_MS,
  selectDrillLines,
} from '../../../lambda/core/drill-select.ts';
import type { DrillSettings } from '../../../lambda/core/types.ts';

const T0 = Date.parse('2026-05-01T00:00:00.000Z');
const HOUR = 3_600_000;

/** A line id whose number shows in it, so a test reads which line it is. */
const lineId = (n: number): string => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

/** `old` lines archived before T0 and `recent` lines an hour apart from T0 on, in a shuffled map. */
function archive(old: number, recent: number): Map<string, number> {
  const entries: [string, number][] = [];
  for (let n = 0; n < old; n += 1) entries.push([lineId(n), T0 - (n + 1) * HOUR]);
  for (let n = 0; n < recent; n += 1) entries.push([lineId(1000 + n), T0 + n * HOUR]);
  // The listing's order is the shards', not the times': never rely on it.
  return new Map(entries.reverse());
}

const seed = (n: number): Uint8Array => Buffer.alloc(32, n);
const settings = (over: Partial<DrillSettings> = {}): DrillSettings => ({
  sampleSize: 5,
  maxLines: 20,
  recentLines: true,
  ...over,
});

/** The selection from `archived` since `since`, drawn with seed `n`, the settings default but `over`. */
const select = (
  archived: Map<string, number>,
  since: number | undefined,
  n: number,
  over: Partial<DrillSettings> = {},
) => selectDrillLines({ archived, since, settings: settings(over), seed: seed(n) });

describe('selectDrillLines', () => {
  it('takes every line archived since the last drill, oldest first, then samples the others to fill the cap', () => {
    const archived = archive(50, 3);

    const selection = selectDrillLines({ archived, since: T0, settings: settings(), seed: seed(1) });

    expect(selection.recent).toEqual([lineId(1000), lineId(1001), lineId(1002)]);
    expect(selection.sampled).toHaveLength(5);
    for (const id of selection.sampled) expect(archived.get(id)).toBeLessThan(T0);
    expect(selection.recentOverCap).toEqual([]);
  });

  it('never chooses more than maxLines: recent lines come first, the sample gets what is left', () => {
    const selection = select(archive(50, 8), T0, 2, { sampleSize: 5, maxLines: 10 });

    expect(selection.recent).toHaveLength(8);
    expect(selection.sampled).toHaveLength(2);
  });

  it('leaves the newest recent lines beyond the cap to the next drill, named, and samples none', () => {
    const selection = select(archive(50, 12), T0, 3, { sampleSize: 5, maxLines: 10 });

    expect(selection.recent).toEqual(Array.from({ length: 10 }, (_, n) => lineId(1000 + n)));
    expect(selection.recentOverCap).toEqual([lineId(1010), lineId(1011)]);
    expect(selection.sampled).toEqual([]);
  });

  it('counts a line archived exactly at `since` as recent', () => {
    const selection = select(new Map([[lineId(1), T0]]), T0, 4, { sampleSize: 0 });

    expect(selection.recent).toEqual([lineId(1)]);
  });

  it.each([
    ['no earlier drill said where recent lines start', undefined, true],
    ['recent lines are turned off', T0, false],
  ] as const)('takes no recent line when %s, and samples from all lines', (_case, since, recentLines) => {
    const selection = select(archive(3, 3), since, 5, { sampleSize: 6, recentLines });

    expect(selection.recent).toEqual([]);
    expect(selection.recentOverCap).toEqual([]);
    expect([...selection.sampled].sort()).toEqual([...archive(3, 3).keys()].sort());
  });

  it('never samples a recent line: the sample is drawn from the older lines only', () => {
    const selection = select(archive(2, 5), T0, 6, { sampleSize: 5, maxLines: 20 });

    expect([...selection.sampled].sort()).toEqual([lineId(0), lineId(1)]);
    expect(new Set([...selection.recent, ...selection.sampled]).size).toBe(7);
  });

  it('draws the same lines for the same seed whatever order the listing gave, and others for another seed', () => {
    const archived = archive(200, 0);
    const reordered = new Map([...archived].reverse());

    const first = selectDrillLines({ archived, since: undefined, settings: settings(), seed: seed(7) });
    const again = selectDrillLines({
      archived: reordered,
      since: undefined,
      settings: settings(),
      seed: seed(7),
    });
    const other = selectDrillLines({ archived, since: undefined, settings: settings(), seed: seed(8) });

    expect(again.sampled).toEqual(first.sampled);
    expect(other.sampled).not.toEqual(first.sampled);
  });
});

describe('drawSample', () => {
  it('draws distinct items, as many as asked or all there are', () => {
    const pool = Array.from({ length: 30 }, (_, n) => n);

    const some = drawSample(pool, 12, seed(9));
    const all = drawSample(pool, 50, seed(9));

    expect(new Set(some).size).toBe(12);
    expect([...all].sort((a, b) => a - b)).toEqual(pool);
    expect(drawSample(pool, 0, seed(9))).toEqual([]);
    expect(drawSample([], 3, seed(9))).toEqual([]);
  });

  it('gives every item the same chance: 10,000 draws of one of 10 each land within 15% of 1,000', () => {
    const pool = Array.from({ length: 10 }, (_, n) => n);
    const counts = new Array<number>(10).fill(0);

    for (let n = 0; n < 10_000; n += 1) {
      const key = Buffer.alloc(32);
      key.writeUInt32BE(n);
      const [drawn] = drawSample(pool, 1, key);
      counts[drawn as number] = (counts[drawn as number] ?? 0) + 1;
    }

    for (const count of counts) expect(Math.abs(count - 1000)).toBeLessThan(150);
  });
});

describe('nextDrillSince', () => {
  const archived = new Map([
    [lineId(1), T0 + HOUR],
    [lineId(2), T0 + 2 * HOUR],
    [lineId(3), T0 + 3 * HOUR],
  ]);
  const listedAt = T0 + 10 * HOUR;

  it.each([
    [
      'nothing was left: its listing or the newest line it found, whichever is earlier, less the overlap',
      T0,
      [],
      T0 + 3 * HOUR - RECENT_OVERLAP_MS,
    ],
    [
      'lines were left: the oldest of them, so the next drill takes them',
      T0,
      [lineId(3), lineId(2)],
      T0 + 2 * HOUR,
    ],
    [
      'the first drill left nothing: the newest line it found, less the overlap',
      undefined,
      [],
      T0 + 3 * HOUR - RECENT_OVERLAP_MS,
    ],
    [
      'drills closer together than the overlap: never before its own since',
      listedAt - 60_000,
      [],
      listedAt - 60_000,
    ],
  ] as const)('when %s', (_case, since, left, expected) => {
    expect(nextDrillSince({ archived, since, left, listedAt })).toBe(expected);
  });

  it('starts the next drill at its listing, less the overlap, when the archive is empty', () => {
    expect(nextDrillSince({ archived: new Map(), since: undefined, left: [], listedAt })).toBe(
      listedAt - RECENT_OVERLAP_MS,
    );
  });

  it("still takes a line archived just after a drill whose clock ran ahead of the archive's (a workstation's)", () => {
    // S3 dates the lines; a drill by hand (--write-report) dates its listing by its own clock,
    // here an hour fast. The listing is at T0 + 3 h by S3's clock; a line is archived a minute later.
    const fast = T0 + 3 * HOUR + 60_000 + HOUR;
    const since = nextDrillSince({ archived, since: T0, left: [], listedAt: fast });
    const later = new Map([...archived, [lineId(4), T0 + 3 * HOUR + 2 * 60_000]]);

    const next = selectDrillLines({ archived: later, since, settings: settings(), seed: seed(1) });

    expect(next.recent).toContain(lineId(4));
  });
});
