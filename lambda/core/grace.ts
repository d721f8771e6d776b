import { shownWhole } from '../shared/redact.ts';

/** ISO 8601 in UTC as the service writes it: `2024-03-19T12:57:48.270Z` (milliseconds optional). */
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

/** Whether a finished line is old enough for the grace period (`MIN_AGE`) of this run. */
export type Age =
  | { readonly kind: 'old-enough' }
  /** Finished less than the grace period ago: left for a run at or after `until`. */
  | { readonly kind: 'waiting'; readonly until: string }
  /** No readable `timestamps.finished` while a grace period is set: kept, with the reason. */
  | { readonly kind: 'unknown'; readonly reason: string };

/**
 * Judges a line's `timestamps.finished` against the grace period. Without one every line is old
 * enough, whatever its timestamps; with one, a line whose finish time cannot be read is not
 * taken (it might have finished a moment ago).
 */
export function judgeAge(finishedAt: string | undefined, minAgeMs: number | undefined, now: number): Age {
  if (minAgeMs === undefined) return { kind: 'old-enough' };
  const finished = finishedAt !== undefined && ISO_UTC.test(finishedAt) ? Date.parse(finishedAt) : Number.NaN;
  if (Number.isNaN(finished)) {
    const shown = finishedAt === undefined ? 'none' : JSON.stringify(shownWhole(finishedAt, 40));
    return { kind: 'unknown', reason: `no readable timestamps.finished (${shown}) while MIN_AGE is set` };
  }
  const until = finished + minAgeMs;
  return until <= now ? { kind: 'old-enough' } : { kind: 'waiting', until: new Date(until).toISOString() };
}

/** The grace period of a run: the request's (seconds; 0 for none) over the configuration's. */
export function minAgeOf(
  requestSeconds: number | undefined,
  configMs: number | undefined,
): number | undefined {
  if (requestSeconds === undefined) return configMs;
  return requestSeconds === 0 ? undefined : requestSeconds * 1000;
}
