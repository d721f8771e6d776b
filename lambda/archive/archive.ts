import type { Readable } from 'node:stream';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { isLineId, type LineFile } from '../shared/ids.ts';
import type {
  Archive as ArchivePort,
  StoredFile,
  UploadOptions,
  Versioned,
  WriteCondition,
} from '../shared/ports/archive.ts';
import {
  asManifest,
  type Manifest,
  type PendingMarker,
  type Receipt,
  type ReceiptWrite,
} from '../shared/records.ts';
import { ArchiveKeys } from './keys.ts';
import { ObjectStore, s3Condition } from './store.ts';
import { FileUploader, type UploadSettings } from './upload.ts';

export type { StoredFile, WriteCondition } from '../shared/ports/archive.ts';
export type {
  Manifest,
  ManifestFile,
  PendingMarker,
  Receipt,
  ReceiptWrite,
  SupersededFile,
} from '../shared/records.ts';

export interface ArchiveOptions extends UploadSettings {
  readonly s3: S3Client;
  readonly bucket: string;
  /** `''` or ending in `/`. */
  readonly prefix: string;
}

/**
 * The archive port ({@link ArchivePort}) over S3: its key layout ({@link ArchiveKeys}), verified
 * uploads ({@link FileUploader}), and the records (manifests, line documents, receipts, run
 * reports, queued and pending markers) over one {@link ObjectStore}. The port's write conditions
 * become S3's conditional headers here ({@link s3Condition}); an object's version is its ETag.
 */
export class Archive extends ArchiveKeys implements ArchivePort {
  readonly #store: ObjectStore;
  readonly #files: FileUploader;

  constructor(options: ArchiveOptions) {
    super(options.prefix);
    this.#store = new ObjectStore(options.s3, options.bucket);
    this.#files = new FileUploader(this.#store, this, options);
  }

  get bucket(): string {
    return this.#store.bucket;
  }

  /** The process's budget of upload part buffers (`UPLOAD_BUFFER_BYTES`), for its peak. */
  get uploadBudget(): { readonly capacity: number; readonly used: number; readonly peak: number } {
    return this.#files.budget;
  }

  /** What the object at `key` holds, judged against its own record (see {@link StoredFile}). */
  inspect(key: string): Promise<StoredFile> {
    return this.#files.inspect(key);
  }

  /** Streams `body` verified into S3 and reads back what landed (see {@link FileUploader.uploadVerified}). */
  uploadVerified(lineId: string, file: LineFile, body: Readable, options: UploadOptions = {}): Promise<void> {
    return this.#files.uploadVerified(lineId, file, body, options);
  }

  /** An object's bytes as a stream (the caller consumes or destroys it); undefined when there is none. */
  openObject(key: string, signal?: AbortSignal): Promise<Readable | undefined> {
    return this.#store.openObject(key, signal);
  }

  /** Streams an object back and hashes it; undefined when there is no such object. */
  storedDigest(
    key: string,
    signal?: AbortSignal,
  ): Promise<{ size: number; sha256: string; mismatch?: string } | undefined> {
    return this.#store.storedDigest(key, signal);
  }

