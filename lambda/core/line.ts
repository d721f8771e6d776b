import type { Logger } from '@aws-lambda-powertools/logger';
import pLimit from 'p-limit';
import type {
  Archive,
  Manifest,
  ManifestFile,
  Receipt,
  StoredFile,
  SupersededFile,
  WriteCondition,
} from '../archive/archive.ts';
import {
  ArchiveChangedError,
  ConflictError,
  DocumentError,
  deadlineReason,
  describeError,
  HousekeepingError,
  IntegrityError,
  TokensApiError,
} from '../shared/errors.ts';
import type { LineFile } from '../shared/ids.ts';
import { type RetryListener, withRetry } from '../shared/retry.ts';
import type { DeleteReply, JsonReply, TokensApi } from '../tokens/api.ts';
import { parseDeleteReply, parseLineDocument, type TokensLine } from '../tokens/document.ts';
import { judgeAge } from './grace.ts';
import type { Config, Deps, FileCounts, LineWorker, LineWorkRequest, PlannedLine, Tally } from './types.ts';

/** How often a line that changes while it is archived is archived again before the pass gives up on it. */
const MAX_ROUNDS = 3;

/** Builds the {@link LineWorker} of one run from the container's dependencies. */
export function createLineWorker(
  deps: Deps,
  config: Config,
  options: {
    readonly runId: string;
    readonly request: LineWorkRequest;
    readonly logger: Logger;
    /** The run's deadline: in-flight work is aborted when it fires. */
    readonly signal?: AbortSignal;
  },
): LineWorker {
  const tally: Tally = { retries: 0, hashMismatches: 0 };
  const onRetry: RetryListener = (error, attempt) => {
    tally.retries += 1;
    options.logger.warn('retrying', { attempt, error: describeError(error) });
  };
  const api = deps.tokens({ onRetry, ...(options.signal === undefined ? {} : { signal: options.signal }) });
  const archive = deps.archive;
  const retry = <T>(operation: () => Promise<T>, signal = options.signal) =>
    withRetry(config.retry, operation, onRetry, signal);
  const work = new LineWork({
    api,
    archive,
    config,
    request: options.request,
    runId: options.runId,
    now: deps.now,
    retry,
    tally,
    signal: options.signal,
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
        const outcome = await work.process(id.toLowerCase(), logger);
        if (outcome.kind === 'planned')
          return { id, durationMs: took(), outcome: 'planned', plan: outcome.plan };
        if (outcome.kind === 'waiting') {
          logger.info('line waiting', { until: outcome.until });
          return { id, durationMs: took(), outcome: 'waiting', until: outcome.until };
        }
        if (outcome.kind === 'failed') {
          logger.error('line failed', { reason: outcome.reason, conflict: true, dismantled: true });
          const { kind: _failed, ...rest } = outcome;
          return {
            id,
            durationMs: took(),
            ...rest,
            outcome: 'failed',
            errorName: 'ConflictError',
            conflict: true,
            dismantled: true,
          };
        }
        logger.info(`line ${outcome.kind}`, { ...outcome });
        const { kind, ...rest } = outcome;
        if (kind === 'pending')
          return { id, durationMs: took(), ...rest, reason: outcome.reason, outcome: kind };
        return { id, durationMs: took(), ...rest, outcome: kind };
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
        const failure = deadlineReason(options.signal) ?? error;
        const reason = describeError(failure);
        const errorName = failure instanceof Error ? failure.name : 'unknown';
        const conflict = failure instanceof ConflictError;
        logger.error('line failed', { reason, errorName, ...(conflict ? { conflict } : {}) });
        return {
          id,
          durationMs: took(),
          outcome: 'failed',
          reason,
          errorName,
          ...(conflict ? { conflict: true as const } : {}),
        };
      }
    },
  };
}

type LineOutcome =
  | { readonly kind: 'planned'; readonly plan: PlannedLine }
  | { readonly kind: 'waiting'; readonly until: string }
  | ({ readonly kind: 'archived' | 'dismantled' } & FileCounts)
  | ({ readonly kind: 'pending'; readonly reason: string } & FileCounts)
  /** Dismantled, but the DELETE reply states files other than the archive's: reported loudly. */
  | ({ readonly kind: 'failed'; readonly reason: string } & FileCounts);

