import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import pLimit from 'p-limit';
import { describeError, EventError, QueueError } from '../shared/errors.ts';
import type { Archive } from '../shared/ports/archive.ts';
import type { QueueEntry, WorkQueue } from '../shared/ports/queue.ts';
import { encodeWorkMessage, SQS_BATCH_LIMIT, type WorkMessage } from '../shared/work-message.ts';
import { outOfTime, runDeadline } from './deadline.ts';
import { type DismantleGuard, dismantleGuard, guardLimits, shareHold } from './dismantle-guard.ts';
import { keepQueuedMarker, type QueuedMarker } from './fanout-records.ts';
import { judgeAge, minAgeOf } from './grace.ts';
import { createRunTools } from './run-tools.ts';
import { select, withPendingLines } from './select.ts';
import { sortById } from './summary.ts';
import type {
  Deps,
  FanoutPlan,
  LineReport,
  LineWorker,
  MetricsSink,
  PlannerConfig,
  RunContext,
  RunRequest,
  Selection,
} from './types.ts';

/*
 * Fan-out mode: a scheduled planner lists and selects the lines and sends one SQS message per
 * finished line; workers consume the queue and run the same per-line archive-then-dismantle
 * (createLineWorker) on each; the planner itself needs only the run's tools (createRunTools). Duplicate deliveries are safe because that code is: it reuses
 * verified files, and confirms a line that is already gone.
 */

/** Batches of messages the planner sends at once (each batch is followed by its markers). */
const SEND_CONCURRENCY = 4;

/**
 * The planner's pass: select the finished lines (as the single-mode pass does), leave out those
 * already queued (a `{prefix}_queued/{id}.json` marker younger than the TTL; not consulted for
 * lines named in `ids`), send one message per remaining line in batches of ten, and mark each
 * line whose message was accepted. A line whose message was refused gets no marker and is
 * reported as failed. Writes the run report `{prefix}_runs/{date}/{runId}.json`.
 *
 * A dry run is not a fan-out: it is the single-mode plan (`runHousekeeping` with `dryRun`).
 */
export async function planFanout(
  deps: Deps,
  config: PlannerConfig,
  queue: WorkQueue,
  request: RunRequest,
  context: RunContext = {},
): Promise<FanoutPlan> {
  if (request.dryRun) throw new EventError('a dry run is planned by the pass itself, not by the fan-out');
  const started = deps.now();
  // Unref'd: a planner that throws leaves nothing running.
  const deadline = runDeadline(context, config, request);
  const plannedAt = new Date(started).toISOString();
  const runId = context.runId ?? randomUUID();
  const logger = deps.logger.createChild({ persistentKeys: { runId } });
  const { api, archive, tally, retry } = createRunTools(deps, config, { logger, signal: deadline.signal });

  logger.info('fan-out started', { request: { ...request } });
  const listing = await select(api, request, logger, { ...config.listing, signal: deadline.signal });
  const limits = guardLimits(config, request);
  const sharedHold = shareHold(limits, request.ids === undefined ? listing : undefined);
  if (sharedHold !== undefined) logger.warn('dismantle guard tripped', { reason: sharedHold });
  const selection = await withPendingLines({ archive, retry }, listing, request, logger);

  // Lines named by id are an operator's explicit request: sent whatever the markers say.
  const markers =
    request.ids === undefined ? await retry(() => archive.queuedMarkers()) : new Map<string, Date>();
  const now = deps.now();
  // The grace period, judged on the list's timestamps before anything is sent (lines named by id
  // have no list entry: their worker judges them on the line's own document).
  const minAgeMs = minAgeOf(request.minAgeSeconds, config.minAgeMs);
  const { alreadyQueued, toSend, skipped, waiting } = sortCandidates(selection, markers, {
    minAgeMs,
    now,
    markerTtlMs: config.fanout.queueMarkerTtlMs,
  });
  const allowed = request.maxLines === undefined ? toSend : toSend.slice(0, request.maxLines);
  let deferred = toSend.length - allowed.length;
  // The guard's leave is given here, for the whole run: the workers only carry it out. A line with
  // a pending DELETE needs it too: one still there is sent its DELETE again (one gone is confirmed
  // whatever its message says, with no DELETE).
  const holds = claimLeave(dismantleGuard(limits, sharedHold), allowed, request);
  // Why the guard held lines: the share, as the pass says it even when no line was sent; or the cap.
  const guardTripped = sharedHold ?? holds.values().next().value;
  if (sharedHold === undefined && guardTripped !== undefined) {
    logger.warn('dismantle guard tripped', { reason: guardTripped, held: holds.size });
  }

  const sending = { queue, archive, retry, logger, runId, plannedAt, request, context, config };
  const { enqueued, failed, notSent } = await sendLines(sending, allowed, holds, deadline.signal);
  deferred += notSent;

  const plan: FanoutPlan = {
    runId,
    mode: 'fanout',
    archiveOnly: request.archiveOnly,
    listed: selection.listed,
    finished: selection.finished,
    enqueued: enqueued.length,
    alreadyQueued: alreadyQueued.length,
    deferred,
    retries: tally.retries,
    waiting,
    held: enqueued.filter((id) => holds.has(id)).length,
    ...(guardTripped === undefined ? {} : { guardTripped }),
    skipped: sortById(skipped),
    failed: sortById(failed),
    durationMs: deps.now() - started,
  };
  deadline.clear();
  emitPlanMetrics(deps.metrics, plan);
  // Counts: the lists grow with the listing, and each line is logged on its own.
  logger.info('fan-out summary', {
    summary: { ...plan, skipped: plan.skipped.length, failed: plan.failed.length },
  });
  await writePlanReport(archive, logger, plan, { started, plannedAt }, { enqueued, alreadyQueued });
  return plan;
}

