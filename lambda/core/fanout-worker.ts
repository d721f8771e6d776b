import type { Logger } from '@aws-lambda-powertools/logger';
import pLimit from 'p-limit';
import { describeError } from '../shared/errors.ts';
import type { Archive } from '../shared/ports/archive.ts';
import { type RetryPolicy, withRetry } from '../shared/retry.ts';
import type { WorkMessage } from '../shared/work-message.ts';
import { outOfTime, runDeadline } from './deadline.ts';
import { keepLineRecord } from './fanout-records.ts';
import { minAgeOf } from './grace.ts';
import { createLineWorker } from './line/worker.ts';
import { lineLogger } from './line-logger.ts';
import { FULL_PASS } from './request.ts';
import { emitPassMetrics, summarize, summaryForLog } from './summary.ts';
import type {
  Config,
  Deps,
  LineRecord,
  LineResult,
  LineWorker,
  RunContext,
  Summary,
  WorkItem,
  WorkReport,
} from './types.ts';

/*
 * Fan-out mode: a scheduled planner lists and selects the lines and sends one SQS message per
 * finished line; workers consume the queue and run the same per-line archive-then-dismantle
 * (createLineWorker) on each. Duplicate deliveries are safe because that code is: it reuses
 * verified files, and confirms a line that is already gone; and a line's record is written
 * conditionally, so a copy never replaces a record that got further (fanout-records.ts).
 */

/** The lines of one run within a batch, and the worker that handles them. */
interface RunWork {
  readonly runId: string;
  readonly archiveOnly: boolean;
  readonly worker: LineWorker;
  readonly logger: Logger;
  /**
   * By line id: a line sent twice in one batch is worked once, for both messages; held (archived,
   * not dismantled) when any of them says the planner's dismantle guard holds it.
   */
  readonly lines: Map<string, { readonly planned: Date; readonly messageIds: string[]; hold?: string }>;
  readonly results: LineResult[];
  deferred: number;
}

/**
 * A worker's batch, read (app/work-batch.ts reads the SQS batch): each item names a line of a
 * planner's run; each line goes through the same archive-then-dismantle as in the single-mode pass
 * ({@link createLineWorker}), with the planner's run id, at most `lineConcurrency` at once. The
 * report names the messages to leave in the queue: failed lines and lines not started for lack of
 * time. A skipped line (not finished, gone, invalid) is done with. Never throws for a line.
 */
export async function workItems(
  deps: Deps,
  config: Config,
  items: readonly WorkItem[],
  context: Pick<RunContext, 'remainingMs'> = {},
): Promise<WorkReport> {
  const started = deps.now();
  const deadline = runDeadline(context, config, FULL_PASS);
  const failures = new Set<string>();
  const runs = new Map<string, RunWork>();
  for (const { messageId, message } of items) {
    addLine(runOf(runs, message, deps, config, deadline.signal), message, messageId);
  }

  await workLines(deps, config, context, [...runs.values()], { signal: deadline.signal, failures });

  deadline.clear();
  const summaries = summarizeRuns([...runs.values()], deps.now() - started);
  // Per batch, with no RunDuration: a batch is not a run.
  emitPassMetrics(deps.metrics, summaries, undefined);
  return { retry: failures, summaries };
}

/** The work of the message's planner run in this batch, made with its line worker at the run's first message. */
function runOf(
  runs: Map<string, RunWork>,
  message: WorkMessage,
  deps: Deps,
  config: Config,
  signal: AbortSignal,
): RunWork {
  // Messages of one planner run share a request; its parts key the run's worker.
  const key = JSON.stringify([message.runId, message.archiveOnly, message.onConflict, message.minAgeSeconds]);
  let run = runs.get(key);
  if (run === undefined) {
    const logger = deps.logger.createChild({ persistentKeys: { runId: message.runId } });
    const lines: RunWork['lines'] = new Map();
    run = {
      runId: message.runId,
      archiveOnly: message.archiveOnly,
      logger,
      worker: createLineWorker(deps, config, {
        runId: message.runId,
        request: {
          dryRun: false,
          archiveOnly: message.archiveOnly,
          ...(message.onConflict === undefined ? {} : { onConflict: message.onConflict }),
          minAgeMs: minAgeOf(message.minAgeSeconds, config.minAgeMs),
        },
        logger,
        signal,
        guard: { claim: (id) => lines.get(id)?.hold },
      }),
      lines,
      results: [],
      deferred: 0,
    };
    runs.set(key, run);
  }
  return run;
}

