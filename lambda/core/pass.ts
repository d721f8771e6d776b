import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import pLimit from 'p-limit';
import { DeadlineError, DocumentError, describeError, ListingError } from '../shared/errors.ts';
import type { TokensApi } from '../tokens/api.ts';
import { KNOWN_STATUSES, type ListedLine, parseListPage } from '../tokens/document.ts';
import { minAgeOf } from './grace.ts';
import { createLineWorker } from './line.ts';
import type {
  Config,
  Deps,
  LineReport,
  LineResult,
  LineWorker,
  MetricsSink,
  PlannedLine,
  RunContext,
  RunRequest,
  Selection,
  Summary,
  Tally,
} from './types.ts';

/** Whether too little of the invocation is left to start another line (or batch); never outside Lambda. */
export function outOfTime(
  context: Pick<RunContext, 'remainingMs'>,
  config: Pick<Config, 'timeReserveMs'>,
): boolean {
  const remaining = context.remainingMs?.();
  return remaining !== undefined && remaining < config.timeReserveMs;
}

/** The {@link RunContext} time source of a Lambda context; none outside Lambda. */
export function remainingOf(
  context: Pick<Context, 'getRemainingTimeInMillis'> | undefined,
): Pick<RunContext, 'remainingMs'> {
  return context === undefined ? {} : { remainingMs: () => context.getRemainingTimeInMillis() };
}

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

/**
 * The run's hard deadline: in Lambda, the time left minus `DEADLINE_RESERVE_MS` (time to write
 * the run report and metrics); at the terminal, `--max-duration`. When it fires, in-flight
 * downloads and uploads are aborted (a multipart upload is aborted, nothing half-written counts)
 * and the lines in flight are reported failed with the reason.
 */
export function runDeadline(
  context: Pick<RunContext, 'remainingMs'>,
  config: Pick<Config, 'deadlineReserveMs'>,
  request: Pick<RunRequest, 'maxDurationSeconds'>,
): { readonly signal: AbortSignal; clear(): void } {
  const limits: { ms: number; why: string }[] = [];
  const remaining = context.remainingMs?.();
  if (remaining !== undefined) {
    limits.push({
      ms: Math.max(0, remaining - config.deadlineReserveMs),
      why: `the Lambda invocation has ${remaining} ms left, less a reserve of ${config.deadlineReserveMs} ms (DEADLINE_RESERVE_MS)`,
    });
  }
  if (request.maxDurationSeconds !== undefined) {
    limits.push({
      ms: request.maxDurationSeconds * 1000,
      why: `max duration ${request.maxDurationSeconds} s`,
    });
  }
  const controller = new AbortController();
  const first = limits.sort((a, b) => a.ms - b.ms)[0];
  if (first === undefined) return { signal: controller.signal, clear: () => undefined };
  const timer = setTimeout(
    () => controller.abort(new DeadlineError(`run deadline reached after ${first.ms} ms (${first.why})`)),
    first.ms,
  );
  timer.unref();
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}

async function passWithin(
  deps: Deps,
  config: Config,
  request: RunRequest,
  context: RunContext,
  run: { started: number; runId: string; logger: Logger; signal: AbortSignal },
): Promise<Summary> {
  const { started, runId, logger, signal } = run;
  const minAgeMs = minAgeOf(request.minAgeSeconds, config.minAgeMs);
  const worker = createLineWorker(deps, config, { runId, request: { ...request, minAgeMs }, logger, signal });

  logger.info('run started', { request: { ...request } });
  const selection = await withPendingLines(
    worker,
    await select(worker.api, request, logger, { ...config.listing, signal }),
    request,
    logger,
  );
  const results: LineResult[] = [];
  let deferred = 0;
  let bytes = 0;

  const limit = pLimit(config.lineConcurrency);
  let startedLines = 0;
  await Promise.all(
    selection.candidates.map((id) =>
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
        const result = await worker.processLine(
          id,
          logger.createChild({ persistentKeys: { runId, lineId: id } }),
        );
        results.push(result);
        bytes += 'bytes' in result && result.bytes !== undefined ? result.bytes : 0;
        context.onProgress?.({ done: results.length + deferred, total: selection.candidates.length, bytes });
      }),
    ),
  );

  const summary = summarize(runId, request, selection, results, {
    deferred,
    tally: worker.tally,
    durationMs: deps.now() - started,
  });
  emitMetrics(deps.metrics, summary);
  logger.info('run summary', { summary });
  if (!request.dryRun) await writeRunReport(worker, summary, results, new Date(started), logger);
  return summary;
}

