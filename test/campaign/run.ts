/**
 * `npm run campaign -- --schedules N [--seed S] [--concurrency C] [--cli-share P] [--modes pass,fanout] [--out FILE]`
 *
 * Defaults: 100 schedules, a random base seed (printed), one worker more than the cores, both modes.
 *
 * Runs N schedules of the randomized fault campaign on C worker processes (each with its own
 * local servers), prints progress on stderr, then the figures and every violation (seed, what
 * broke, the schedule) on stdout. Exit 1 when any schedule broke an invariant. `CAMPAIGN_SEED=n`
 * runs that one schedule only.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { campaignSeeds, randomBase } from './campaign.ts';
import { addResult, emptyFigures, figuresTable, noRunCounts, violationsText } from './figures.ts';
import type { GenerateOptions } from './generate.ts';
import { cliBundle, removeCliBundle } from './runs.ts';
import type { Mode } from './schedule.ts';
import type { FromWorker, ToWorker } from './worker.ts';

function integer(flag: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new Error(`${flag}: expected an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return value;
}

function flags(args: readonly string[]) {
  const { values } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: false,
    options: {
      schedules: { type: 'string', default: '100' },
      seed: { type: 'string' },
      // One more than the cores: a worker waiting on a backoff or a child leaves its core to another.
      concurrency: { type: 'string', default: String(availableParallelism() + 1) },
      'cli-share': { type: 'string', default: '0.1' },
      modes: { type: 'string', default: 'pass,fanout' },
      out: { type: 'string' },
    },
  });
  const modes = values.modes.split(',').map((m) => {
    if (m !== 'pass' && m !== 'fanout') throw new Error(`--modes: expected pass and/or fanout, got ${m}`);
    return m as Mode;
  });
  const cliShare = Number(values['cli-share']);
  if (!(cliShare >= 0 && cliShare <= 1))
    throw new Error(`--cli-share: expected 0 to 1, got ${values['cli-share']}`);
  return {
    schedules: integer('--schedules', values.schedules, 1, 10_000_000),
    base: values.seed === undefined ? randomBase() : integer('--seed', values.seed, 0, 2 ** 32 - 1),
    concurrency: integer('--concurrency', values.concurrency, 1, 64),
    options: { modes, cliShare } satisfies GenerateOptions,
    out: values.out,
  };
}

function minutes(ms: number): string {
  return `${(ms / 60_000).toFixed(1)} min`;
}

async function main(args: readonly string[]): Promise<number> {
  const { schedules, base, concurrency, options, out } = flags(args);
  const seeds = campaignSeeds(base, schedules);
  console.error(
    `campaign: ${seeds.length} schedule(s) from base seed ${base} on ${concurrency} worker(s); replay one with CAMPAIGN_SEED=<seed>`,
  );
  const bundle = await cliBundle();
  const figures = emptyFigures();
  /** A replay of one seed prints its schedule, violations or not. */
  let replayed: string | undefined;
  const started = Date.now();
  let next = 0;
  let lastShown = 0;
  const script = fileURLToPath(new URL('./worker.ts', import.meta.url));

  await new Promise<void>((resolve) => {
    let running = 0;
    const give = (child: ChildProcess, seedOf: { seed?: number }): void => {
      const seed = seeds[next];
      if (seed === undefined) {
        child.send({ stop: true } satisfies ToWorker);
        return;
      }
      next += 1;
      seedOf.seed = seed;
      child.send({ seed } satisfies ToWorker);
    };
    const start = (): void => {
      running += 1;
      const seedOf: { seed?: number } = {};
      const child = fork(script, [], {
        execArgv: ['--import', 'tsx'],
        env: { ...process.env, CAMPAIGN_CLI_BUNDLE: bundle, CAMPAIGN_OPTIONS: JSON.stringify(options) },
      });
      child.on('message', (message: FromWorker) => {
        if ('result' in message) {
          seedOf.seed = undefined;
          addResult(figures, message.result);
          if (seeds.length === 1) replayed = message.result.description;
          if (message.result.violations.length > 0) {
            console.error(`  seed ${message.result.seed}: ${message.result.violations[0]}`);
          }
          const now = Date.now();
          if (now - lastShown > 5000 || figures.schedules === seeds.length) {
            lastShown = now;
            const rate = figures.schedules / ((now - started) / 1000);
            const eta = (seeds.length - figures.schedules) / rate;
            console.error(
              `  ${figures.schedules}/${seeds.length} schedules, ${rate.toFixed(2)}/s, ${figures.violating.length} violating, ${minutes(now - started)} so far, ${minutes(eta * 1000)} to go`,
            );
          }
        }
        give(child, seedOf);
      });
      child.on('exit', (code) => {
        running -= 1;
        if (seedOf.seed !== undefined) {
          // A worker that died took its schedule with it: that is a finding too.
          addResult(figures, {
            seed: seedOf.seed,
            description: `seed ${seedOf.seed}`,
            ...noRunCounts(),
            violations: [`the campaign worker died (exit ${code}) running this schedule`],
            durationMs: 0,
          });
          start();
        }
        if (running === 0) resolve();
      });
    };
    for (let i = 0; i < Math.min(concurrency, seeds.length); i++) start();
  });

  await removeCliBundle();
  const wall = Date.now() - started;
  console.log(`## Campaign from base seed ${base}: ${figures.schedules} schedules in ${minutes(wall)}\n`);
  console.log(figuresTable(figures, wall));
  if (replayed !== undefined) console.log(`\n## The schedule\n\n${replayed}`);
  if (figures.violating.length > 0) console.log(`\n## Violations\n\n${violationsText(figures, 50)}`);
  if (out !== undefined)
    await writeFile(out, `${JSON.stringify({ base, wallMs: wall, figures }, null, 2)}\n`);
  return figures.violating.length > 0 ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
