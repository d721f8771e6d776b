/**
 * One schedule, start to end: its runs (the faulty ones it was drawn with, then clean full runs
 * until nothing is left to do), the invariants after each, then tampering, audit and restore.
 * Never throws for a violation: it returns them, with the figures of what was injected.
 */
import type { Summary } from '../../lambda/core/types.ts';
import { forgetSecrets } from '../../lambda/shared/redact.ts';
import type { RunOutcome } from '../reliability/invariant.ts';
import { BucketLedger } from './bucket-ledger.ts';
import { applyBetweenRuns, clearRawLines, idOf, injectServiceFaults, type RawLines } from './changes.ts';
import { campaignSnapshot, checkRun, pendingMarked } from './checks.ts';
import { fanoutRun, type HeldMessages } from './fanout.ts';
import { noRunCounts, type RunCounts } from './figures.ts';
import { finale, tamper } from './finale.ts';
import { LateDeletes } from './late-deletes.ts';
import { type DeleteMoment, RunObserver } from './observer.ts';
import { eventOf, handlerRun, type RunResult, startCliRun } from './runs.ts';
import { CLEAN_RUN, describeSchedule, faultKind, type RunStep, type Schedule } from './schedule.ts';
import { BucketView } from './store-read.ts';
import { type Stage, stageFor, type World } from './world.ts';

/** What one schedule did and found. */
export interface ScheduleResult extends RunCounts {
  readonly seed: number;
  readonly description: string;
  tamper?: string;
  readonly violations: string[];
  durationMs: number;
}

/** A run that stopped at nothing: one past it might still do work. */
function didSomething(outcome: RunOutcome): boolean {
  const summary: Summary | undefined = outcome.summary;
  if (summary === undefined || outcome.killed === true) return true;
  return (
    summary.archived > 0 || summary.dismantled > 0 || summary.pending.length > 0 || summary.filesUploaded > 0
  );
}

/**
 * The dismantle guard held: a run sent DELETEs for at most `MAX_DISMANTLES_PER_RUN` lines (a DELETE
 * retried is one line). In fan-out mode a run's drain may also carry an earlier planner's
 * messages, each with its own run's leave, so the bound is the planner's, checked by the e2e tests.
 */
function guardKept(schedule: Schedule, moments: readonly DeleteMoment[]): string[] {
  const cap = schedule.settings.maxDismantles;
  if (cap === undefined || schedule.mode !== 'pass') return [];
  const lines = new Set(moments.map((moment) => moment.id));
  return lines.size > cap
    ? [`DELETEs sent for ${lines.size} lines, more than MAX_DISMANTLES_PER_RUN (${cap})`]
    : [];
}

/**
 * The housekeeper refused the schedule's settings (a `ConfigError`): the run did nothing, and the
 * invariants would pass it for a clean one. A schedule is drawn to be valid, so this is the
 * campaign's own fault, reported as a violation rather than passed.
 */
export function refusedSettings(outcome: RunOutcome): string[] {
  const error = outcome.error;
  if (error instanceof Error && error.name === 'ConfigError') {
    return [`the housekeeper refused the schedule's settings: ${error.message}`];
  }
  const refusal = /ConfigError: .*/.exec(outcome.output ?? '');
  return refusal === null ? [] : [`the housekeeper refused the schedule's settings: ${refusal[0]}`];
}

function bump(counts: Record<string, number>, key: string, by = 1): void {
  counts[key] = (counts[key] ?? 0) + by;
}

/** How long one run may take before the campaign calls it hung (and a violation). */
const RUN_TIMEOUT_MS = 60_000;