/** A line that is not to be touched: not finished when read by id, or invalid. Reported as skipped. */
class SkipLine extends Error {
  constructor(
    reason: string,
    readonly notFinished: boolean,
  ) {
    super(reason);
  }
}

/** A line as read by id: validated, with its document exactly as the service sent it. */
interface ReadLine {
  readonly line: TokensLine;
  readonly bytes: Buffer;
}

/** Where one stated file goes, and whether it must be uploaded. */
interface FilePlan {
  readonly file: LineFile;
  readonly key: string;
  readonly upload: boolean;
  /** The condition of its upload: what the plan saw at `key`. */
  readonly condition: WriteCondition;
  /** Earlier versions this file replaces in the manifest (keep-both only). */
  readonly supersedes: readonly ManifestFile[];
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
  readonly signal: AbortSignal | undefined;
}

/** Archive-then-dismantle for one line at a time; shared by every line of a run. */
class LineWork {
  readonly #o: LineWorkOptions;

  constructor(options: LineWorkOptions) {
    this.#o = options;
  }

  async process(id: string, logger: Logger): Promise<LineOutcome> {
    const { request } = this.#o;
    const first = await this.#read(id, logger);
    if (first.kind === 'confirmed') return { kind: 'dismantled', bytes: 0, uploaded: 0, reused: first.files };
    const { line } = first.read;
    const age = judgeAge(line.finishedAt, request.minAgeMs, this.#o.now());
    if (age.kind === 'unknown') throw new SkipLine(age.reason, false);
    if (request.dryRun) {
      return {
        kind: 'planned',
        plan: {
          id,
          alphabet: line.alphabet ?? null,
          digits: line.digits ?? null,
          files: line.files.length,
          bytes: line.files.reduce((sum, file) => sum + file.size, 0),
          ...(age.kind === 'waiting'
            ? { action: 'wait', until: age.until }
            : { action: request.archiveOnly ? 'archive' : 'archive-and-dismantle' }),
        },
      };
    }
    if (age.kind === 'waiting') return { kind: 'waiting', until: age.until };

    const uploads = new Uploads();
    let current = first.read;
    let manifest: Manifest;
    // The line is read again right before its DELETE: one that changed while its files were
    // streamed (a file added, restated or dropped) is archived again, or kept as a conflict.
    for (let round = 1; ; round += 1) {
      let archived: Manifest | 'changed';
      try {
        archived = await this.#archiveRound(current, uploads, logger);
      } catch (error) {
        // Another pass wrote this line's archive meanwhile: plan again from what is there now.
        if (!(error instanceof ArchiveChangedError) || round >= MAX_ROUNDS) throw error;
        logger.warn('another pass changed the archive of this line; planning again', {
          reason: error.message,
        });
        archived = 'changed';
      }
      if (archived === 'changed') continue;
      manifest = archived;
      if (request.archiveOnly) return { kind: 'archived', ...uploads.counts(manifest) };
      this.#checkStopped();
      const fresh = await this.#reread(id);
      // Gone, or unreadable, right before the DELETE: another pass may have dismantled it, or a
      // flaky front answered 404. Either way no DELETE is sent; a later run looks again.
      if (fresh === 'gone') {
        throw new SkipLine('not found (404 or 410) right before its DELETE: no DELETE sent', true);
      }
      if (sameFiles(fresh.line.files, manifest.files)) break;
      if (round >= MAX_ROUNDS) {
        throw new HousekeepingError(
          `line ${id}: its files changed ${round} times while being archived; kept, the next run tries again`,
        );
      }
      logger.warn('the line states other files than were just archived; archiving again before any DELETE', {
        round,
      });
      current = fresh;
    }
    return this.#dismantle(id, manifest, uploads.counts(manifest), logger);
  }

  /** Plans, uploads and records the line's files once: the manifest that states them. */
  async #archiveRound(read: ReadLine, uploads: Uploads, logger: Logger): Promise<Manifest> {
    const { archive, retry } = this.#o;
    const id = read.line.id;
    // What the line already has in the archive (a re-run, a crash): only those are checked.
    const present = await retry(() => archive.lineObjects(id));
    const found = present.has('manifest.json')
      ? await retry(() => archive.readManifestForUpdate(id))
      : undefined;
    if (found !== undefined && found.manifest === undefined) {
      throw new ConflictError(
        id,
        'manifest.json',
        undefined,
        undefined,
        'the manifest there is not one this version reads (damaged, or written by a newer release): kept, nothing overwritten',
      );
    }
    const plans = await this.#planFiles(read.line, found?.manifest, present, logger);
    await this.#uploadAll(id, plans, uploads, logger);
    return retry(() => this.#ensureManifest(read, plans, found));
  }

  /**
   * Where each stated file goes. A verified archive is never overwritten: a file the archive (its
   * manifest, or the object at the file's key) holds as another version is a conflict, unless the
   * operator asked to keep both, when the new version goes beside it at its own key.
   */
  async #planFiles(
    line: TokensLine,
    manifest: Manifest | undefined,
    present: ReadonlySet<string>,
    logger: Logger,
  ): Promise<FilePlan[]> {
    const { archive, retry, request } = this.#o;
    const keepBoth = request.onConflict === 'keep-both';
    const id = line.id;
    const stated = new Set(line.files.map((file) => file.name));
    const plans: FilePlan[] = [];
    const dropped = (manifest?.files ?? []).filter((entry) => !stated.has(entry.name));
    for (const entry of dropped) {
      if (!keepBoth) {
        throw new ConflictError(
          id,
          entry.name,
          entry,
          undefined,
          `archived as ${describeFile(entry)}, the service no longer states it`,
        );
      }
    }
    const inspect = (key: string): Promise<StoredFile> =>
      present.has(key.slice(archive.lineKey(id).length))
        ? retry(() => archive.inspect(key))
        : Promise.resolve({ kind: 'missing' });

    for (const file of line.files) {
      const defaultKey = archive.fileKey(id, file.name);
      const newKey = archive.versionKey(id, file.name, file.sha256);
      const supersedes: ManifestFile[] = [];
      const entry = manifest?.files.find((recorded) => recorded.name === file.name);
      let key = defaultKey;
      if (entry !== undefined && sameFile(entry, file)) {
        if (entry.key !== defaultKey && entry.key !== newKey) {
          throw new ConflictError(
            id,
            file.name,
            entry,
            file,
            `the manifest names an unexpected key ${entry.key}`,
          );
        }
        key = entry.key;
      } else if (entry !== undefined) {
        if (!keepBoth) {
          throw new ConflictError(
            id,
            file.name,
            entry,
            file,
            `archived as ${describeFile(entry)}, the service now states ${describeFile(file)}`,
          );
        }
        supersedes.push(entry);
        key = newKey;
      }
      let state = await inspect(key);
      if (state.kind === 'verified' && !sameFile(state.recorded, file)) {
        // A verified archive of another version where this one belongs.
        if (!keepBoth || key !== defaultKey) {
          throw new ConflictError(
            id,
            file.name,
            state.recorded,
            file,
            `${key} holds a verified ${describeFile(state.recorded)}, the service states ${describeFile(file)}`,
          );
        }
        supersedes.push({ name: file.name, key, ...state.recorded });
        key = newKey;
        state = await inspect(key);
      } else if (state.kind === 'unrecorded') {
        if (!keepBoth || key !== defaultKey) {
          throw new ConflictError(
            id,
            file.name,
            undefined,
            file,
            `${key} holds an object this tool did not record`,
          );
        }
        key = newKey;
        state = await inspect(key);
      }
      if (state.kind === 'damaged') {
        logger.warn('archived object does not hold what it recorded; uploading it again', {
          file: file.name,
          key,
          problem: state.problem,
        });
      }
      if (state.kind === 'verified' && !sameFile(state.recorded, file)) {
        throw new ConflictError(
          id,
          file.name,
          state.recorded,
          file,
          `${key} holds ${describeFile(state.recorded)}`,
        );
      }
      if (state.kind === 'unrecorded') {
        throw new ConflictError(
          id,
          file.name,
          undefined,
          file,
          `${key} holds an object this tool did not record`,
        );
      }
      plans.push({
        file,
        key,
        upload: state.kind !== 'verified',
        // Only where the plan saw nothing, or only over the damaged object it saw.
        condition: state.kind === 'damaged' ? { IfMatch: state.etag } : { IfNoneMatch: '*' },
        supersedes,
      });
    }
    return plans;
  }