/**
 * Where each candidate goes, in order: skipped (its age unknown), waiting (finished within the
 * grace period), already queued (a marker younger than the TTL), or to be sent.
 */
function sortCandidates(
  selection: Selection,
  markers: ReadonlyMap<string, Date>,
  { minAgeMs, now, markerTtlMs }: { minAgeMs: number | undefined; now: number; markerTtlMs: number },
): { alreadyQueued: string[]; toSend: string[]; skipped: LineReport[]; waiting: number } {
  const alreadyQueued: string[] = [];
  const toSend: string[] = [];
  const skipped: LineReport[] = [...selection.skipped];
  let waiting = 0;
  for (const id of selection.candidates) {
    if (selection.finishedAt?.has(id) === true) {
      const age = judgeAge(selection.finishedAt.get(id), minAgeMs, now);
      if (age.kind === 'unknown') {
        skipped.push({ id, reason: age.reason });
        continue;
      }
      if (age.kind === 'waiting') {
        waiting += 1;
        continue;
      }
    }
    const markedAt = markers.get(id);
    if (markedAt !== undefined && now - markedAt.getTime() < markerTtlMs) {
      alreadyQueued.push(id);
    } else {
      toSend.push(id);
    }
  }
  return { alreadyQueued, toSend, skipped, waiting };
}

/** The guard's leave, claimed in order for each line to be sent (none in an archive-only run): the holds. */
function claimLeave(
  guard: DismantleGuard,
  allowed: readonly string[],
  request: RunRequest,
): Map<string, string> {
  const holds = new Map<string, string>();
  if (!request.archiveOnly) {
    for (const id of allowed) {
      const hold = guard.claim(id);
      if (hold !== undefined) holds.set(id, hold);
    }
  }
  return holds;
}

/** What sending a run's messages needs. */
interface Sending {
  readonly queue: WorkQueue;
  readonly archive: Archive;
  readonly retry: LineWorker['retry'];
  readonly logger: Logger;
  readonly runId: string;
  readonly plannedAt: string;
  readonly request: RunRequest;
  readonly context: RunContext;
  readonly config: PlannerConfig;
}

/**
 * Sends the lines' messages in batches of ten, {@link SEND_CONCURRENCY} at once, and marks each line
 * whose message was accepted; a batch not started before the deadline is not sent (`notSent`).
 */
async function sendLines(
  sending: Sending,
  allowed: readonly string[],
  holds: ReadonlyMap<string, string>,
  signal: AbortSignal,
): Promise<{ enqueued: string[]; failed: LineReport[]; notSent: number }> {
  const { queue, archive, retry, logger, runId, plannedAt, request } = sending;
  const enqueued: string[] = [];
  const failed: LineReport[] = [];
  let notSent = 0;
  const limit = pLimit(SEND_CONCURRENCY);
  await Promise.all(
    chunk(allowed, SQS_BATCH_LIMIT).map((ids) =>
      limit(async () => {
        if (signal.aborted || outOfTime(sending.context, sending.config)) {
          notSent += ids.length;
          return;
        }
        const messages = ids.map((lineId) => ({
          lineId,
          runId,
          plannedAt,
          archiveOnly: request.archiveOnly,
          ...(request.onConflict === 'keep-both' ? { onConflict: 'keep-both' as const } : {}),
          ...(request.minAgeSeconds === undefined ? {} : { minAgeSeconds: request.minAgeSeconds }),
          ...(holds.has(lineId) ? { hold: holds.get(lineId) } : {}),
        }));
        const outcome = await sendMessages(queue, messages, retry);
        failed.push(...outcome.failed);
        for (const { id, reason } of outcome.failed)
          logger.error('line not enqueued', { lineId: id, reason });
        // Only now: a line whose message was refused must not look queued to the next run.
        for (const lineId of outcome.sent) {
          enqueued.push(lineId);
          await markQueued(archive, lineId, { runId, at: plannedAt }, retry, logger);
        }
      }),
    ),
  );
  return { enqueued, failed, notSent };
}