async function withinTimeout<T extends { run: RunResult }>(
  work: Promise<T>,
  what: string,
): Promise<T | { run: RunResult }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<{ run: RunResult }>((resolve) => {
    timer = setTimeout(
      () =>
        resolve({
          run: { outcome: { error: new Error(`${what} did not end within ${RUN_TIMEOUT_MS} ms`) }, logs: [] },
        }),
      RUN_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** What one schedule carries from run to run besides the store. */
interface Carried {
  readonly raw: RawLines;
  /** Fan-out: messages of the last run held back, delivered during the next. */
  held: HeldMessages;
}

async function oneRun(
  stage: Stage,
  schedule: Schedule,
  step: RunStep,
  index: number,
  carried: Carried,
  result: ScheduleResult,
): Promise<{ run: RunResult; observer: RunObserver; fanout?: { runId: string | undefined } }> {
  let kill: (() => void) | undefined;
  const observer = new RunObserver(stage, schedule, step, carried.raw, () => kill?.());
  observer.install();
  try {
    if (schedule.mode === 'fanout') {
      const done = await withinTimeout(
        fanoutRun(stage, schedule, step, index, carried.held),
        'the fan-out run',
      );
      carried.held = 'held' in done ? done.held : [];
      return { run: done.run, observer, fanout: { runId: 'runId' in done ? done.runId : undefined } };
    }
    if (step.executor === 'cli') {
      result.cliRuns += 1;
      const cli = await startCliRun(stage, schedule, step);
      kill = () => cli.kill();
      const { run } = await withinTimeout(
        cli.done.then((r) => ({ run: r })),
        'the CLI run',
      );
      if (run.outcome.killed === true) result.crashes += 1;
      return { run, observer };
    }
    const { run } = await withinTimeout(
      handlerRun(stage, eventOf(schedule, step)).then((r) => ({ run: r })),
      'the run',
    );
    return { run, observer };
  } finally {
    // A killed CLI's last requests are still being answered: the state settles before it is judged.
    await stage.tokens.idle();
    await stage.proxy.idle();
    observer.uninstall();
  }
}

/**
 * With `CAMPAIGN_TRACE` set (a replay of one seed), each run's outcome and log lines on stderr,
 * the key replaced: what an analysis of a violation starts from.
 */
function trace(index: number, run: RunResult, key: string): void {
  const { summary, error } = run.outcome;
  const lines = [
    `--- run ${index + 1}: ${error === undefined ? 'returned' : `threw ${String(error)}`}`,
    ...(summary === undefined ? [] : [JSON.stringify(summary, null, 1)]),
    ...run.logs,
  ];
  process.stderr.write(`${lines.join('\n').replaceAll(key, '<KEY>')}\n`);
}

/** Runs one schedule on a worker's servers. */
export async function runSchedule(world: World, schedule: Schedule): Promise<ScheduleResult> {
  const started = performance.now();
  const result: ScheduleResult = {
    seed: schedule.seed,
    description: describeSchedule(schedule),
    ...noRunCounts(),
    violations: [],
    durationMs: 0,
  };
  // Each schedule is a process of its own as far as the key's redaction knows (the keys of earlier
  // schedules would otherwise pile up in the process-wide list every log line is checked against).
  forgetSecrets();
  const stage = await stageFor(world, schedule);
  const raw: RawLines = new Set();
  const carried: Carried = { raw, held: [] };
  const furthest = new Map<string, number>();
  const ledger = new BucketLedger();
  const lastDelete = new Map<string, DeleteMoment>();
  const changedAtDelete = new Set<string>();
  const lateDeletes = new LateDeletes();
  const flipped = new Set<string>();
  const view = new BucketView(world.s3Client, world.s3.address, stage.bucket);
  try {
    let pendingBefore = new Set<string>();
    let before = campaignSnapshot(stage.tokens, pendingBefore);
    let last: RunOutcome | undefined;
    for (let i = 0; i < schedule.maxRuns; i++) {
      const planned = schedule.runs[i];
      if (planned === undefined && i > schedule.runs.length && last !== undefined && !didSomething(last))
        break;
      const step = planned ?? CLEAN_RUN;
      clearRawLines(stage, raw);
      stage.tokens.clearFaults();
      for (const change of step.before) {
        const late =
          change.kind === 'complete-deletion'
            ? await lateDeletes.beforeCompletion(
                stage,
                idOf(schedule, change.line),
                lastDelete,
                changedAtDelete,
              )
            : undefined;
        if (await applyBetweenRuns(stage, schedule, change, raw)) {
          bump(result.changes, change.kind);
          late?.completed();
        }
      }
      injectServiceFaults(stage, schedule, step.serviceFaults);
      for (const fault of step.serviceFaults)
        bump(result.serviceFaults, `${fault.target} ${faultKind(fault.fault)}`);
      const deletedBefore = [...stage.tokens.lines.values()].filter((l) => l.status === 'deleted').length;
      const { run, observer, fanout } = await oneRun(stage, schedule, step, i, carried, result);
      result.runs += 1;
      for (const change of observer.changed) bump(result.changes, change);
      for (const [action, n] of observer.storeFaults) bump(result.storeFaults, action, n);
      for (const key of observer.flipped) flipped.add(key);
      const check = await checkRun(stage, {
        before,
        outcome: run.outcome,
        logs: run.logs,
        observer,
        ledger,
        view,
        lastDelete,
        changedAtDelete,
        flipped,
        furthest,
        pendingBefore,
        ...(fanout === undefined ? {} : { fanout }),
      });
      check.problems.push(...guardKept(schedule, check.moments), ...refusedSettings(run.outcome));
      result.deletes += check.moments.length;
      result.races += check.moments.filter((m) => m.race).length;
      result.dismantled +=
        [...stage.tokens.lines.values()].filter((l) => l.status === 'deleted').length - deletedBefore;
      check.problems.push(...(await lateDeletes.check(view)));
      result.violations.push(...check.problems.map((p) => `run ${i + 1}: ${p}`));
      if (process.env.CAMPAIGN_TRACE !== undefined) trace(i, run, schedule.sessionKey);
      pendingBefore = pendingMarked(view);
      before = campaignSnapshot(stage.tokens, pendingBefore);
      // Fan-out: the run as read back from its records.
      last =
        fanout === undefined ? run.outcome : check.summary === undefined ? {} : { summary: check.summary };
    }
    clearRawLines(stage, raw);
    stage.tokens.clearFaults();
    if (schedule.tamper !== undefined) {
      const changed = await tamper(stage, schedule, schedule.tamper);
      if (changed !== undefined) {
        result.tamper = schedule.tamper.kind;
        for (const key of changed) ledger.release(key);
      }
    }
    result.violations.push(...(await finale(stage, schedule, view)).map((p) => `end: ${p}`));
  } catch (error) {
    result.violations.push(
      `the campaign itself failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
  } finally {
    await stage.close();
    result.durationMs = performance.now() - started;
  }
  // Nothing of the key in what is printed: a violation quotes what it saw.
  for (const [i, v] of result.violations.entries())
    result.violations[i] = v.replaceAll(schedule.sessionKey, '<KEY>');
  return result;
}
