import type { Logger } from '@aws-lambda-powertools/logger';
import pLimit from 'p-limit';
import type { Archive, Manifest } from './archive.ts';
import type { Config } from './config.ts';
import { createArchive } from './deps.ts';
import { DocumentError, describeError, IntegrityError, TokensApiError } from './errors.ts';
import type { Deps, PlannedLine } from './housekeeping.ts';
import { type RetryListener, withRetry } from './retry.ts';
import { TokensApi } from './tokens-api.ts';
import { parseDeleteReply, parseLineDocument, type TokensLine } from './tokens-line.ts';

/** What became of one line; never thrown, always reported. */
export type LineResult = { readonly id: string; readonly durationMs: number } & (
  | { readonly outcome: 'planned'; readonly plan: PlannedLine }
  | { readonly outcome: 'skipped'; readonly reason: string; readonly notFinished: boolean }
  | {
      readonly outcome: 'archived' | 'dismantled';
      readonly bytes: number;
      readonly uploaded: number;
      readonly reused: number;
    }
  | { readonly outcome: 'failed'; readonly reason: string; readonly errorName: string }
);

/** Counters shared by the concurrent lines of one run. */
export interface Tally {
  retries: number;
  hashMismatches: number;
}

/** How lines are to be handled in this run. */
export interface LineWorkRequest {
  readonly dryRun: boolean;
  readonly archiveOnly: boolean;
}

/** The per-line archive-then-dismantle, shared by the pass and the fan-out worker. */
export interface LineWorker {
  readonly api: TokensApi;
  readonly archive: Archive;
  readonly tally: Tally;
  /** Runs `operation` with the run's retry policy; each retry is counted in the tally and logged. */
  retry<T>(operation: () => Promise<T>): Promise<T>;
  /** Processes one line; every outcome, failures included, is returned, never thrown. */
  processLine(id: string, logger: Logger): Promise<LineResult>;
}

/** Builds the {@link LineWorker} of one run from the container's dependencies. */
export function createLineWorker(
  deps: Deps,
  config: Config,
  options: { readonly runId: string; readonly request: LineWorkRequest; readonly logger: Logger },
): LineWorker {
  const tally: Tally = { retries: 0, hashMismatches: 0 };
  const onRetry: RetryListener = (error, attempt) => {
    tally.retries += 1;
    options.logger.warn('retrying', { attempt, error: describeError(error) });
  };
  const api = new TokensApi({
    baseUrl: config.tokensApiUrl,
    dispatcher: deps.http,
    sessionKey: deps.sessionKey,
    retry: config.retry,
    onRetry,
    download: config.download,
  });
  const archive = createArchive(deps.s3, config);
  const retry = <T>(operation: () => Promise<T>) => withRetry(config.retry, operation, onRetry);
  const work = new LineWork({
    api,
    archive,
    config,
    request: options.request,
    runId: options.runId,
    now: deps.now,
    retry,
    tally,
  });
  return {
    api,
    archive,
    tally,
    retry,
    async processLine(id, logger) {
      const started = deps.now();
      const took = () => deps.now() - started;
      try {
        const outcome = await work.process(id, logger);
        if (outcome.kind === 'planned')
          return { id, durationMs: took(), outcome: 'planned', plan: outcome.plan };
        logger.info(`line ${outcome.kind}`, { ...outcome });
        return { id, durationMs: took(), ...outcome, outcome: outcome.kind };
      } catch (error) {
        if (error instanceof SkipLine) {
          logger.info('line skipped', { reason: error.message });
          return {
            id,
            durationMs: took(),
            outcome: 'skipped',
            reason: error.message,
            notFinished: error.notFinished,
          };
        }
        const reason = describeError(error);
        const errorName = error instanceof Error ? error.name : 'unknown';
        logger.error('line failed', { reason, errorName });
        return { id, durationMs: took(), outcome: 'failed', reason, errorName };
      }
    },
  };
}

type LineOutcome =
  | { readonly kind: 'planned'; readonly plan: PlannedLine }
  | {
      readonly kind: 'archived' | 'dismantled';
      readonly bytes: number;
      readonly uploaded: number;
      readonly reused: number;
    };

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
  readonly request: LineWorkRequest;
  readonly runId: string;
  readonly now: () => number;
  readonly retry: LineWorker['retry'];
  readonly tally: Tally;
}

/** Archive-then-dismantle for one line at a time; shared by every line of a run. */
class LineWork {
  readonly #o: LineWorkOptions;

  constructor(options: LineWorkOptions) {
    this.#o = options;
  }

  async process(id: string, logger: Logger): Promise<LineOutcome> {
    const { api, archive, request, retry } = this.#o;
    const line = await this.#read(id);
    if (request.dryRun) {
      return {
        kind: 'planned',
        plan: {
          id,
          alphabet: line.alphabet ?? null,
          digits: line.digits ?? null,
          files: line.files.length,
          bytes: line.files.reduce((sum, file) => sum + file.size, 0),
          action: request.archiveOnly ? 'archive' : 'archive-and-dismantle',
        },
      };
    }

    let uploaded = 0;
    let reused = 0;
    let bytes = 0;
    // What the line already has in the archive (a re-run, a crash): only those are checked.
    const present = await retry(() => archive.lineObjects(id));
    const limit = pLimit(this.#o.config.fileConcurrency);
    await Promise.all(
      line.files.map((file) =>
        limit(async () => {
          // A store hiccup on the existence check is retried like one on the upload.
          const state = present.has(file.name) ? await retry(() => archive.fileState(id, file)) : 'missing';
          if (state === 'verified') {
            reused += 1;
            return;
          }
          await retry(async () => {
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
          });
          uploaded += 1;
          bytes += file.size;
          logger.debug('file archived', { file: file.name, size: file.size });
        }),
      ),
    );

    await retry(() => this.#ensureManifest(line, present.has('manifest.json')));
    if (request.archiveOnly) return { kind: 'archived', bytes, uploaded, reused };

    const outcome = await api.deleteLine(id);
    const at = new Date(this.#o.now()).toISOString();
    // Keep the reply whatever it says: it is the service's own record of the dismantling.
    const receipt =
      outcome.kind === 'already-gone'
        ? { lineId: id, runId: this.#o.runId, at, alreadyGone: outcome.confirmation }
        : { lineId: id, runId: this.#o.runId, at, reply: outcome.document };
    try {
      await retry(async () => {
        // A pass that only found the line gone keeps the reply saved by the pass that deleted it.
        if (outcome.kind === 'already-gone' && (await archive.hasReceipt(id))) return;
        await archive.writeReceipt(id, receipt);
      });
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

  /**
   * Writes the manifest unless an identical one (same files, sizes and hashes) is there; when
   * the line's listing showed none, it is not looked for.
   */
  async #ensureManifest(line: TokensLine, mayExist: boolean): Promise<void> {
    const { archive } = this.#o;
    const files = line.files.map((file) => ({
      name: file.name,
      key: archive.fileKey(line.id, file.name),
      size: file.size,
      sha256: file.sha256,
    }));
    const existing = mayExist ? await archive.readManifest(line.id) : undefined;
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