  /**
   * Downloads and uploads the files that need it. The first file that fails for good stops the
   * line at once: queued files are not started and the ones in flight are aborted.
   */
  async #uploadAll(id: string, plans: readonly FilePlan[], uploads: Uploads, logger: Logger): Promise<void> {
    const { api, archive, retry, config } = this.#o;
    const stopLine = new AbortController();
    const signal =
      this.#o.signal === undefined ? stopLine.signal : AbortSignal.any([this.#o.signal, stopLine.signal]);
    const limit = pLimit(config.fileConcurrency);
    let failure: unknown;
    await Promise.all(
      plans
        .filter((plan) => plan.upload)
        .map(({ file, key, condition }) =>
          limit(async () => {
            if (signal.aborted) return;
            try {
              await retry(async () => {
                const body = await api.openFile(api.fileUrl(id, file), signal);
                try {
                  await archive.uploadVerified(id, file, body, { key, signal, condition });
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
              }, signal);
              uploads.add(key, file.size);
              logger.debug('file archived', { file: file.name, key, size: file.size });
            } catch (error) {
              if (failure === undefined) {
                failure = deadlineReason(this.#o.signal) ?? error;
                // Queued files see the aborted signal and return at once (p-limit's clearQueue
                // would leave their promises unsettled, and the line with them).
                stopLine.abort(failure);
              }
            }
          }),
        ),
    );
    if (failure !== undefined) throw failure;
  }

  /**
   * Writes the line's document as received (`line.sha256-{hash}.json`) and the manifest, unless the manifest there
   * already states the same files. A manifest is only ever replaced by one that states every file
   * it stated (the plan saw to that), or moves them to `superseded` (keep-both).
   */
  async #ensureManifest(
    read: ReadLine,
    plans: readonly FilePlan[],
    found: { readonly manifest: Manifest | undefined; readonly etag: string } | undefined,
  ): Promise<Manifest> {
    const existing = found?.manifest;
    const { archive, runId, now } = this.#o;
    const id = read.line.id;
    const files: ManifestFile[] = plans.map(({ file, key }) => ({
      name: file.name,
      key,
      size: file.size,
      sha256: file.sha256,
    }));
    const at = new Date(now()).toISOString();
    const stated = new Set(files.map((file) => file.name));
    const newlySuperseded: ManifestFile[] = [
      ...plans.flatMap((plan) => plan.supersedes),
      ...(existing?.files ?? []).filter((entry) => !stated.has(entry.name)),
    ];
    const superseded: SupersededFile[] = [...(existing?.superseded ?? [])];
    for (const entry of newlySuperseded) {
      if (superseded.some((kept) => kept.key === entry.key && kept.sha256 === entry.sha256)) continue;
      const { name, key, size, sha256 } = entry;
      superseded.push({ name, key, size, sha256, supersededBy: runId, supersededAt: at });
    }
    if (
      existing !== undefined &&
      sameEntries(existing.files, files) &&
      superseded.length === (existing.superseded?.length ?? 0)
    ) {
      return existing;
    }
    const lineDocument = await archive.writeLineDocument(id, read.bytes);
    const manifest: Manifest = {
      schemaVersion: 2,
      lineId: id,
      runId,
      archivedAt: at,
      bucket: archive.bucket,
      files,
      ...(superseded.length === 0 ? {} : { superseded }),
      lineDocument,
    };
    // Only over the manifest this round was planned against: another pass may have written one since.
    const written = await archive.writeManifest(
      manifest,
      found === undefined ? { IfNoneMatch: '*' } : { IfMatch: found.etag },
    );
    if (!written) throw new ArchiveChangedError(archive.manifestKey(id), 'written by another pass meanwhile');
    return manifest;
  }

