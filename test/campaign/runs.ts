/**
 * How a run of a schedule is carried out: the real handler in this process (most runs), or the
 * real CLI as a child process that may be killed with SIGKILL. The CLI is bundled once per
 * process with esbuild, as the Lambda bundle is built (starting tsx costs a second a run).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { build } from 'esbuild';
import { createHandler } from '../../lambda/app/invoke.ts';
import type { Summary } from '../../lambda/core/types.ts';
import { type RunOutcome, settle } from '../reliability/invariant.ts';
import { childEnded, summaryOf } from '../support/child-output.ts';
import { ROOT } from '../support/run-cli.ts';
import { capturingLogger } from './logs.ts';
import type { RunKind, RunStep, Schedule } from './schedule.ts';
import type { Stage } from './world.ts';

/** How a run ended, and every log line it wrote (in-process runs: captured; CLI: in `output`). */
export interface RunResult {
  readonly outcome: RunOutcome;
  readonly logs: readonly string[];
}

/** The payload of a run of this kind. */
export function eventOf(schedule: Schedule, step: Pick<RunStep, 'kind' | 'ids'>): Record<string, unknown> {
  const ids = (step.ids ?? []).map((i) => schedule.lines[i]?.id ?? '');
  const kinds: Record<RunKind, Record<string, unknown>> = {
    full: {},
    'archive-only': { archiveOnly: true },
    ids: { ids },
    'keep-both': { ids, onConflict: 'keep-both' },
  };
  return kinds[step.kind];
}

function argsOf(schedule: Schedule, step: Pick<RunStep, 'kind' | 'ids'>): string[] {
  const ids = (step.ids ?? []).map((i) => schedule.lines[i]?.id ?? '').join(',');
  const kinds: Record<RunKind, string[]> = {
    full: [],
    'archive-only': ['--archive-only'],
    ids: ['--ids', ids],
    'keep-both': ['--ids', ids, '--on-conflict', 'keep-both'],
  };
  return kinds[step.kind];
}

/** Runs the pass through the real handler, built afresh as at a cold start. */
export async function handlerRun(stage: Stage, event: unknown): Promise<RunResult> {
  const logs: string[] = [];
  try {
    const handler = createHandler(stage.env, { logger: capturingLogger(logs) });
    return { outcome: await settle(handler(event) as Promise<Summary>), logs };
  } catch (error) {
    return { outcome: { error }, logs };
  }
}

let bundle: Promise<string> | undefined;

/** The CLI as one ESM file, built once per process from the working tree. */
export function cliBundle(): Promise<string> {
  // The campaign command builds it once for all its workers.
  const built = process.env.CAMPAIGN_CLI_BUNDLE;
  if (built !== undefined && built !== '') bundle ??= Promise.resolve(built);
  bundle ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'campaign-cli-'));
    const outfile = join(dir, 'cli.mjs');
    await build({
      entryPoints: [join(ROOT, 'lambda/entries/cli.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node24',
      outfile,
      banner: {
        js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
      },
      mainFields: ['module', 'main'],
      logLevel: 'warning',
    });
    return outfile;
  })();
  return bundle;
}

/** Removes the bundle this process built (not one it was handed), if it built one. */
export async function removeCliBundle(): Promise<void> {
  const built = bundle;
  bundle = undefined;
  if (built === undefined || process.env.CAMPAIGN_CLI_BUNDLE) return;
  const file = await built.catch(() => undefined);
  if (file !== undefined) await rm(dirname(file), { recursive: true, force: true });
}

/** A CLI run in progress: `kill` sends SIGKILL (from a request hook, at the schedule's point). */
export interface CliRun {
  kill(): void;
  readonly done: Promise<RunResult>;
}

/** Starts the real CLI on the stage, logging at DEBUG so a leaked key in any log line shows. */
export async function startCliRun(stage: Stage, schedule: Schedule, step: RunStep): Promise<CliRun> {
  const script = await cliBundle();
  const child = spawn(process.execPath, [script, ...argsOf(schedule, step)], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      POWERTOOLS_LOG_LEVEL: 'DEBUG',
      ...stage.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const done = childEnded(child).then(({ code, signal, stdout, stderr }): RunResult => {
    const summary = summaryOf(stdout);
    return {
      outcome: {
        ...(summary === undefined ? {} : { summary }),
        exitCode: code,
        killed: signal === 'SIGKILL',
        output: `${stdout}\n${stderr}`,
      },
      logs: [],
    };
  });
  return {
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
    done,
  };
}
