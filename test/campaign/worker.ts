/**
 * A campaign worker process (forked by `run.ts`): its own local S3, then one schedule per seed it
 * is sent, answering with the schedule's result.
 */
import { campaignProcessEnv, runSeed } from './campaign.ts';
import type { GenerateOptions } from './generate.ts';
import type { ScheduleResult } from './run-schedule.ts';
import { startWorld } from './world.ts';

/** What the command sends a worker. */
export type ToWorker = { readonly seed: number } | { readonly stop: true };
/** What a worker answers. */
export type FromWorker = { readonly ready: true } | { readonly result: ScheduleResult };

campaignProcessEnv();
const options = JSON.parse(process.env.CAMPAIGN_OPTIONS ?? '{}') as GenerateOptions;
const world = await startWorld();
const send = (message: FromWorker): void => {
  process.send?.(message);
};

process.on('message', (message: ToWorker) => {
  if ('stop' in message) {
    void world.close().finally(() => process.exit(0));
    return;
  }
  void runSeed(world, message.seed, options).then((result) => send({ result }));
});
send({ ready: true });