/** The {@link Summary} of a set of line results; also the fan-out worker's summary of a batch. */
export function summarize(
  runId: string,
  request: RunRequest,
  selection: Selection,
  results: readonly LineResult[],
  extra: { deferred: number; tally: Tally; durationMs: number; waiting?: number },
): Summary {
  const skipped: LineReport[] = [...selection.skipped];
  const failed: LineReport[] = [];
  const pending: LineReport[] = [];
  const plan: PlannedLine[] = [];
  let conflicts = 0;
  let waiting = extra.waiting ?? 0;
  let finished = selection.finished;
  let archived = 0;
  let dismantled = 0;
  let bytes = 0;
  let filesUploaded = 0;
  let filesReused = 0;
  for (const result of results) {
    switch (result.outcome) {
      case 'planned':
        plan.push(result.plan);
        break;
      case 'waiting':
        waiting += 1;
        break;
      case 'skipped':
        if (result.notFinished) finished -= 1;
        skipped.push({ id: result.id, reason: result.reason });
        break;
      case 'failed':
        failed.push({
          id: result.id,
          reason: result.reason,
          ...(result.conflict ? { conflict: true } : {}),
          ...(result.dismantled ? { dismantled: true } : {}),
        });
        if (result.conflict) conflicts += 1;
        if (result.dismantled) {
          archived += 1;
          dismantled += 1;
          bytes += result.bytes ?? 0;
          filesUploaded += result.uploaded ?? 0;
          filesReused += result.reused ?? 0;
        }
        break;
      case 'archived':
      case 'dismantled':
      case 'pending':
        archived += 1;
        if (result.outcome === 'dismantled') dismantled += 1;
        if (result.outcome === 'pending') pending.push({ id: result.id, reason: result.reason });
        bytes += result.bytes;
        filesUploaded += result.uploaded;
        filesReused += result.reused;
        break;
    }
  }
  return {
    runId,
    dryRun: request.dryRun,
    archiveOnly: request.archiveOnly,
    listed: selection.listed,
    finished,
    archived,
    dismantled,
    bytes,
    filesUploaded,
    filesReused,
    deferred: extra.deferred,
    waiting,
    retries: extra.tally.retries,
    hashMismatches: extra.tally.hashMismatches,
    conflicts,
    skipped: sortById(skipped),
    failed: sortById(failed),
    pending: sortById(pending),
    ...(request.dryRun ? { plan: sortById(plan) } : {}),
    durationMs: extra.durationMs,
  };
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

/** Sorts reports by line id, in place, for stable summaries. */
export function sortById<T extends { id: string }>(items: T[]): T[] {
  return items.sort((a, b) => a.id.localeCompare(b.id));
}

/** The metrics of a pass, each read off a {@link Summary}; a fan-out worker's batch sums them. */
export const PASS_METRICS: readonly (readonly [
  name: string,
  unit: 'Count' | 'Bytes',
  value: (summary: Summary) => number,
])[] = [
  ['LinesArchived', 'Count', (s) => s.archived],
  ['LinesDismantled', 'Count', (s) => s.dismantled],
  ['LinesFailed', 'Count', (s) => s.failed.length],
  ['LinesDeferred', 'Count', (s) => s.deferred],
  ['LinesWaiting', 'Count', (s) => s.waiting],
  ['LinesSkipped', 'Count', (s) => s.skipped.length],
  ['FilesArchived', 'Count', (s) => s.filesUploaded],
  ['BytesArchived', 'Bytes', (s) => s.bytes],
  ['HashMismatches', 'Count', (s) => s.hashMismatches],
  ['Conflicts', 'Count', (s) => s.conflicts],
  ['LinesPending', 'Count', (s) => s.pending.length],
  ['Retries', 'Count', (s) => s.retries],
];

function emitMetrics(metrics: MetricsSink | undefined, summary: Summary): void {
  if (metrics === undefined || summary.dryRun) return;
  for (const [name, unit, value] of PASS_METRICS) metrics.addMetric(name, unit, value(summary));
  metrics.addMetric('RunDuration', 'Milliseconds', summary.durationMs);
}

/**
 * Adds the lines whose DELETE an earlier run saw taken (202) but not done, so that this run
 * confirms them and keeps their receipt even when the service no longer lists them.
 */
export async function withPendingLines(
  worker: Pick<LineWorker, 'archive' | 'retry'>,
  selection: Selection,
  request: RunRequest,
  logger: Logger,
): Promise<Selection> {
  if (request.dryRun || request.archiveOnly || request.ids !== undefined) return selection;
  const known = new Set(selection.candidates);
  let extra: string[];
  try {
    extra = (await worker.retry(() => worker.archive.pendingLineIds())).filter((id) => !known.has(id));
  } catch (error) {
    // Only confirmations wait: the listed lines are still worth the run.
    logger.error('pending DELETE markers could not be listed; they are confirmed by a later run', {
      reason: describeError(error),
    });
    return selection;
  }
  if (extra.length === 0) return selection;
  logger.info('lines with a pending DELETE to confirm', { lines: extra.length });
  return {
    ...selection,
    listed: selection.listed + extra.length,
    finished: selection.finished + extra.length,
    candidates: [...selection.candidates, ...extra],
  };
}

/** How far {@link select} follows the list (`Config['listing']`), and when it stops. */
export interface SelectOptions {
  /** Most pages of one listing; default 10,000. */
  readonly maxPages?: number;
  /** Most pages without items in a row; default 20. */
  readonly maxEmptyPages?: number;
  /** Stops the listing before the next page (the run's deadline). */
  readonly signal?: AbortSignal;
}

/**
 * Chooses the lines of this run: the ids asked for, or every finished line of the list. A list
 * that loops, or goes on past the page cap or the run of empty pages, throws: the run fails whole.
 */
export async function select(
  api: TokensApi,
  request: RunRequest,
  logger: Logger,
  options: SelectOptions = {},
): Promise<Selection> {
  const { maxPages = 10_000, maxEmptyPages = 20, signal } = options;
  if (request.ids !== undefined) {
    // Read by id later, one by one; a line that is not finished is then reported as skipped.
    return { listed: request.ids.length, finished: request.ids.length, candidates: request.ids, skipped: [] };
  }
  const seen = new Map<string, ListedLine>();
  const skipped: LineReport[] = [];
  let next: string | undefined;
  let pages = 0;
  let emptyInARow = 0;
  // At most one cursor per page, so bounded by maxPages.
  const visited = new Set<string>();
  do {
    signal?.throwIfAborted();
    const page = parseListPage(await api.listPage(next));
    pages += 1;
    emptyInARow = page.lines.length + page.invalid.length === 0 ? emptyInARow + 1 : 0;
    for (const item of page.invalid) {
      skipped.push({ id: item.id ?? '(no valid id)', reason: `malformed list item: ${item.reason}` });
    }
    for (const line of page.lines) {
      if (seen.has(line.id)) {
        logger.warn('line listed twice; processed once', { lineId: line.id });
        continue;
      }
      seen.set(line.id, line);
    }
    next = page.next;
    if (next !== undefined) {
      if (visited.has(next)) throw new DocumentError('list', `links.next repeats ${next}: the listing loops`);
      if (pages >= maxPages) {
        throw new ListingError(pages, `the list went on for more than ${maxPages} pages (LIST_MAX_PAGES)`);
      }
      if (emptyInARow >= maxEmptyPages) {
        throw new ListingError(pages, `${emptyInARow} empty pages in a row (LIST_MAX_EMPTY_PAGES)`);
      }
      visited.add(next);
    }
  } while (next !== undefined);
  const candidates: string[] = [];
  for (const line of seen.values()) {
    if (line.status === 'finished') candidates.push(line.id);
    else if (!KNOWN_STATUSES.has(line.status)) {
      skipped.push({ id: line.id, reason: `unknown status "${line.status}"` });
    }
  }
  logger.info('lines listed', {
    pages,
    listed: seen.size,
    finished: candidates.length,
    malformed: skipped.length,
  });
  const finishedAt = new Map(candidates.map((id) => [id, seen.get(id)?.finishedAt]));
  return { listed: seen.size, finished: candidates.length, candidates, skipped, finishedAt };
}