  /**
   * Sends the DELETE, confirms what it achieved, and keeps the receipt. Once the DELETE is sent,
   * its outcome is the service's record: what follows (the confirming GET, the receipt or the
   * pending marker) runs in a window of its own, even past the run's deadline.
   */
  async #dismantle(id: string, manifest: Manifest, counts: FileCounts, logger: Logger): Promise<LineOutcome> {
    const { api } = this.#o;
    this.#checkStopped();
    let reply: DeleteReply | undefined;
    let unanswered: unknown;
    try {
      reply = await api.deleteLine(id);
    } catch (error) {
      // A 4xx is the service refusing: it did not act, and the line stays.
      if (error instanceof TokensApiError && error.status !== undefined && error.status < 500) throw error;
      // No usable answer (a 5xx from a gateway, a timeout, the deadline, a dropped connection):
      // the DELETE may have been carried out. Look before saying anything.
      unanswered = error;
    }
    const finishing = this.#finishingSignal();
    let confirmation: string;
    let discrepancy: string | undefined;
    const replied = reply === undefined ? undefined : this.#confirmedByReply(id, reply);
    if (replied !== undefined) {
      confirmation = 'the reply (200, status deleted)';
      discrepancy = replied.files === undefined ? undefined : differences(manifest.files, replied.files);
    } else {
      let seen: { gone: boolean; how: string };
      try {
        seen = await this.#seenGone(id, finishing);
      } catch (error) {
        // Neither the DELETE's outcome nor the line's state is known: a later run confirms it.
        const what =
          reply === undefined
            ? `got no usable reply (${describeError(unanswered)})`
            : `answered ${reply.status}`;
        const reason = `DELETE ${what}, and the line could not be read after it (${describeError(error)}): pending, a later run confirms it`;
        await this.#keepPending(id, reply, reason, finishing, logger);
        return { kind: 'pending', reason, ...counts };
      }
      if (seen.gone) {
        confirmation = reply === undefined ? `${seen.how}, after a DELETE with no usable reply` : seen.how;
      } else if (reply === undefined) {
        // The DELETE did not act: the line is still there, and so is its archive.
        throw deadlineReason(this.#o.signal) ?? unanswered;
      } else if (reply.status === 404 || reply.status === 410) {
        throw new TokensApiError(`DELETE answered ${reply.status} but ${seen.how}`, {
          method: 'DELETE',
          url: api.lineUrl(id).href,
          status: reply.status,
          retryable: false,
        });
      } else {
        const reason = `DELETE answered ${reply.status}${reply.status === 200 ? ' with an unexpected reply' : ''}, but ${seen.how}: pending, the next run confirms it`;
        await this.#keepPending(id, reply, reason, finishing, logger);
        return { kind: 'pending', reason, ...counts };
      }
    }
    await this.#keepReceipt(
      {
        schemaVersion: 2,
        lineId: id,
        runId: this.#o.runId,
        at: new Date(this.#o.now()).toISOString(),
        ...(reply !== undefined && isTaken(reply) ? { reply: replyRecord(reply) } : {}),
        confirmation,
        ...(discrepancy === undefined ? {} : { discrepancy }),
      },
      finishing,
      logger,
    );
    if (discrepancy !== undefined) {
      return {
        kind: 'failed',
        reason: `line ${id}: dismantled, but its DELETE reply states files other than the archive: ${discrepancy}`,
        ...counts,
      };
    }
    return { kind: 'dismantled', ...counts };
  }