/** Adds the message's line to its run; a line sent again in the batch gains the message (and its hold). */
function addLine(run: RunWork, message: WorkMessage, messageId: string): void {
  const line = run.lines.get(message.lineId);
  if (line === undefined) {
    run.lines.set(message.lineId, {
      planned: new Date(message.plannedAt),
      messageIds: [messageId],
      ...(message.hold === undefined ? {} : { hold: message.hold }),
    });
  } else {
    line.messageIds.push(messageId);
    line.hold ??= message.hold;
  }
}

/**
 * Works every line of the batch, `lineConcurrency` at once, and keeps each line's record; the
 * messages of a failed line, or of one not started for lack of time, are added to `failures`.
 */
async function workLines(
  deps: Deps,
  config: Config,
  context: Pick<RunContext, 'remainingMs'>,
  runs: readonly RunWork[],
  { signal, failures }: { readonly signal: AbortSignal; readonly failures: Set<string> },
): Promise<void> {
  const limit = pLimit(config.lineConcurrency);
  await Promise.all(
    runs.flatMap((run) =>
      [...run.lines].map(([lineId, line]) =>
        limit(async () => {
          if (signal.aborted || outOfTime(context, config)) {
            // Back to the queue: another invocation takes it after the visibility timeout.
            run.deferred += 1;
            for (const id of line.messageIds) failures.add(id);
            return;
          }
          const logger = lineLogger(run.logger, lineId);
          const result = await run.worker.processLine(lineId, logger);
          run.results.push(result);
          if (result.outcome === 'failed') for (const id of line.messageIds) failures.add(id);
          await recordLine(
            run.worker.archive,
            config.retry,
            logger,
            {
              schemaVersion: 1,
              runId: run.runId,
              lineId,
              at: new Date(deps.now()).toISOString(),
              messageIds: line.messageIds,
              result,
            },
            line.planned,
          );
        }),
      ),
    ),
  );
}

/** Each run's summary of the batch, logged as `batch summary` by the run's logger. */
function summarizeRuns(runs: readonly RunWork[], durationMs: number): Summary[] {
  return runs.map((run) => {
    const summary = summarize(run.results, {
      runId: run.runId,
      dryRun: false,
      archiveOnly: run.archiveOnly,
      listed: run.lines.size,
      finished: run.lines.size,
      skipped: [],
      deferred: run.deferred,
      tally: run.worker.tally,
      durationMs,
    });
    run.logger.info('batch summary', { summary: summaryForLog(summary) });
    return summary;
  });
}

/**
 * Keeps the worker's record of a line, never weakening the one there ({@link keepLineRecord}): a
 * later or concurrent delivery that finds the line gone, or fails on it half-way, does not replace
 * the record of its dismantling. A record that cannot be written is logged, not a failure: the
 * line's work is done.
 */
async function recordLine(
  archive: Archive,
  policy: RetryPolicy,
  logger: Logger,
  record: LineRecord,
  planned: Date,
): Promise<void> {
  try {
    const write = await withRetry(policy, () => keepLineRecord(archive, record, planned));
    if (write === 'kept')
      logger.info(
        'line record not replaced: the one there got as far or further, or is not one this version reads',
      );
    if (write === 'contended') logger.warn('line record not written: other workers kept changing it');
  } catch (error) {
    logger.error('line record could not be written', { reason: describeError(error) });
  }
}
