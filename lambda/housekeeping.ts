import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import type { Dispatcher } from 'undici';
import { Archive, type Manifest } from './archive.ts';
import type { Config } from './config.ts';
import { DocumentError, describeError, IntegrityError, TokensApiError } from './errors.ts';
import type { RunRequest } from './event.ts';
import type { RetryListener } from './retry.ts';
import { withRetry } from './retry.ts';
import type { SessionKeySource } from './session-key.ts';
import { TokensApi } from './tokens-api.ts';
import {
  type ListedLine,
  parseDeleteReply,
  parseLineDocument,
  parseListPage,
  type TokensLine,
} from './tokens-line.ts';

/** A sink for CloudWatch metrics; Powertools `Metrics` fits it. */
export interface MetricsSink {
  addMetric(name: string, unit: 'Count' | 'Bytes' | 'Milliseconds', value: number): void;
}

/** Everything the pass talks to, built once per container by `createDeps()` or by a test. */
export interface Deps {
  readonly s3: S3Client;
  readonly sessionKey: SessionKeySource;
  /** undici Agent with the configured timeouts. */
  readonly http: Dispatcher;
  readonly now: () => number;
  readonly logger: Logger;
  readonly metrics?: MetricsSink;
}

/** Per-invocation facts the pass cannot know by itself. */
export interface RunContext {
  /** Milliseconds left in this Lambda invocation; absent outside Lambda. */
  readonly remainingMs?: () => number;
  readonly runId?: string;
}

export interface LineReport {
  readonly id: string;
  readonly reason: string;
}

/** One line of a dry-run plan. */
export interface PlannedLine {
  readonly id: string;
  readonly files: number;
  readonly bytes: number;
  readonly action: 'archive' | 'archive-and-dismantle';
}

/** What a run did; returned by the handler and logged as one line. */
export interface Summary {
  readonly runId: string;
  readonly dryRun: boolean;
  readonly archiveOnly: boolean;
  /** Lines the run looked at: listed by the service, or named in `ids`. */
  readonly listed: number;
  /** Of those, lines in state `finished` (for `ids`: found finished when read). */
  readonly finished: number;
  /** Lines whose every file and manifest are verified in S3 by this run. */
  readonly archived: number;
  /** Lines dismantled (DELETE confirmed) by this run. */
  readonly dismantled: number;
  /** Bytes uploaded by this run. */
  readonly bytes: number;
  readonly filesUploaded: number;
  /** Files found already archived and verified, so not uploaded again. */
  readonly filesReused: number;
  /** Finished lines not started for lack of time or because of `maxLines`; the next run takes them. */
  readonly deferred: number;
  readonly retries: number;
  readonly hashMismatches: number;
  readonly skipped: readonly LineReport[];
  readonly failed: readonly LineReport[];
  readonly plan?: readonly PlannedLine[];
  readonly durationMs: number;
}

type LineOutcome =
  | { readonly kind: 'planned'; readonly plan: PlannedLine }
  | { readonly kind: 'skipped'; readonly reason: string }
  | {
      readonly kind: 'archived' | 'dismantled';
      readonly bytes: number;
      readonly uploaded: number;
      readonly reused: number;
    };

/** Counters shared by the concurrent lines of one run. */
interface Tally {
  retries: number;
  hashMismatches: number;
}