  /**
   * The time allowed to record a DELETE's outcome (its confirming GET, the receipt or marker):
   * half of `DEADLINE_RESERVE_MS`, at least 2 s, from now; not the run's deadline.
   */
  #finishingSignal(): AbortSignal {
    return AbortSignal.timeout(Math.max(2_000, this.#o.config.deadlineReserveMs / 2));
  }

  /** The DELETE reply's files when it is a 200 describing this line as deleted; undefined otherwise. */
  #confirmedByReply(id: string, reply: DeleteReply): { files: readonly LineFile[] | undefined } | undefined {
    if (reply.status !== 200) return undefined;
    try {
      return parseDeleteReply(reply.document, id);
    } catch (error) {
      if (error instanceof DocumentError) return undefined;
      throw error;
    }
  }

  /** Whether a GET shows the line gone, and how. */
  async #seenGone(id: string, signal?: AbortSignal): Promise<{ gone: boolean; how: string }> {
    try {
      const { value } = await this.#o.api.getLine(id, signal === undefined ? {} : { signal });
      const status = (value as { data?: { attributes?: { status?: unknown } } } | undefined)?.data?.attributes
        ?.status;
      if (status === 'deleted') return { gone: true, how: 'GET shows status deleted' };
      return { gone: false, how: `GET still shows the line (status ${String(status)})` };
    } catch (error) {
      const status = error instanceof TokensApiError ? error.status : undefined;
      if (status === 404 || status === 410) return { gone: true, how: `GET answered ${status}` };
      throw error;
    }
  }

  /**
   * Keeps the receipt. The line is gone from the service and its archive is complete: a receipt
   * that cannot be written is logged, not a failure, which would send an operator after a line
   * that no longer exists.
   */
  async #keepReceipt(receipt: Receipt, signal: AbortSignal, logger: Logger): Promise<void> {
    try {
      const written = await this.#o.retry(() => this.#o.archive.writeReceipt(receipt, signal), signal);
      if (written !== 'written') logger.info('receipt', { receipt: written });
    } catch (error) {
      logger.error('line dismantled, but its receipt could not be written', { reason: describeError(error) });
    }
  }

  async #keepPending(
    id: string,
    reply: DeleteReply | undefined,
    note: string,
    signal: AbortSignal,
    logger: Logger,
  ): Promise<void> {
    try {
      await this.#o.retry(
        () =>
          this.#o.archive.writePendingMarker(
            {
              lineId: id,
              runId: this.#o.runId,
              at: new Date(this.#o.now()).toISOString(),
              ...(reply === undefined ? {} : { reply: replyRecord(reply) }),
              note,
            },
            signal,
          ),
        signal,
      );
    } catch (error) {
      logger.error('DELETE pending, and its marker could not be written', { reason: describeError(error) });
    }
  }

  #checkStopped(): void {
    const stopped = deadlineReason(this.#o.signal);
    if (stopped !== undefined) throw stopped;
  }

  /**
   * Reads the line by id just before work: list items carry no links, and status moves on. A line
   * that is gone, whose DELETE an earlier run saw taken but not done (a pending marker), is
   * confirmed here and its receipt written.
   */
  async #read(
    id: string,
    logger: Logger,
  ): Promise<{ kind: 'read'; read: ReadLine } | { kind: 'confirmed'; files: number }> {
    let reply: JsonReply;
    try {
      reply = await this.#o.api.getLine(id);
    } catch (error) {
      const status = error instanceof TokensApiError ? error.status : undefined;
      if (status === 404 || status === 410) {
        const files = await this.#confirmPending(id, `GET answered ${status}`, logger);
        if (files !== undefined) return { kind: 'confirmed', files };
        throw new SkipLine(`not found (${status})`, true);
      }
      throw error;
    }
    let line: TokensLine;
    try {
      line = parseLineDocument(reply.value, id);
    } catch (error) {
      if (error instanceof DocumentError) throw new SkipLine(`invalid: ${error.message}`, false);
      throw error;
    }
    if (line.status === 'deleted') {
      const files = await this.#confirmPending(id, 'GET shows status deleted', logger);
      if (files !== undefined) return { kind: 'confirmed', files };
    }
    if (line.status !== 'finished') throw new SkipLine(`status is "${line.status}", not finished`, true);
    return { kind: 'read', read: { line, bytes: reply.bytes } };
  }

  /** The re-read before DELETE: the line as it is now, or `gone` (the DELETE then confirms it). */
  async #reread(id: string): Promise<ReadLine | 'gone'> {
    let reply: JsonReply;
    try {
      reply = await this.#o.api.getLine(id);
    } catch (error) {
      const status = error instanceof TokensApiError ? error.status : undefined;
      if (status === 404 || status === 410) return 'gone';
      throw error;
    }
    const line = parseLineDocument(reply.value, id);
    if (line.status === 'deleted') return 'gone';
    if (line.status !== 'finished') {
      throw new HousekeepingError(
        `line ${id}: status is now "${line.status}", no longer finished; not dismantled`,
      );
    }
    return { line, bytes: reply.bytes };
  }

  /**
   * Writes the receipt of a line whose DELETE an earlier run saw taken (202): the files its
   * manifest states (all archived then), or undefined when there is no such marker.
   */
  async #confirmPending(id: string, how: string, logger: Logger): Promise<number | undefined> {
    // A dry or archive-only run dismantles nothing, and confirms nothing either.
    if (this.#o.request.dryRun || this.#o.request.archiveOnly) return undefined;
    const { archive } = this.#o;
    const marker = await this.#o.retry(() => archive.readPendingMarker(id));
    if (marker === undefined) return undefined;
    // Confirmed already (by a later DELETE, or another run): that receipt stands, and so does its count.
    if (await this.#o.retry(() => archive.hasReceipt(id))) {
      throw new SkipLine(`not found (${how}); already dismantled, its receipt is kept`, true);
    }
    const manifest = await this.#o.retry(() => archive.readManifest(id));
    const finishing = this.#finishingSignal();
    await this.#keepReceipt(
      {
        schemaVersion: 2,
        lineId: id,
        runId: this.#o.runId,
        at: new Date(this.#o.now()).toISOString(),
        ...(marker.reply === undefined ? {} : { reply: marker.reply }),
        confirmation: `${how} (the DELETE was taken by run ${marker.runId} at ${marker.at})`,
      },
      finishing,
      logger,
    );
    return manifest?.files.length ?? 0;
  }
}

