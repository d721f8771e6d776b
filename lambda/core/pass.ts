import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import pLimit from 'p-limit';
import { describeError } from '../shared/errors.ts';
import { outOfTime, runDeadline } from './deadline.ts';
import { dismantleGuard, guardLimits, shareHold } from './dismantle-guard.ts';
import { minAgeOf } from './grace.ts';
import { createLineWorker } from './line/worker.ts';
import { lineLogger } from './line-logger.ts';
import { select, withPendingLines } from './select.ts';
import { emitPassMetrics, type SummaryCounts, summarize, summaryForLog } from './summary.ts';
import type {
  Config,
  Deps,
  LineResult,
  LineWorker,
  RunContext,
  RunRequest,
  Selection,
  Summary,
} from './types.ts';

/**
 * One housekeeping pass: select the finished lines, then for each archive every file verified
 * into S3, write the manifest, and only then dismantle it and keep the receipt. Per-line failures
 * are reported in the summary; run-level failures (the list unreachable, the key unreadable)
 * throw. Every run but a dry run leaves a run report in the archive.
 */
export async function runHousekeeping(
  deps: Deps,
  config: Config,
  request: RunRequest,
  context: RunContext = {},
): Promise<Summary> {
  const started = deps.now();
  const runId = context.runId ?? randomUUID();
  const logger = deps.logger.createChild({ persistentKeys: { runId } });
  const deadline = runDeadline(context, config, request);
  try {
    return await passWithin(deps, config, request, context, {
      started,
      runId,
      logger,
      signal: deadline.signal,
    });
  } finally {
    deadline.clear();
  }
}

/** What the steps of one pass share: when it started, its id, its logger, its deadline's signal. */
interface PassRun {
  readonly started: number;
  readonly runId: string;
  readonly logger: Logger;
  readonly signal: AbortSignal;
}

/** The counts a pass gives its summary, besides the line results. */
type PassCounts = Pick<
  SummaryCounts,
  'listed' | 'finished' | 'skipped' | 'deferred' | 'notStarted' | 'guardTripped'
>;

/** The pass within its deadline: the guard and the line worker, the listing, the lines, the summary. */
async function passWithin(
  deps: Deps,
  config: Config,
  request: RunRequest,
  context: RunContext,
  run: PassRun,
): Promise<Summary> {
  const { runId, logger, signal } = run;
  const minAgeMs = minAgeOf(request.minAgeSeconds, config.minAgeMs);
  const limits = guardLimits(config, request);
  // The guard is set once the listing is known (its share of finished lines): lines start after.
  let guard = dismantleGuard(limits, undefined);
  const worker = createLineWorker(deps, config, {
    runId,
    request: { ...request, minAgeMs },
    logger,
    signal,
    guard: { claim: (id) => guard.claim(id) },
  });

  logger.info('run started', { request: { ...request } });
  // Started with no time to list: a run that does nothing, said as such (the summary, its report
  // and metrics), not a bare error. A deadline reached while listing is a failure, and throws.
  const remaining = context.remainingMs?.();
  if (remaining !== undefined && remaining <= config.deadlineReserveMs) {
    const reason = `the invocation started with ${remaining} ms left, within DEADLINE_RESERVE_MS (${config.deadlineReserveMs} ms)`;
    logger.warn('run not started', { reason });
    return concludeRun(deps, request, run, worker, [], {
      listed: 0,
      finished: 0,
      skipped: [],
      deferred: 0,
      notStarted: `no line was listed: ${reason}; the next run takes them`,
    });
  }
  const listing = await select(worker.api, request, logger, { ...config.listing, signal });
  const held = shareHold(limits, request.ids === undefined ? listing : undefined);
  if (held !== undefined) {
    logger.warn('dismantle guard tripped', { reason: held });
    guard = dismantleGuard(limits, held);
  }
  const selection: Selection = await withPendingLines(worker, listing, request, logger);
  const { results, deferred } = await workLines(worker, selection.candidates, config, request, context, run);

  return concludeRun(deps, request, run, worker, results, {
    listed: selection.listed,
    finished: selection.finished,
    skipped: selection.skipped,
    deferred,
    ...(held === undefined ? {} : { guardTripped: held }),
  });
}

/**
 * Works the candidates, `lineConcurrency` at a time, reporting progress after each line; a line
 * not started before the deadline, the abort or `maxLines` is deferred.
 */
async function workLines(
  worker: LineWorker,
  candidates: readonly string[],
  config: Config,
  request: RunRequest,
  context: RunContext,
  run: PassRun,
): Promise<{ readonly results: LineResult[]; readonly deferred: number }> {
  const { logger, signal } = run;
  const results: LineResult[] = [];
  let deferred = 0;
  let bytes = 0;

  const limit = pLimit(config.lineConcurrency);
  let startedLines = 0;
  await Promise.all(
    candidates.map((id) =>
      limit(async () => {
        if (
          signal.aborted ||
          outOfTime(context, config) ||
          (request.maxLines !== undefined && startedLines >= request.maxLines)
        ) {
          deferred += 1;
          return;
        }
        startedLines += 1;
        const result = await worker.processLine(id, lineLogger(logger, id));
        results.push(result);
        bytes += 'bytes' in result && result.bytes !== undefined ? result.bytes : 0;
        context.onProgress?.({ done: results.length + deferred, total: candidates.length, bytes });
      }),
    ),
  );
  return { results, deferred };
}

/** The summary of the run, whichever way it ends: its metrics, its log line and its report. */
async function concludeRun(
  deps: Deps,
  request: RunRequest,
  run: PassRun,
  worker: LineWorker,
  results: readonly LineResult[],
  counts: PassCounts,
): Promise<Summary> {
  const { started, runId, logger } = run;
  const summary = summarize(results, {
    runId,
    dryRun: request.dryRun,
    archiveOnly: request.archiveOnly,
    tally: worker.tally,
    durationMs: deps.now() - started,
    ...counts,
  });
  emitPassMetrics(deps.metrics, [summary], summary.durationMs);
  logger.info('run summary', { summary: summaryForLog(summary) });
  if (!request.dryRun) await writeRunReport(worker, summary, results, new Date(started), logger);
  return summary;
}

/**
 * `{prefix}_runs/{date}/{runId}.json`: the summary plus what was done to each line and how long
 * it took. A report that cannot be written is logged, not thrown: the work it describes is done.
 */
async function writeRunReport(
  worker: LineWorker,
  summary: Summary,
  results: readonly LineResult[],
  started: Date,
  logger: Logger,
): Promise<void> {
  const lines = [...results]
    .sort((a, b) => a.id.localeCompare(b.id))
    .map((result) => (result.outcome === 'skipped' ? { ...result, notFinished: undefined } : result));
  try {
    const key = await worker.archive.writeRunReport(summary.runId, started, {
      schemaVersion: 1,
      startedAt: started.toISOString(),
      summary,
      lines,
    });
    logger.info('run report written', { key });
  } catch (error) {
    logger.error('run report could not be written', { reason: describeError(error) });
  }
}
