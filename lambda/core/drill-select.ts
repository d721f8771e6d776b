import { createHmac } from 'node:crypto';
import type { DrillSettings } from './types.ts';

/**
 * Which archived lines a restore drill audits: every line archived since the last drill (oldest
 * first), then a random sample of the others, together at most `maxLines`; and where the next
 * drill's recent lines start, so a line left over is never dropped.
 */

/**
 * How far before its own listing a drill says the next one starts: a manifest whose write was in
 * flight while the archive was listed (S3 dates an object by its request), or an S3 clock a little
 * behind the function's, is still taken by the next drill. A few lines may be audited twice.
 */
export const RECENT_OVERLAP_MS = 5 * 60_000;

/** The lines one drill audits, in the order it audits them: `recent`, then `sampled`. */
export interface DrillSelection {
  /** Lines archived at or after `since`, oldest first, up to `maxLines`. */
  readonly recent: readonly string[];
  /** Lines drawn at random from the archived lines that are not recent, filling up to `maxLines`. */
  readonly sampled: readonly string[];
  /** Recent lines beyond `maxLines`, oldest first: not audited now, left to the next drill. */
  readonly recentOverCap: readonly string[];
}

/**
 * Chooses a drill's lines. `archived` maps each archived line to when it was last archived or
 * dismantled (ms); `since` is where recent lines start (undefined: no recent lines, as when no
 * earlier drill said where). Recent lines come first, up to the cap; the sample fills what is
 * left of it, drawn from the other lines by `seed`.
 */
export function selectDrillLines(input: {
  readonly archived: ReadonlyMap<string, number>;
  readonly since: number | undefined;
  readonly settings: DrillSettings;
  readonly seed: Uint8Array;
}): DrillSelection {
  const { archived, since, settings } = input;
  const recentAll =
    !settings.recentLines || since === undefined
      ? []
      : [...archived]
          .filter(([, at]) => at >= since)
          .sort(([a, at], [b, bt]) => at - bt || a.localeCompare(b))
          .map(([id]) => id);
  const recent = recentAll.slice(0, settings.maxLines);
  const isRecent = new Set(recentAll);
  // Sorted, so that a seed draws the same lines from the same archive whatever the listing order.
  const pool = [...archived.keys()].filter((id) => !isRecent.has(id)).sort();
  const room = Math.max(0, settings.maxLines - recent.length);
  return {
    recent,
    sampled: drawSample(pool, Math.min(settings.sampleSize, room), input.seed),
    recentOverCap: recentAll.slice(settings.maxLines),
  };
}

/**
 * Where the next drill's recent lines start: at the oldest recent line this drill left (beyond
 * the cap, or not reached before its deadline), so the next drill takes it; when it left none,
 * at this drill's listing less {@link RECENT_OVERLAP_MS}, or at the newest line it found less the
 * same when that is earlier: the listing is dated by the drill's clock and the lines by S3's, and
 * a drill by hand on a workstation whose clock runs ahead would otherwise put the next drill's
 * start past lines S3 dates after this listing. Never before this drill's own `since`.
 */
export function nextDrillSince(input: {
  readonly archived: ReadonlyMap<string, number>;
  readonly since: number | undefined;
  /** Recent lines this drill did not audit. */
  readonly left: Iterable<string>;
  /** When this drill started listing the archive. */
  readonly listedAt: number;
}): number {
  let oldestLeft: number | undefined;
  for (const id of input.left) {
    const at = input.archived.get(id);
    if (at !== undefined && (oldestLeft === undefined || at < oldestLeft)) oldestLeft = at;
  }
  if (oldestLeft !== undefined) return oldestLeft;
  let newest: number | undefined;
  for (const at of input.archived.values()) newest = Math.max(newest ?? at, at);
  const listed = Math.min(input.listedAt, newest ?? input.listedAt);
  return Math.max(listed - RECENT_OVERLAP_MS, input.since ?? Number.NEGATIVE_INFINITY);
}

/**
 * `count` distinct items of `pool` (all of them when it holds fewer), drawn uniformly at random by
 * `seed`: a partial Fisher-Yates shuffle. The same seed and pool always draw the same items.
 */
export function drawSample<T>(pool: readonly T[], count: number, seed: Uint8Array): T[] {
  const items = [...pool];
  const n = Math.max(0, Math.min(count, items.length));
  const below = seededIntegers(seed);
  for (let i = 0; i < n; i += 1) {
    const j = i + below(items.length - i);
    const chosen = items[j] as T;
    items[j] = items[i] as T;
    items[i] = chosen;
  }
  return items.slice(0, n);
}

/**
 * Integers uniform in `[0, bound)` from a seed: 32-bit words of HMAC-SHA256(seed, block number),
 * the words at or above the largest multiple of `bound` refused (they would favour the low values).
 * The seed comes from `crypto.randomBytes`, so a drill's choice cannot be guessed ahead of it.
 */
function seededIntegers(seed: Uint8Array): (bound: number) => number {
  let block = Buffer.alloc(0);
  let offset = 0;
  let blockNumber = 0;
  const word = (): number => {
    if (offset + 4 > block.length) {
      const counter = Buffer.alloc(8);
      counter.writeUInt32BE(blockNumber, 4);
      blockNumber += 1;
      block = createHmac('sha256', seed).update(counter).digest();
      offset = 0;
    }
    const value = block.readUInt32BE(offset);
    offset += 4;
    return value;
  };
  return (bound) => {
    const limit = Math.floor(2 ** 32 / bound) * bound;
    for (;;) {
      const value = word();
      if (value < limit) return value % bound;
    }
  };
}
