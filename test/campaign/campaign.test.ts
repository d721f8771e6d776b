/**
 * A bounded share of the randomized fault campaign in `npm test` (the long one is
 * `npm run campaign`): a fixed list of schedules drawn from one base seed, each one test, each
 * failing with its seed, the schedule and every invariant it broke.
 *
 *   CAMPAIGN_SCHEDULES=200 npx vitest run test/campaign   more schedules
 *   CAMPAIGN_BASE_SEED=7 npx vitest run test/campaign     another list
 *   CAMPAIGN_SEED=123456 npx vitest run test/campaign     that one schedule only
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { campaignProcessEnv, campaignSeeds, runSeed } from './campaign.ts';
import { removeCliBundle } from './runs.ts';
import { startWorld, type World } from './world.ts';

/** The schedules of `npm test`: about twenty seconds on two cores (forty schedules). */
const SCHEDULES = Number(process.env.CAMPAIGN_SCHEDULES ?? 40);
/** Fixed, so `npm test` runs the same schedules every time; change it to look elsewhere. */
const BASE_SEED = Number(process.env.CAMPAIGN_BASE_SEED ?? 18_2026);

/**
 * Schedules long campaigns found breaking an invariant, each fixed since, replayed every time (with
 * `npm run campaign`'s defaults: both modes, a CLI share of 0.1). A seed names the schedule the
 * generator draws from it today: a change to the generator moves them, and they stay as random ones.
 */
const FOUND = [
  3726383771, // a PutObject dropped after the verified body: an unhandled 'error' ended the process
  188511244, // a receipt that could not be written: two runs counted one dismantling
  2888259443, // a DELETE carried out late after the line restated its files: the receipt owes a discrepancy
  3502700353, // the same, where the only read of the changed line was answered 429: nothing is owed
];

campaignProcessEnv();
const seeds =
  process.env.CAMPAIGN_SEED === undefined
    ? [...campaignSeeds(BASE_SEED, SCHEDULES), ...FOUND]
    : campaignSeeds(BASE_SEED, SCHEDULES);
console.info(
  `randomized fault campaign: ${seeds.length} schedule(s) from base seed ${BASE_SEED}; replay one with CAMPAIGN_SEED=<seed>`,
);

let world: World;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world.close();
  await removeCliBundle();
});

describe('the randomized fault campaign', () => {
  for (const seed of seeds) {
    it(`keeps every invariant through the schedule of seed ${seed}`, async () => {
      const result = await runSeed(world, seed, { cliShare: 0.1, modes: ['pass', 'fanout'] });

      expect(
        result.violations,
        `schedule ${seed} (replay: CAMPAIGN_SEED=${seed} npx vitest run test/campaign)\n${result.description}\n`,
      ).toEqual([]);
    });
  }
});