/** The files one line's processing uploaded, across its rounds, to count uploads and reuses once. */
class Uploads {
  readonly #sizes = new Map<string, number>();

  add(key: string, size: number): void {
    this.#sizes.set(key, size);
  }

  /** Uploaded and reused files of the line as the manifest states it. */
  counts(manifest: Manifest): FileCounts {
    let uploaded = 0;
    let bytes = 0;
    for (const file of manifest.files) {
      const size = this.#sizes.get(file.key);
      if (size === undefined) continue;
      uploaded += 1;
      bytes += size;
    }
    return { bytes, uploaded, reused: manifest.files.length - uploaded };
  }
}

function isTaken(reply: DeleteReply): boolean {
  return reply.status >= 200 && reply.status < 300;
}

/** The reply as received: its text when it is UTF-8 (JSON always is), otherwise its bytes in base64. */
function replyRecord(reply: DeleteReply): NonNullable<Receipt['reply']> {
  const { status, contentType } = reply;
  try {
    return {
      status,
      contentType,
      body: new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(reply.bytes),
    };
  } catch {
    return { status, contentType, bodyBase64: reply.bytes.toString('base64') };
  }
}

function describeFile(file: { readonly size: number; readonly sha256: string }): string {
  return `${file.size} bytes, sha256 ${file.sha256}`;
}

