import { describe, expect, it } from 'vitest';
import { dismantleGuard, guardLimits, shareHold } from '../../../lambda/core/dismantle-guard.ts';
import { FULL_PASS } from '../../../lambda/core/request.ts';
import type { DismantleLimits } from '../../../lambda/core/types.ts';
import { testConfig } from '../../support/fakes.ts';

const NONE: DismantleLimits = { maxPerRun: undefined, maxShare: undefined, shareMinLines: 20 };

describe('dismantleGuard', () => {
  it('lets every line go when no cap is set', () => {
    const guard = dismantleGuard(NONE, undefined);

    expect(Array.from({ length: 1000 }, (_, i) => guard.claim(`line-${i}`))).toEqual(
      Array.from({ length: 1000 }, () => undefined),
    );
  });

  it('lets the first MAX_DISMANTLES_PER_RUN lines go and holds every later one, saying why', () => {
    const guard = dismantleGuard({ ...NONE, maxPerRun: 2 }, undefined);

    const claims = ['a', 'b', 'c', 'd'].map((id) => guard.claim(id));

    expect(claims.slice(0, 2)).toEqual([undefined, undefined]);
    expect(claims[2]).toMatch(/^MAX_DISMANTLES_PER_RUN \(2\) reached: archived only, kept on the service/);
    expect(claims[3]).toBe(claims[2]);
  });

  it('holds every line with a cap of 0', () => {
    expect(dismantleGuard({ ...NONE, maxPerRun: 0 }, undefined).claim('a')).toMatch(/\(0\) reached/);
  });

  it('holds every line with the reason the share gave, whatever the cap', () => {
    const guard = dismantleGuard({ ...NONE, maxPerRun: 100 }, 'the listing shows too many');

    expect([guard.claim('a'), guard.claim('b')]).toEqual([
      'the listing shows too many',
      'the listing shows too many',
    ]);
  });
});

describe('shareHold', () => {
  const limits: DismantleLimits = { ...NONE, maxShare: 0.5, shareMinLines: 10 };

  it('holds a listing with more than the share of finished lines, naming the counts and the setting', () => {
    expect(shareHold(limits, { listed: 10, finished: 6 })).toBe(
      'the listing shows 6 of 10 lines finished at once (60%), more than MAX_DISMANTLE_SHARE (50% of a listing of at least 10 lines): nothing is dismantled in this run; archived only, kept on the service',
    );
  });

  it('judges the share on the lines still there, not on deleted lines the listing keeps', () => {
    expect(shareHold(limits, { listed: 100, finished: 6, deleted: 90 })).toMatch(
      /^the listing shows 6 of 10 lines finished at once \(60%\)/,
    );
    expect(shareHold(limits, { listed: 100, finished: 9, deleted: 91 })).toBeUndefined();
  });

  it('lets a listing at the share, a shorter listing, a run by ids and an unset share go', () => {
    expect(shareHold(limits, { listed: 10, finished: 5 })).toBeUndefined();
    expect(shareHold(limits, { listed: 9, finished: 9 })).toBeUndefined();
    expect(shareHold(limits, undefined)).toBeUndefined();
    expect(shareHold(NONE, { listed: 1000, finished: 1000 })).toBeUndefined();
  });
});

describe('guardLimits', () => {
  it("takes an event's cap and share over the environment's, and the environment's otherwise", () => {
    const config = { ...testConfig(), dismantleGuard: { maxPerRun: 5, maxShare: 0.5, shareMinLines: 20 } };

    expect(guardLimits(config, FULL_PASS)).toEqual({ maxPerRun: 5, maxShare: 0.5, shareMinLines: 20 });
    expect(guardLimits(config, { ...FULL_PASS, maxDismantles: 0, maxDismantleShare: 1 })).toEqual({
      maxPerRun: 0,
      maxShare: 1,
      shareMinLines: 20,
    });
  });
});