/**
 * One housekeeping pass: select the finished lines, then for each archive every file verified
 * into S3, write the manifest, and only then dismantle it and keep the receipt. Per-line failures
 * are reported in the summary; run-level failures (the list unreachable, the key unreadable)
 * throw.
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
  const tally: Tally = { retries: 0, hashMismatches: 0 };
  const onRetry: RetryListener = (error, attempt) => {
    tally.retries += 1;
    logger.warn('retrying', { attempt, error: describeError(error) });
  };
  const api = new TokensApi({
    baseUrl: config.tokensApiUrl,
    dispatcher: deps.http,
    sessionKey: deps.sessionKey,
    retry: config.retry,
    onRetry,
  });
  const archive = new Archive({
    s3: deps.s3,
    bucket: config.archiveBucket,
    prefix: config.archivePrefix,
    multipartThresholdBytes: config.upload.multipartThresholdBytes,
    partSizeBytes: config.upload.partSizeBytes,
    readback: config.upload.readback,
  });

  logger.info('run started', { request: { ...request } });
  const selection = await select(api, request, logger);
  const skipped: LineReport[] = [...selection.skipped];
  const failed: LineReport[] = [];
  const plan: PlannedLine[] = [];
  let archived = 0;
  let dismantled = 0;
  let bytes = 0;
  let filesUploaded = 0;
  let filesReused = 0;
  let deferred = 0;
  let finished = selection.finished;

  const limit = pLimit(config.lineConcurrency);
  let startedLines = 0;
  const work = new LineWork({ api, archive, config, request, runId, now: deps.now, onRetry, tally });
  await Promise.all(
    selection.candidates.map((id) =>
      limit(async () => {
        const remaining = context.remainingMs?.();
        const outOfTime = remaining !== undefined && remaining < config.timeReserveMs;
        if (outOfTime || (request.maxLines !== undefined && startedLines >= request.maxLines)) {
          deferred += 1;
          return;
        }
        startedLines += 1;
        const lineLogger = logger.createChild({ persistentKeys: { runId, lineId: id } });
        try {
          const outcome = await work.process(id, lineLogger);
          switch (outcome.kind) {
            case 'planned':
              plan.push(outcome.plan);
              break;
            case 'skipped':
              skipped.push({ id, reason: outcome.reason });
              lineLogger.info('line skipped', { reason: outcome.reason });
              break;
            case 'archived':
            case 'dismantled':
              archived += 1;
              if (outcome.kind === 'dismantled') dismantled += 1;
              bytes += outcome.bytes;
              filesUploaded += outcome.uploaded;
              filesReused += outcome.reused;
              lineLogger.info(`line ${outcome.kind}`, { ...outcome });
              break;
          }
        } catch (error) {
          if (error instanceof SkipLine) {
            if (error.notFinished) finished -= 1;
            skipped.push({ id, reason: error.message });
            lineLogger.info('line skipped', { reason: error.message });
            return;
          }
          const reason = describeError(error);
          failed.push({ id, reason });
          lineLogger.error('line failed', {
            reason,
            errorName: error instanceof Error ? error.name : 'unknown',
          });
        }
      }),
    ),
  );

  const summary: Summary = {
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
    deferred,
    retries: tally.retries,
    hashMismatches: tally.hashMismatches,
    skipped: sortById(skipped),
    failed: sortById(failed),
    ...(request.dryRun ? { plan: sortById(plan) } : {}),
    durationMs: deps.now() - started,
  };
  emitMetrics(deps.metrics, summary);
  logger.info('run summary', { summary });
  return summary;
}

function sortById<T extends { id: string }>(items: T[]): T[] {
  return items.sort((a, b) => a.id.localeCompare(b.id));
}

function emitMetrics(metrics: MetricsSink | undefined, summary: Summary): void {
  if (metrics === undefined || summary.dryRun) return;
  metrics.addMetric('LinesArchived', 'Count', summary.archived);
  metrics.addMetric('LinesDismantled', 'Count', summary.dismantled);
  metrics.addMetric('LinesFailed', 'Count', summary.failed.length);
  metrics.addMetric('LinesDeferred', 'Count', summary.deferred);
  metrics.addMetric('LinesSkipped', 'Count', summary.skipped.length);
  metrics.addMetric('FilesArchived', 'Count', summary.filesUploaded);
  metrics.addMetric('BytesArchived', 'Bytes', summary.bytes);
  metrics.addMetric('HashMismatches', 'Count', summary.hashMismatches);
  metrics.addMetric('Retries', 'Count', summary.retries);
  metrics.addMetric('RunDuration', 'Milliseconds', summary.durationMs);
}

interface Selection {
  readonly listed: number;
  readonly finished: number;
  /** Line ids to process, in order. */
  readonly candidates: readonly string[];
  readonly skipped: readonly LineReport[];
}

/** Chooses the lines of this run: the ids asked for, or every finished line of the list. */
async function select(api: TokensApi, request: RunRequest, logger: Logger): Promise<Selection> {
  if (request.ids !== undefined) {
    // Read by id later, one by one; a line that is not finished is then reported as skipped.
    return { listed: request.ids.length, finished: request.ids.length, candidates: request.ids, skipped: [] };
  }
  const seen = new Map<string, ListedLine>();
  const skipped: LineReport[] = [];
  let next: string | undefined;
  let pages = 0;
  const visited = new Set<string>();
  do {
    const page = parseListPage(await api.listPage(next));
    pages += 1;
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
      visited.add(next);
    }
  } while (next !== undefined);
  const candidates: string[] = [];
  for (const line of seen.values()) {
    if (line.status === 'finished') candidates.push(line.id);
    else if (!['requested', 'started', 'deleted'].includes(line.status)) {
      skipped.push({ id: line.id, reason: `unknown status "${line.status}"` });
    }
  }
  logger.info('lines listed', {
    pages,
    listed: seen.size,
    finished: candidates.length,
    malformed: skipped.length,
  });
  return { listed: seen.size, finished: candidates.length, candidates, skipped };
}

/** A line that is not to be touched: not finished when read by id, or invalid. Reported as skipped. */
class SkipLine extends Error {
  constructor(
    reason: string,
    readonly notFinished: boolean,
  ) {
    super(reason);
  }
}

interface LineWorkOptions {
  readonly api: TokensApi;
  readonly archive: Archive;
  readonly config: Config;
  readonly request: RunRequest;
  readonly runId: string;
  readonly now: () => number;
  readonly onRetry: RetryListener;
  readonly tally: Tally;
}