function sameFile(
  a: { readonly size: number; readonly sha256: string },
  b: { readonly size: number; readonly sha256: string },
): boolean {
  return a.size === b.size && a.sha256 === b.sha256;
}

/** Whether the line states exactly the files the manifest records (names, sizes, hashes). */
function sameFiles(stated: readonly LineFile[], recorded: readonly ManifestFile[]): boolean {
  return differences(recorded, stated) === undefined;
}

function sameEntries(a: readonly ManifestFile[], b: readonly ManifestFile[]): boolean {
  const line = (file: ManifestFile) => `${file.name} ${file.key} ${file.size} ${file.sha256}`;
  return a.map(line).sort().join('\n') === b.map(line).sort().join('\n');
}

/** How `stated` differs from the archive's `recorded` files, in words; undefined when it does not. */
function differences(
  recorded: readonly ManifestFile[],
  stated: readonly { readonly name: string; readonly size: number; readonly sha256: string }[],
): string | undefined {
  const problems: string[] = [];
  for (const file of stated) {
    const entry = recorded.find((candidate) => candidate.name === file.name);
    if (entry === undefined) problems.push(`${file.name} (${describeFile(file)}) is not archived`);
    else if (!sameFile(entry, file))
      problems.push(`${file.name} is archived as ${describeFile(entry)}, stated ${describeFile(file)}`);
  }
  for (const entry of recorded) {
    if (!stated.some((file) => file.name === entry.name)) problems.push(`${entry.name} is no longer stated`);
  }
  return problems.length === 0 ? undefined : problems.join('; ');
}
