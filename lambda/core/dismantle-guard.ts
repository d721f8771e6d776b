import type { Config, DismantleLimits, RunRequest } from './types.ts';

/**
 * The dismantle guard, against mass deletions after a bad listing (rclone's `--max-delete`):
 * a cap on the lines one run may dismantle (`MAX_DISMANTLES_PER_RUN`), and a refusal to dismantle
 * anything in a run whose listing shows too large a share of finished lines at once
 * (`MAX_DISMANTLE_SHARE`), which is what a service bug or the wrong account looks like. A line the
 * guard holds is archived and verified as any other, and kept on the service: `held`, with the reason.
 */

/** Leave for one line's DELETE, claimed by the gate right before it issues a permit. */
export interface DismantleGuard {
  /** Takes one line's leave; undefined when it may be dismantled, otherwise why it is held. */
  claim(id: string): string | undefined;
}

/** A guard that holds nothing (archive-only runs, and tests). */
export const NO_GUARD: DismantleGuard = Object.freeze({ claim: () => undefined });

/**
 * Why the whole run holds its lines, from the listing's counts, or undefined when the share is
 * within `maxShare` (or the listing too short to judge, or not a listing: `ids`). Judged on the
 * lines still there: deleted lines a service keeps listing would otherwise dilute the share.
 */
export function shareHold(
  limits: DismantleLimits,
  listing: { readonly listed: number; readonly finished: number; readonly deleted?: number } | undefined,
): string | undefined {
  if (limits.maxShare === undefined || listing === undefined) return undefined;
  const { finished } = listing;
  const listed = listing.listed - (listing.deleted ?? 0);
  if (listed < limits.shareMinLines || finished / listed <= limits.maxShare) return undefined;
  const percent = (share: number) => `${Math.round(share * 1000) / 10}%`;
  return (
    `the listing shows ${finished} of ${listed} lines finished at once (${percent(finished / listed)}), ` +
    `more than MAX_DISMANTLE_SHARE (${percent(limits.maxShare)} of a listing of at least ${limits.shareMinLines} lines): ` +
    'nothing is dismantled in this run; archived only, kept on the service'
  );
}

/**
 * The guard of one run: every claim held with `held` (the share judged on the listing), else the
 * first `maxPerRun` claims go and every later one is held. A claim is taken right before a
 * permit, so a DELETE that then fails still used its leave: the cap bounds the DELETEs sent.
 */
export function dismantleGuard(limits: DismantleLimits, held: string | undefined): DismantleGuard {
  if (held !== undefined) return Object.freeze({ claim: () => held });
  const { maxPerRun } = limits;
  if (maxPerRun === undefined) return NO_GUARD;
  let claimed = 0;
  return Object.freeze({
    claim: () => {
      if (claimed >= maxPerRun) {
        return `MAX_DISMANTLES_PER_RUN (${maxPerRun}) reached: archived only, kept on the service; a later run dismantles it`;
      }
      claimed += 1;
      return undefined;
    },
  });
}

/** The guard's settings for a run: the event's, where it gives them, over the environment's. */
export function guardLimits(config: Config, request: RunRequest): DismantleLimits {
  return {
    ...config.dismantleGuard,
    maxPerRun: request.maxDismantles ?? config.dismantleGuard.maxPerRun,
    maxShare: request.maxDismantleShare ?? config.dismantleGuard.maxShare,
  };
}