/** Archive-then-dismantle for one line at a time; shared by every line of a run. */
class LineWork {
  readonly #o: LineWorkOptions;

  constructor(options: LineWorkOptions) {
    this.#o = options;
  }

  async process(id: string, logger: Logger): Promise<LineOutcome> {
    const { api, archive, request } = this.#o;
    const line = await this.#read(id);
    if (request.dryRun) {
      return {
        kind: 'planned',
        plan: {
          id,
          files: line.files.length,
          bytes: line.files.reduce((sum, file) => sum + file.size, 0),
          action: request.archiveOnly ? 'archive' : 'archive-and-dismantle',
        },
      };
    }

    let uploaded = 0;
    let reused = 0;
    let bytes = 0;
    const limit = pLimit(this.#o.config.fileConcurrency);
    await Promise.all(
      line.files.map((file) =>
        limit(async () => {
          // A store hiccup on the existence check is retried like one on the upload.
          const state = await withRetry(
            this.#o.config.retry,
            () => archive.fileState(id, file),
            this.#o.onRetry,
          );
          if (state === 'verified') {
            reused += 1;
            return;
          }
          await withRetry(
            this.#o.config.retry,
            async () => {
              const url = api.fileUrl(id, file);
              const body = await api.openFile(url);
              try {
                await archive.uploadVerified(id, file, body);
              } catch (error) {
                if (error instanceof IntegrityError) {
                  this.#o.tally.hashMismatches += 1;
                  logger.warn('file does not match its stated size or hash', {
                    file: file.name,
                    error: error.message,
                  });
                }
                throw error;
              }
            },
            this.#o.onRetry,
          );
          uploaded += 1;
          bytes += file.size;
          logger.debug('file archived', { file: file.name, size: file.size });
        }),
      ),
    );

    await withRetry(this.#o.config.retry, () => this.#ensureManifest(line), this.#o.onRetry);
    if (request.archiveOnly) return { kind: 'archived', bytes, uploaded, reused };

    const outcome = await api.deleteLine(id);
    const at = new Date(this.#o.now()).toISOString();
    // Keep the reply whatever it says: it is the service's own record of the dismantling.
    const receipt =
      outcome.kind === 'already-gone'
        ? { lineId: id, runId: this.#o.runId, at, alreadyGone: outcome.confirmation }
        : { lineId: id, runId: this.#o.runId, at, reply: outcome.document };
    try {
      await withRetry(
        this.#o.config.retry,
        async () => {
          // A pass that only found the line gone keeps the reply saved by the pass that deleted it.
          if (outcome.kind === 'already-gone' && (await archive.hasReceipt(id))) return;
          await archive.writeReceipt(id, receipt);
        },
        this.#o.onRetry,
      );
    } catch (error) {
      // The line is gone from the service and its archive is complete: reporting it as failed
      // would send an operator after a line that no longer exists. The receipt is only proof.
      logger.error('line dismantled, but its receipt could not be written', { reason: describeError(error) });
    }
    if (outcome.kind === 'deleted') parseDeleteReply(outcome.document, id);
    return { kind: 'dismantled', bytes, uploaded, reused };
  }

  /** Re-reads the line by id just before work: list items carry no links, and status moves on. */
  async #read(id: string): Promise<TokensLine> {
    let document: unknown;
    try {
      document = await this.#o.api.getLine(id);
    } catch (error) {
      if (error instanceof TokensApiError && error.status === 404)
        throw new SkipLine('not found (404)', true);
      throw error;
    }
    let line: TokensLine;
    try {
      line = parseLineDocument(document, id);
    } catch (error) {
      if (error instanceof DocumentError) throw new SkipLine(`invalid: ${error.message}`, false);
      throw error;
    }
    if (line.status !== 'finished') throw new SkipLine(`status is "${line.status}", not finished`, true);
    return line;
  }

  /** Writes the manifest unless an identical one (same files, sizes and hashes) is there. */
  async #ensureManifest(line: TokensLine): Promise<void> {
    const { archive } = this.#o;
    const files = line.files.map((file) => ({
      name: file.name,
      key: archive.fileKey(line.id, file.name),
      size: file.size,
      sha256: file.sha256,
    }));
    const existing = await archive.readManifest(line.id);
    const same =
      existing !== undefined &&
      JSON.stringify(existing.files.map(({ name, size, sha256 }) => [name, size, sha256])) ===
        JSON.stringify(files.map(({ name, size, sha256 }) => [name, size, sha256]));
    if (same) return;
    const manifest: Manifest = {
      schemaVersion: 1,
      lineId: line.id,
      runId: this.#o.runId,
      archivedAt: new Date(this.#o.now()).toISOString(),
      bucket: archive.bucket,
      files,
      line: line.document,
    };
    await archive.writeManifest(manifest);
  }
}
