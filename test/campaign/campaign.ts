/**
 * What the test and the command share: the environment a campaign process needs, the seeds of a
 * campaign, and one schedule run from its seed.
 */
import type { GenerateOptions } from './generate.ts';
import { generateSchedule } from './generate.ts';
import { scheduleSeed } from './prng.ts';
import { runSchedule, type ScheduleResult } from './run-schedule.ts';
import type { World } from './world.ts';

/**
 * Sets what the housekeeper's SDK clients read from the process (dummy credentials: every client
 * points at loopback) and keeps its default loggers quiet (each run's logs are captured).
 */
export function campaignProcessEnv(): void {
  Object.assign(process.env, {
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    AWS_EC2_METADATA_DISABLED: 'true',
    POWERTOOLS_METRICS_DISABLED: 'true',
    POWERTOOLS_LOG_LEVEL: 'SILENT',
  });
}

/** The seeds of a campaign of `count` schedules from `base`; `CAMPAIGN_SEED` alone when set. */
export function campaignSeeds(base: number, count: number, only = process.env.CAMPAIGN_SEED): number[] {
  if (only !== undefined && only !== '') {
    const seed = Number(only);
    if (!Number.isSafeInteger(seed) || seed < 0 || seed >= 2 ** 32) {
      throw new Error(`CAMPAIGN_SEED: expected an integer in [0, 2^32), got ${JSON.stringify(only)}`);
    }
    return [seed];
  }
  return Array.from({ length: count }, (_, i) => scheduleSeed(base, i));
}

/** A fresh 32-bit base seed. */
export function randomBase(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0] ?? 1;
}

/** Runs the schedule of one seed on a worker's servers. */
export function runSeed(world: World, seed: number, options: GenerateOptions = {}): Promise<ScheduleResult> {
  return runSchedule(world, generateSchedule(seed, options));
}