/**
 * The run report `{prefix}_runs/{date}/{runId}.json`: the plan, the lines enqueued and those
 * already queued. A report that cannot be written is logged, not thrown.
 */
async function writePlanReport(
  archive: Archive,
  logger: Logger,
  plan: FanoutPlan,
  { started, plannedAt }: { readonly started: number; readonly plannedAt: string },
  lines: { readonly enqueued: string[]; readonly alreadyQueued: string[] },
): Promise<void> {
  try {
    const key = await archive.writeRunReport(plan.runId, new Date(started), {
      schemaVersion: 1,
      mode: 'fanout',
      startedAt: plannedAt,
      summary: plan,
      enqueued: lines.enqueued.sort(),
      alreadyQueued: lines.alreadyQueued.sort(),
    });
    logger.info('run report written', { key });
  } catch (error) {
    // The messages are sent: the report describes work that is under way, and is not worth failing it.
    logger.error('run report could not be written', { reason: describeError(error) });
  }
}

/**
 * Sends one batch, sending again the entries SQS did not accept (with backoff) until they are
 * accepted, refused for good, or the attempts are used up.
 */
async function sendMessages(
  queue: WorkQueue,
  messages: readonly WorkMessage[],
  retry: LineWorker['retry'],
): Promise<{ sent: string[]; failed: LineReport[] }> {
  // Entry ids need only be unique within the batch; the line id travels in the body.
  const lineOf = new Map(messages.map((message, index) => [`m${index}`, message.lineId]));
  let pending: QueueEntry[] = messages.map((message, index) => ({
    id: `m${index}`,
    body: encodeWorkMessage(message),
  }));
  const sent: string[] = [];
  const failed: LineReport[] = [];
  const lineId = (entryId: string) => lineOf.get(entryId) ?? entryId;
  try {
    await retry(async () => {
      const failures = await queue.sendBatch(pending);
      const refused = new Map(failures.map((failure) => [failure.id, failure]));
      for (const entry of pending) if (!refused.has(entry.id)) sent.push(lineId(entry.id));
      for (const failure of failures) {
        if (!failure.retryable)
          failed.push({ id: lineId(failure.id), reason: `not enqueued: ${failure.reason}` });
      }
      pending = pending.filter((entry) => refused.get(entry.id)?.retryable === true);
      if (pending.length > 0) {
        const reasons = failures.filter((f) => f.retryable).map((f) => f.reason);
        throw new QueueError(
          `${pending.length} of the batch not accepted (${[...new Set(reasons)].join('; ')})`,
          {
            retryable: true,
          },
        );
      }
    });
  } catch (error) {
    for (const entry of pending) {
      failed.push({ id: lineId(entry.id), reason: `not enqueued: ${describeError(error)}` });
    }
  }
  return { sent, failed };
}

/**
 * Writes a line's queued marker, never over the marker of a run planned later (an operator's run
 * by id overlapping a scheduled one; see {@link keepQueuedMarker}). A marker that cannot be
 * written is logged, not fatal: the message is sent, and the worst case is that the next run
 * sends the line again.
 */
async function markQueued(
  archive: Archive,
  lineId: string,
  marker: QueuedMarker,
  retry: LineWorker['retry'],
  logger: Logger,
): Promise<void> {
  try {
    await retry(() => keepQueuedMarker(archive, lineId, marker));
  } catch (error) {
    logger.warn('line enqueued, but its queued marker could not be written; the next run may send it again', {
      lineId,
      reason: describeError(error),
    });
  }
}

function emitPlanMetrics(metrics: MetricsSink | undefined, plan: FanoutPlan): void {
  if (metrics === undefined) return;
  metrics.addMetric('LinesEnqueued', 'Count', plan.enqueued);
  metrics.addMetric('LinesAlreadyQueued', 'Count', plan.alreadyQueued);
  metrics.addMetric('LinesFailed', 'Count', plan.failed.length);
  metrics.addMetric('LinesDeferred', 'Count', plan.deferred);
  metrics.addMetric('LinesWaiting', 'Count', plan.waiting);
  metrics.addMetric('LinesSkipped', 'Count', plan.skipped.length);
  metrics.addMetric('Retries', 'Count', plan.retries);
  metrics.addMetric('RunDuration', 'Milliseconds', plan.durationMs);
}

/** Splits `items` into runs of at most `size`. */
function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size));
  return chunks;
}