  /** The manifest of a line, or undefined when there is none or it cannot be read as one. */
  async readManifest(lineId: string, signal?: AbortSignal): Promise<Manifest | undefined> {
    return asManifest(await this.#store.getJson(this.manifestKey(lineId), signal), lineId);
  }

  /**
   * The manifest there with its ETag, for a conditional rewrite: `undefined` when there is none;
   * `manifest: undefined` when there is one this version cannot read (damaged, or a newer schema),
   * which is never to be overwritten.
   */
  async readManifestForUpdate(
    lineId: string,
  ): Promise<{ readonly manifest: Manifest | undefined; readonly version: string } | undefined> {
    const found = await this.#store.getJsonWithTag(this.manifestKey(lineId));
    if (found === undefined) return undefined;
    return { manifest: asManifest(found.value, lineId), version: found.etag };
  }

  /**
   * Writes the manifest only over the one it was planned against (`If-Match` its ETag), or only
   * where there is none (`If-None-Match: *`): false when another pass changed it meanwhile.
   */
  writeManifest(manifest: Manifest, over: WriteCondition): Promise<boolean> {
    return this.#store.putJsonIf(this.manifestKey(manifest.lineId), manifest, s3Condition(over));
  }

  /** Whether a line already has a receipt (kept by this or another pass). */
  async hasReceipt(lineId: string): Promise<boolean> {
    return (await this.#store.head(this.receiptKey(lineId))) !== undefined;
  }

  /**
   * The run that wrote the line's receipt (its `runId`), `undefined` when there is no receipt,
   * `null` when it names none.
   */
  async receiptRunId(lineId: string, signal?: AbortSignal): Promise<string | null | undefined> {
    const held = await this.#store.getJsonWithTag(this.receiptKey(lineId), signal);
    if (held === undefined) return undefined;
    const runId = (held.value as { runId?: unknown } | undefined)?.runId;
    return typeof runId === 'string' ? runId : null;
  }

  /** Writes a dry run's whole plan (see {@link ArchiveKeys.planKey}); returns its key. */
  async writePlan(runId: string, started: Date, plan: unknown, signal?: AbortSignal): Promise<string> {
    const key = this.planKey(runId, started);
    await this.#store.putJson(key, plan, signal);
    return key;
  }

  /** `{prefix}_runs/{yyyy-mm-dd}/{runId}.json`: what one run did. Returns the key. */

  async writeRunReport(runId: string, started: Date, report: unknown): Promise<string> {
    const key = this.runReportKey(runId, started);
    await this.#store.putJson(key, report);
    return key;
  }

  /**
   * A fan-out worker's record of a line for a run, with its ETag, for a conditional rewrite:
   * `undefined` when there is none; `value: undefined` when it is not JSON.
   */
  async readLineRecordForUpdate(
    runId: string,
    planned: Date,
    lineId: string,
  ): Promise<Versioned<unknown> | undefined> {
    const found = await this.#store.getJsonWithTag(this.lineRecordKey(runId, planned, lineId));
    return found === undefined ? undefined : { value: found.value, version: found.etag };
  }

  /**
   * Writes a fan-out worker's record of a line only where there is none (`If-None-Match: *`), or
   * only over the one read (`If-Match` its ETag): false when another worker wrote it meanwhile.
   */
  writeLineRecordIf(
    runId: string,
    planned: Date,
    lineId: string,
    record: unknown,
    over: WriteCondition,
  ): Promise<boolean> {
    return this.#store.putJsonIf(this.lineRecordKey(runId, planned, lineId), record, s3Condition(over));
  }

  /** A line's queued marker with its ETag, for a conditional rewrite; `value: undefined` when not JSON. */
  async readQueuedMarkerForUpdate(lineId: string): Promise<Versioned<unknown> | undefined> {
    const found = await this.#store.getJsonWithTag(this.queuedMarkerKey(lineId));
    return found === undefined ? undefined : { value: found.value, version: found.etag };
  }

  /**
   * Marks a line as enqueued by `runId` at `at` (ISO 8601), only where there is no marker, or only
   * over the one read (its ETag): false when another planner marked it meanwhile.
   */
  writeQueuedMarkerIf(
    lineId: string,
    marker: { readonly runId: string; readonly at: string },
    over: WriteCondition,
  ): Promise<boolean> {
    return this.#store.putJsonIf(this.queuedMarkerKey(lineId), { lineId, ...marker }, s3Condition(over));
  }

  /**
   * When each line was last enqueued, by the time its marker was stored: one listing of
   * `{prefix}_queued/` (a page per thousand markers) instead of a request per line. Keys that are
   * not a line's marker are ignored.
   */
  async queuedMarkers(): Promise<Map<string, Date>> {
    const folder = this.queuedFolder;
    const markers = new Map<string, Date>();
    for (const [name, modified] of await this.#store.list(folder)) {
      const id = name.slice(0, -'.json'.length);
      if (name.endsWith('.json') && isLineId(id)) markers.set(id, modified);
    }
    return markers;
  }

  /**
   * The line ids that have objects under the prefix (`{prefix}{id}/...`), for the audit. A failed
   * listing is thrown as the SDK reports it.
   */
  async lineIds(): Promise<string[]> {
    const prefix = this.prefix;
    const ids: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.#store.s3.send(
        new ListObjectsV2Command({
          Bucket: this.#store.bucket,
          Prefix: prefix,
          Delimiter: '/',
          ContinuationToken: token,
        }),
      );
      for (const common of page.CommonPrefixes ?? []) {
        const id = common.Prefix?.slice(prefix.length, -1);
        if (isLineId(id)) ids.push(id);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return ids;
  }

  /**
   * Every archived line, with when it was last archived or dismantled: the time of its
   * `manifest.json` or `deleted.json`, whichever is later. A line with only files (an archive
   * interrupted before its manifest) is not archived yet, and not listed. One listing of the line
   * folders, one page per thousand objects; the folders beside them (`_runs/`, `_drills/`, ...)
   * are not read. The listing is streamed: only those two times per line are kept.
   */
  async archivedLines(signal?: AbortSignal): Promise<Map<string, number>> {
    const lines = new Map<string, number>();
    // Line folders are written in lower case (safeId): sixteen listings, one per first hex digit,
    // cover them all and leave the `_` folders out; they run at once.
    await Promise.all(
      [...'0123456789abcdef'].map((digit) =>
        this.#store.scan(
          `${this.prefix}${digit}`,
          (name, modified) => {
            const slash = name.indexOf('/');
            const file = name.slice(slash + 1);
            if (file !== 'manifest.json' && file !== 'deleted.json') return;
            const id = `${digit}${name.slice(0, slash)}`;
            if (!isLineId(id)) return;
            lines.set(id, Math.max(lines.get(id) ?? 0, modified.getTime()));
          },
          signal,
        ),
      ),
    );
    return lines;
  }

  /** The keys of the restore drills' reports (`{prefix}_drills/`), the most recently written first. */
  async drillReportKeys(): Promise<string[]> {
    const folder = this.drillsFolder;
    return [...(await this.#store.list(folder))]
      .filter(([name]) => name.endsWith('.json'))
      .sort(([a, at], [b, bt]) => bt.getTime() - at.getTime() || b.localeCompare(a))
      .map(([name]) => `${folder}${name}`);
  }

  /** A document of the archive parsed as JSON; undefined when there is none or it is not JSON. */
  readJson(key: string): Promise<unknown> {
    return this.#store.getJson(key);
  }

  /** Writes a restore drill's report (see {@link ArchiveKeys.drillReportKey}); returns its key. */
  async writeDrillReport(drillId: string, started: Date, report: unknown): Promise<string> {
    const key = this.drillReportKey(drillId, started);
    await this.#store.putJson(key, report);
    return key;
  }

  /**
   * The names of the objects a line already has (`data`, `manifest.json`, ...): one listing, so
   * a line archived for the first time needs no existence check per file.
   */
  async lineObjects(lineId: string): Promise<ReadonlySet<string>> {
    return new Set((await this.#store.list(this.lineKey(lineId))).keys());
  }

  /**
   * Stores the proof of dismantling, never replacing a stronger one. A receipt holding the
   * service's reply is written where there is none (`If-None-Match: *`: one request in the usual
   * case); on a 412 the receipt there is read, and one holding only a confirmation is replaced
   * (`If-Match` on what was read), one holding a reply is kept. A receipt holding only a
   * confirmation is written only where a look finds none: stores that ignore conditional headers
   * would otherwise let it replace a reply. Two receipts holding replies for one line cannot both
   * be written by this tool: only one DELETE is answered with the line, and a pending line is
   * confirmed only where there is no receipt.
   */
  async writeReceipt(receipt: Receipt, signal?: AbortSignal): Promise<ReceiptWrite> {
    const key = this.receiptKey(receipt.lineId);
    const strong = receipt.reply !== undefined;
    for (let look = 0; look < 3; look += 1) {
      if (strong && look === 0) {
        if (await this.#store.putJsonIf(key, receipt, { IfNoneMatch: '*' }, signal)) return 'written';
        continue;
      }
      const existing = await this.#store.getJsonWithTag(key, signal);
      if (existing === undefined) {
        if (await this.#store.putJsonIf(key, receipt, { IfNoneMatch: '*' }, signal)) return 'written';
        continue;
      }
      const held = existing.value as Partial<Receipt> | undefined;
      if (held?.reply !== undefined || !strong) return 'kept-existing';
      if (await this.#store.putJsonIf(key, receipt, { IfMatch: existing.etag }, signal))
        return 'replaced-weaker';
    }
    return 'kept-existing';
  }

  /** Notes a DELETE that was taken (202), or sent with no reply, but not yet seen done. */
  async writePendingMarker(marker: PendingMarker, signal?: AbortSignal): Promise<void> {
    await this.#store.putJson(this.pendingMarkerKey(marker.lineId), marker, signal);
  }

  async readPendingMarker(lineId: string): Promise<PendingMarker | undefined> {
    return asPendingMarker(await this.#store.getJson(this.pendingMarkerKey(lineId)));
  }

  /**
   * Rewrites the line's pending marker as `amend` makes it, only over the marker it read
   * (If-Match): one another pass wrote meanwhile is read and amended in turn, never replaced by a
   * stale copy. `absent` when there is no marker; `contended` when every look lost the race.
   */
  async amendPendingMarker(
    lineId: string,
    amend: (marker: PendingMarker) => PendingMarker,
    signal?: AbortSignal,
  ): Promise<'amended' | 'absent' | 'contended'> {
    const key = this.pendingMarkerKey(lineId);
    for (let look = 0; look < 3; look += 1) {
      const held = await this.#store.getJsonWithTag(key, signal);
      const marker = asPendingMarker(held?.value);
      if (held === undefined || marker === undefined) return 'absent';
      if (await this.#store.putJsonIf(key, amend(marker), { IfMatch: held.etag }, signal)) return 'amended';
    }
    return 'contended';
  }

  /**
   * The lines with a pending DELETE and still no receipt: one listing of `{prefix}_pending/`, then
   * one HEAD per marker (markers are rare, and expire by the bucket's lifecycle rule).
   */
  async pendingLineIds(): Promise<string[]> {
    const ids: string[] = [];
    for (const name of (await this.#store.list(this.pendingFolder)).keys()) {
      const id = name.slice(0, -'.json'.length);
      if (!name.endsWith('.json') || !isLineId(id)) continue;
      if ((await this.#store.head(this.receiptKey(id))) === undefined) ids.push(id.toLowerCase());
    }
    return ids;
  }
}

/** A pending marker as read: undefined unless it names a line and a run. */
function asPendingMarker(value: unknown): PendingMarker | undefined {
  const marker = value as Partial<PendingMarker> | undefined;
  return typeof marker?.lineId !== 'string' || typeof marker.runId !== 'string'
    ? undefined
    : (marker as PendingMarker);
}
