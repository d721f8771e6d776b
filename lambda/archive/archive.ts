import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  ChecksumMode,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import {
  ArchiveChangedError,
  ArchiveError,
  deadlineReason,
  HousekeepingError,
  IntegrityError,
} from '../shared/errors.ts';
import { isLineId, type LineFile, safeFileName, safeId } from '../shared/ids.ts';
import { base64ToHex, type Expectation, hexToBase64, Verifier } from '../shared/verify.ts';
import { streamMultipart } from './multipart.ts';

/** One archived file, as the manifest records it. */
export interface ManifestFile {
  readonly name: string;
  readonly key: string;
  readonly size: number;
  readonly sha256: string;
}

/** An earlier version of a file, kept beside the current one when an operator chose `keep-both`. */
export interface SupersededFile extends ManifestFile {
  /** The run that archived the newer version beside it. */
  readonly supersededBy: string;
  readonly supersededAt: string;
}

/**
 * `{prefix}{id}/manifest.json`: proof of what was archived for a line, written after all files.
 * Version 1 (earlier releases) embedded the line's document re-serialized; version 2 points to
 * `line.sha256-{hash}.json`, the document as the service sent it, byte for byte.
 */
export interface Manifest {
  readonly schemaVersion: 1 | 2;
  readonly lineId: string;
  readonly runId: string;
  readonly archivedAt: string;
  readonly bucket: string;
  /** The files the line states, each where its verified bytes are. */
  readonly files: readonly ManifestFile[];
  /** Versions the service stated before and that were replaced in its statement (never in S3). */
  readonly superseded?: readonly SupersededFile[];
  /** `line.sha256-{hash}.json`: the line's document as received, with its size and SHA-256. */
  readonly lineDocument?: { readonly key: string; readonly size: number; readonly sha256: string };
  /** Version 1 only: the document, re-serialized. */
  readonly line?: unknown;
}

/**
 * What an object under a file's key holds, judged on its own, against the SHA-256 it was recorded
 * with (its `sha256` metadata, set by the upload that verified it):
 * - `verified`: its bytes are the recorded ones (read back and hashed with `full`; with `head`, its
 *   size and S3's own checksum), so it is an archive that is never to be overwritten;
 * - `damaged`: its bytes are not the recorded ones, or it cannot be read whole; uploading again is safe;
 * - `unrecorded`: an object with no record of ours: not ours to overwrite;
 * - `missing`.
 */
export type StoredFile =
  | { readonly kind: 'missing' }
  | {
      readonly kind: 'verified';
      readonly recorded: { readonly size: number; readonly sha256: string };
      readonly etag: string;
    }
  | { readonly kind: 'damaged'; readonly problem: string; readonly etag: string }
  | { readonly kind: 'unrecorded'; readonly etag: string };

/** A receipt of dismantling, `{prefix}{id}/deleted.json`. */
export interface Receipt {
  readonly schemaVersion: 2;
  readonly lineId: string;
  readonly runId: string;
  readonly at: string;
  /** The service's reply to the DELETE as received, when it took the DELETE (2xx). */
  readonly reply?: {
    readonly status: number;
    readonly contentType: string;
    /** The body as received, when it is UTF-8 text (JSON always is). */
    readonly body?: string;
    /** The body as received, base64, when it is not UTF-8. */
    readonly bodyBase64?: string;
  };
  /** How the line was seen to be gone: "the reply", "GET answered 404", ... */
  readonly confirmation: string;
  /** Set when the reply differs from the manifest (the line changed in its last moments). */
  readonly discrepancy?: string;
}

/** How a receipt write ended. */
export type ReceiptWrite = 'written' | 'kept-existing' | 'replaced-weaker';

/** `{prefix}_pending/{id}.json`: a DELETE that was taken (202) but not yet seen done. */
export interface PendingMarker {
  readonly lineId: string;
  readonly runId: string;
  readonly at: string;
  /** The 202 reply; absent when the DELETE was sent but no reply came (a timeout, the deadline). */
  readonly reply?: NonNullable<Receipt['reply']>;
  readonly note?: string;
}

export interface ArchiveOptions {
  readonly s3: S3Client;
  readonly bucket: string;
  /** `''` or ending in `/`. */
  readonly prefix: string;
  readonly multipartThresholdBytes: number;
  readonly partSizeBytes: number;
  readonly readback: 'head' | 'full';
}

/**
 * The S3 side: key layout, verified upload, read-back, manifest and receipt.
 *
 * Layout: `{prefix}{id}/{file}`, `{prefix}{id}/manifest.json`, `{prefix}{id}/deleted.json`.
 */
export class Archive {
  readonly #options: ArchiveOptions;

  constructor(options: ArchiveOptions) {
    this.#options = options;
  }

  get bucket(): string {
    return this.#options.bucket;
  }

  /** The key prefix of one line; ids are checked so nothing escapes `{prefix}{id}/`. */
  lineKey(lineId: string): string {
    return `${this.#options.prefix}${safeId(lineId)}/`;
  }

  fileKey(lineId: string, name: string): string {
    return `${this.lineKey(lineId)}${safeFileName(name)}`;
  }

  manifestKey(lineId: string): string {
    return `${this.lineKey(lineId)}manifest.json`;
  }

  receiptKey(lineId: string): string {
    return `${this.lineKey(lineId)}deleted.json`;
  }

  /**
   * `{prefix}{id}/line.sha256-{hash}.json`: the line's document as the service sent it, under its
   * own hash, so a manifest names exactly the document it was written from and no write of a newer
   * one can change what an older manifest points to.
   */
  lineDocumentKey(lineId: string, sha256: string): string {
    return `${this.lineKey(lineId)}line.sha256-${sha256}.json`;
  }

  /**
   * Where a newer version of a file goes when an operator keeps both: `{name}.sha256-{hash}` beside
   * the original (file names never hold a dot, so it cannot be another file's key).
   */
  versionKey(lineId: string, name: string, sha256: string): string {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new ArchiveError(name, `not a SHA-256: ${sha256}`);
    return `${this.fileKey(lineId, name)}.sha256-${sha256}`;
  }

  /**
   * Where a manifest entry's bytes are: its key, which must be the file's own key or its versioned
   * key (keep-both); anything else in a manifest is refused rather than read or trusted.
   */
  entryKey(lineId: string, entry: ManifestFile): string {
    const own = this.fileKey(lineId, entry.name);
    if (entry.key === own) return own;
    if (
      /^[0-9a-f]{64}$/.test(entry.sha256) &&
      entry.key === this.versionKey(lineId, entry.name, entry.sha256)
    ) {
      return entry.key;
    }
    throw new ArchiveError(
      this.manifestKey(lineId),
      `names ${JSON.stringify(entry.key)} for file ${entry.name}`,
    );
  }

  /** `{prefix}_pending/{id}.json`. */
  pendingMarkerKey(lineId: string): string {
    return `${this.#options.prefix}_pending/${safeId(lineId)}.json`;
  }

  /**
   * What the object at `key` holds, judged against its own record (see {@link StoredFile}). With
   * `full` read-back the object is streamed back and hashed: a store that does not check what it
   * is sent may hold other bytes under a matching checksum.
   */
  async inspect(key: string): Promise<StoredFile> {
    const head = await this.#head(key);
    if (head === undefined) return { kind: 'missing' };
    const etag = head.ETag ?? '';
    const sha256 = head.Metadata?.sha256;
    if (sha256 === undefined || !/^[0-9a-f]{64}$/.test(sha256)) return { kind: 'unrecorded', etag };
    const size = head.ContentLength ?? -1;
    const recordedSize = head.Metadata?.size;
    if (recordedSize !== undefined && recordedSize !== String(size)) {
      return { kind: 'damaged', problem: `holds ${size} bytes, recorded ${recordedSize}`, etag };
    }
    const checksum = head.ChecksumSHA256;
    // A multipart object carries a checksum of its parts' checksums ("…-N"), not of its bytes.
    if (checksum !== undefined && !checksum.includes('-') && base64ToHex(checksum) !== sha256) {
      return {
        kind: 'damaged',
        problem: `stored checksum is ${base64ToHex(checksum)}, recorded ${sha256}`,
        etag,
      };
    }
    if (this.#options.readback === 'full') {
      let stored: { size: number; sha256: string } | undefined;
      try {
        stored = await this.storedDigest(key);
      } catch (error) {
        return { kind: 'damaged', problem: `cannot be read back whole: ${describeAwsError(error)}`, etag };
      }
      if (stored === undefined) return { kind: 'missing' };
      if (stored.sha256 !== sha256) {
        return { kind: 'damaged', problem: `bytes hash to ${stored.sha256}, recorded ${sha256}`, etag };
      }
    }
    return { kind: 'verified', recorded: { size, sha256 }, etag };
  }

  /**
   * Streams `body` through a {@link Verifier} into S3 and reads back what landed. The object is
   * completed only if the bytes are the stated size and SHA-256; on any failure the body is
   * destroyed and a multipart upload is aborted.
   */
  async uploadVerified(
    lineId: string,
    file: LineFile,
    body: Readable,
    options: {
      readonly key?: string;
      readonly signal?: AbortSignal;
      /**
       * Write only where the plan saw no object (`If-None-Match: *`), or only over the damaged one
       * it saw (`If-Match`): a verified archive another pass wrote meanwhile is never overwritten.
       */
      readonly condition?: WriteCondition;
    } = {},
  ): Promise<void> {
    const key = options.key ?? this.fileKey(lineId, file.name);
    const expected: Expectation = { lineId, file: file.name, size: file.size, sha256: file.sha256 };
    const verifier = new Verifier(expected);
    const params = {
      Bucket: this.#options.bucket,
      Key: key,
      ContentType: 'application/octet-stream',
      // The record an object is judged against later (Archive.inspect): what was verified.
      Metadata: { sha256: file.sha256, size: String(file.size), 'line-id': lineId },
    };
    const signal = options.signal;
    try {
      if (file.size === 0) {
        // Nothing to hold back in an empty file: verify it fully before the request starts.
        await pipeline(body, verifier, async (source: AsyncIterable<Buffer>) => {
          for await (const _ of source) {
            // The verifier already refuses a single byte more than 0.
          }
        });
        await this.#put(
          { ...params, ...options.condition, Body: '', ChecksumSHA256: hexToBase64(file.sha256) },
          signal,
        );
      } else if (file.size <= this.#options.multipartThresholdBytes) {
        await transfer(body, verifier, signal, (abortSignal) =>
          this.#put(
            {
              ...params,
              ...options.condition,
              Body: verifier,
              ContentLength: file.size,
              // Real S3 also verifies the whole object against the stated hash.
              ChecksumSHA256: hexToBase64(file.sha256),
            },
            abortSignal,
          ),
        );
      } else {
        await transfer(body, verifier, signal, (abortSignal) =>
          streamMultipart(
            this.#options.s3,
            params,
            verifier,
            file.size,
            this.#options.partSizeBytes,
            abortSignal,
            undefined,
            options.condition,
          ),
        );
      }
    } catch (error) {
      body.destroy();
      verifier.destroy();
      const stopped = deadlineReason(signal);
      if (stopped !== undefined) throw stopped;
      if (statusOf(error) === 412 || statusOf((error as { cause?: unknown }).cause) === 412) {
        throw new ArchiveChangedError(
          key,
          'changed by another pass while this one uploaded it; planned again',
        );
      }
      // Ours already name what failed (the verifier, the download, S3): keep their words.
      if (error instanceof HousekeepingError) throw error;
      throw new ArchiveError(key, `upload failed: ${describeAwsError(error)}`, {
        cause: error,
        retryable: true,
      });
    }
    await this.#readBack(key, file);
  }

  /** Stores the line's document as received, byte for byte; returns what the manifest records. */
  async writeLineDocument(
    lineId: string,
    body: Buffer,
  ): Promise<{ readonly key: string; readonly size: number; readonly sha256: string }> {
    const sha256 = createHash('sha256').update(body).digest();
    const key = this.lineDocumentKey(lineId, sha256.toString('hex'));
    await this.#put({
      Bucket: this.#options.bucket,
      Key: key,
      Body: body,
      ContentType: 'application/vnd.api+json',
      ChecksumSHA256: sha256.toString('base64'),
    });
    return { key, size: body.length, sha256: sha256.toString('hex') };
  }

  /** The manifest of a line, or undefined when there is none or it cannot be read as one. */
  async readManifest(lineId: string): Promise<Manifest | undefined> {
    return asManifest(await this.#getJson(this.manifestKey(lineId)), lineId);
  }

  /**
   * The manifest there with its ETag, for a conditional rewrite: `undefined` when there is none;
   * `manifest: undefined` when there is one this version cannot read (damaged, or a newer schema),
   * which is never to be overwritten.
   */
  async readManifestForUpdate(
    lineId: string,
  ): Promise<{ readonly manifest: Manifest | undefined; readonly etag: string } | undefined> {
    const found = await this.#getJsonWithTag(this.manifestKey(lineId));
    if (found === undefined) return undefined;
    return { manifest: asManifest(found.value, lineId), etag: found.etag };
  }

  /**
   * Writes the manifest only over the one it was planned against (`If-Match` its ETag), or only
   * where there is none (`If-None-Match: *`): false when another pass changed it meanwhile.
   */
  writeManifest(manifest: Manifest, over: WriteCondition): Promise<boolean> {
    return this.#putJsonIf(this.manifestKey(manifest.lineId), manifest, over);
  }

  /** Whether a line already has a receipt (kept by this or another pass). */
  async hasReceipt(lineId: string): Promise<boolean> {
    return (await this.#head(this.receiptKey(lineId))) !== undefined;
  }

  /** `{prefix}_runs/{yyyy-mm-dd}/{runId}.json`: what one run did. Returns the key. */
  async writeRunReport(runId: string, started: Date, report: unknown): Promise<string> {
    const key = `${this.#options.prefix}_runs/${started.toISOString().slice(0, 10)}/${safeId(runId, 'run id')}.json`;
    await this.#putJson(key, report);
    return key;
  }

  /**
   * `{prefix}_runs/{yyyy-mm-dd}/{runId}/lines/{lineId}.json`: what a fan-out worker did to one line
   * of a run (the date is the planner's, so the records sit beside the planner's report).
   */
  lineRecordKey(runId: string, planned: Date, lineId: string): string {
    const date = planned.toISOString().slice(0, 10);
    return `${this.#options.prefix}_runs/${date}/${safeId(runId, 'run id')}/lines/${safeId(lineId)}.json`;
  }

  /** Writes a fan-out worker's record of one line. Returns the key. */
  async writeLineRecord(runId: string, planned: Date, lineId: string, record: unknown): Promise<string> {
    const key = this.lineRecordKey(runId, planned, lineId);
    await this.#putJson(key, record);
    return key;
  }

  /** A worker's earlier record of this line for this run, or undefined when there is none or it is not JSON. */
  readLineRecord(runId: string, planned: Date, lineId: string): Promise<unknown> {
    return this.#getJson(this.lineRecordKey(runId, planned, lineId));
  }

  /** `{prefix}_queued/{lineId}.json`: the fan-out planner's note that a message for the line was sent. */
  queuedMarkerKey(lineId: string): string {
    return `${this.#options.prefix}_queued/${safeId(lineId)}.json`;
  }

  /** Marks a line as enqueued by `runId` at `at` (ISO 8601); overwrites an older marker. */
  async writeQueuedMarker(lineId: string, marker: { runId: string; at: string }): Promise<void> {
    await this.#putJson(this.queuedMarkerKey(lineId), { lineId, ...marker });
  }

  /**
   * When each line was last enqueued, by the time its marker was stored: one listing of
   * `{prefix}_queued/` (a page per thousand markers) instead of a request per line. Keys that are
   * not a line's marker are ignored.
   */
  async queuedMarkers(): Promise<Map<string, Date>> {
    const folder = `${this.#options.prefix}_queued/`;
    const markers = new Map<string, Date>();
    for (const [name, modified] of await this.#list(folder)) {
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
    const prefix = this.#options.prefix;
    const ids: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.#options.s3.send(
        new ListObjectsV2Command({
          Bucket: this.#options.bucket,
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
   * The names of the objects a line already has (`data`, `manifest.json`, ...): one listing, so
   * a line archived for the first time needs no existence check per file.
   */
  async lineObjects(lineId: string): Promise<ReadonlySet<string>> {
    return new Set((await this.#list(this.lineKey(lineId))).keys());
  }

  /** Every object directly or deeper under `folder`, by name relative to it, with its time. */
  async #list(folder: string): Promise<Map<string, Date>> {
    const objects = new Map<string, Date>();
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.#options.s3.send(
          new ListObjectsV2Command({
            Bucket: this.#options.bucket,
            Prefix: folder,
            ContinuationToken: token,
          }),
        );
      } catch (error) {
        throw new ArchiveError(folder, `ListObjectsV2 failed: ${describeAwsError(error)}`, {
          cause: error,
          retryable: true,
        });
      }
      for (const object of page.Contents ?? []) {
        if (object.Key?.startsWith(folder) && object.LastModified !== undefined) {
          objects.set(object.Key.slice(folder.length), object.LastModified);
        }
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return objects;
  }

  /**
   * Stores the proof of dismantling, never replacing a stronger one. The receipt there, if any, is
   * read first (stores that ignore conditional headers would let anything through): one holding
   * the service's reply is kept; one holding only a confirmation is replaced by one holding a
   * reply, with `If-Match` on what was read. Where there is none, the write is `If-None-Match: *`:
   * a 412 means another pass wrote first, and its receipt is judged the same way.
   */
  async writeReceipt(receipt: Receipt, signal?: AbortSignal): Promise<ReceiptWrite> {
    const key = this.receiptKey(receipt.lineId);
    for (let look = 0; look < 3; look += 1) {
      const existing = await this.#getJsonWithTag(key, signal);
      if (existing === undefined) {
        if (await this.#putJsonIf(key, receipt, { IfNoneMatch: '*' }, signal)) return 'written';
        continue;
      }
      const held = existing.value as Partial<Receipt> | undefined;
      if (held?.reply !== undefined || receipt.reply === undefined) return 'kept-existing';
      if (await this.#putJsonIf(key, receipt, { IfMatch: existing.etag }, signal)) return 'replaced-weaker';
    }
    return 'kept-existing';
  }

  /** Notes a DELETE that was taken (202), or sent with no reply, but not yet seen done. */
  async writePendingMarker(marker: PendingMarker, signal?: AbortSignal): Promise<void> {
    await this.#putJson(this.pendingMarkerKey(marker.lineId), marker, signal);
  }

  async readPendingMarker(lineId: string): Promise<PendingMarker | undefined> {
    const marker = (await this.#getJson(this.pendingMarkerKey(lineId))) as Partial<PendingMarker> | undefined;
    return typeof marker?.lineId !== 'string' || typeof marker.runId !== 'string'
      ? undefined
      : (marker as PendingMarker);
  }

  /**
   * The lines with a pending DELETE and still no receipt: one listing of `{prefix}_pending/`, then
   * one HEAD per marker (markers are rare, and expire by the bucket's lifecycle rule).
   */
  async pendingLineIds(): Promise<string[]> {
    const ids: string[] = [];
    for (const name of (await this.#list(`${this.#options.prefix}_pending/`)).keys()) {
      const id = name.slice(0, -'.json'.length);
      if (!name.endsWith('.json') || !isLineId(id)) continue;
      if ((await this.#head(this.receiptKey(id))) === undefined) ids.push(id.toLowerCase());
    }
    return ids;
  }

  /** A conditional JSON PUT: false when the store refused the condition (412). */
  async #putJsonIf(
    key: string,
    value: unknown,
    condition: WriteCondition,
    abortSignal?: AbortSignal,
  ): Promise<boolean> {
    const body = Buffer.from(`${JSON.stringify(value, null, 2)}\n`);
    try {
      await this.#options.s3.send(
        new PutObjectCommand({
          Bucket: this.#options.bucket,
          Key: key,
          Body: body,
          ContentType: 'application/json',
          ChecksumSHA256: createHash('sha256').update(body).digest('base64'),
          ...condition,
        }),
        abortSignal === undefined ? {} : { abortSignal },
      );
      return true;
    } catch (error) {
      if (statusOf(error) === 412) return false;
      // 409: a conditional write of the same key was in flight; another attempt settles it.
      throw new ArchiveError(key, `PutObject failed: ${describeAwsError(error)}`, {
        cause: error,
        retryable: true,
      });
    }
  }

  /** The object parsed as JSON with its ETag; undefined when there is none or it is not JSON. */
  async #getJsonWithTag(
    key: string,
    abortSignal?: AbortSignal,
  ): Promise<{ value: unknown; etag: string } | undefined> {
    try {
      const reply = await this.#options.s3.send(
        new GetObjectCommand({ Bucket: this.#options.bucket, Key: key }),
        abortSignal === undefined ? {} : { abortSignal },
      );
      const text = (await reply.Body?.transformToString('utf8')) ?? '';
      if (reply.ETag === undefined) return undefined;
      try {
        return { value: JSON.parse(text) as unknown, etag: reply.ETag };
      } catch {
        return { value: undefined, etag: reply.ETag };
      }
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw new ArchiveError(key, `GetObject failed: ${describeAwsError(error)}`, {
        cause: error,
        retryable: true,
      });
    }
  }

  async #putJson(key: string, value: unknown, abortSignal?: AbortSignal): Promise<void> {
    const body = Buffer.from(`${JSON.stringify(value, null, 2)}\n`);
    const sha256 = createHash('sha256').update(body).digest('base64');
    await this.#put(
      {
        Bucket: this.#options.bucket,
        Key: key,
        Body: body,
        ContentType: 'application/json',
        ChecksumSHA256: sha256,
      },
      abortSignal,
    );
  }

  async #put(
    input: ConstructorParameters<typeof PutObjectCommand>[0],
    abortSignal?: AbortSignal,
  ): Promise<void> {
    try {
      await this.#options.s3.send(
        new PutObjectCommand(input),
        abortSignal === undefined ? {} : { abortSignal },
      );
    } catch (error) {
      throw new ArchiveError(input.Key ?? '?', `PutObject failed: ${describeAwsError(error)}`, {
        cause: error,
        retryable: true,
      });
    }
  }

  async #head(key: string): Promise<HeadObjectCommandOutput | undefined> {
    try {
      return await this.#options.s3.send(
        new HeadObjectCommand({ Bucket: this.#options.bucket, Key: key, ChecksumMode: ChecksumMode.ENABLED }),
      );
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw new ArchiveError(key, `HeadObject failed: ${describeAwsError(error)}`, {
        cause: error,
        retryable: true,
      });
    }
  }

  /** The object parsed as JSON; undefined when there is none or it is not JSON. */
  async #getJson(key: string): Promise<unknown> {
    const text = await this.#getText(key);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return undefined;
    }
  }

  async #getText(key: string): Promise<string | undefined> {
    try {
      const reply = await this.#options.s3.send(
        new GetObjectCommand({ Bucket: this.#options.bucket, Key: key }),
      );
      return await reply.Body?.transformToString('utf8');
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw new ArchiveError(key, `GetObject failed: ${describeAwsError(error)}`, {
        cause: error,
        retryable: true,
      });
    }
  }

  /** What is wrong with a stored object, judged by its HEAD, or undefined when nothing is. */
  #headProblem(head: HeadObjectCommandOutput, file: LineFile): string | undefined {
    if (head.ContentLength !== file.size) return `holds ${head.ContentLength} bytes, stated ${file.size}`;
    const recorded = head.Metadata?.sha256;
    if (recorded !== file.sha256) return `metadata sha256 is ${recorded ?? 'missing'}, stated ${file.sha256}`;
    const checksum = head.ChecksumSHA256;
    // A multipart object carries a checksum of its parts' checksums ("…-N"), not of its bytes.
    if (checksum !== undefined && !checksum.includes('-') && base64ToHex(checksum) !== file.sha256) {
      return `stored checksum is ${base64ToHex(checksum)}, stated ${file.sha256}`;
    }
    return undefined;
  }

  /** Confirms what landed before the file counts as archived. */
  async #readBack(key: string, file: LineFile): Promise<void> {
    const head = await this.#head(key);
    if (head === undefined) throw new ArchiveError(key, 'not found right after upload', { retryable: true });
    const problem = this.#headProblem(head, file);
    if (problem !== undefined) throw new ArchiveError(key, `read-back: ${problem}`, { retryable: true });
    if (this.#options.readback === 'full') {
      let stored: { size: number; sha256: string } | undefined;
      try {
        stored = await this.storedDigest(key);
      } catch (error) {
        // Includes the SDK's own response checksum check: bad bytes fail here, and are retried.
        throw new ArchiveError(key, `read-back: GetObject failed: ${describeAwsError(error)}`, {
          cause: error,
          retryable: true,
        });
      }
      if (stored === undefined) throw new ArchiveError(key, 'read-back: not found', { retryable: true });
      if (stored.size !== file.size || stored.sha256 !== file.sha256) {
        throw new ArchiveError(
          key,
          `read-back: stored bytes hash to ${stored.sha256} (${stored.size} bytes), stated ${file.sha256} (${file.size} bytes)`,
          { retryable: true },
        );
      }
    }
  }

  /** Streams an object back and hashes it; undefined when there is no such object. */
  async storedDigest(key: string): Promise<{ size: number; sha256: string } | undefined> {
    let reply: GetObjectCommandOutput;
    try {
      reply = await this.#options.s3.send(new GetObjectCommand({ Bucket: this.#options.bucket, Key: key }));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of reply.Body as AsyncIterable<Uint8Array>) {
      size += chunk.length;
      hash.update(chunk);
    }
    return { size, sha256: hash.digest('hex') };
  }
}

/**
 * Runs the download pipeline and the upload together. Whichever fails first stops the other
 * (the SDK does not notice a failed request body on its own), and the verifier's verdict wins
 * over the upload's echo of it.
 */
async function transfer(
  body: Readable,
  verifier: Verifier,
  signal: AbortSignal | undefined,
  upload: (abortSignal: AbortSignal) => Promise<unknown>,
): Promise<void> {
  const abort = new AbortController();
  // The run's deadline, or the line's failure elsewhere: stop both sides now.
  const stop = () => {
    abort.abort(signal?.reason);
    body.destroy();
  };
  if (signal?.aborted === true) stop();
  signal?.addEventListener('abort', stop, { once: true });
  const uploading = upload(abort.signal).catch((error: unknown) => {
    verifier.destroy(error instanceof Error ? error : new Error(String(error)));
    throw error;
  });
  const piping = pipeline(body, verifier).catch((error: unknown) => {
    abort.abort(error);
    throw error;
  });
  const [piped, uploaded] = await Promise.allSettled([piping, uploading]);
  signal?.removeEventListener('abort', stop);
  if (piped.status === 'rejected' && piped.reason instanceof IntegrityError) throw piped.reason;
  // The download failed first and the upload was aborted for it: the download's error says why.
  if (piped.status === 'rejected' && abort.signal.reason === piped.reason) throw piped.reason;
  if (uploaded.status === 'rejected') throw uploaded.reason;
  if (piped.status === 'rejected') throw piped.reason;
}

/** A conditional write: only where there is no object, or only over the one with this ETag. */
export type WriteCondition = { readonly IfNoneMatch: '*' } | { readonly IfMatch: string };

/** The value as a manifest of this line this version reads, or undefined. */
function asManifest(value: unknown, lineId: string): Manifest | undefined {
  const manifest = value as Partial<Manifest> | undefined;
  if (
    (manifest?.schemaVersion !== 1 && manifest?.schemaVersion !== 2) ||
    typeof manifest.lineId !== 'string' ||
    manifest.lineId.toLowerCase() !== lineId.toLowerCase() ||
    !Array.isArray(manifest.files)
  ) {
    return undefined;
  }
  return manifest as Manifest;
}

function statusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function isNotFound(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { name, $metadata } = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return name === 'NotFound' || name === 'NoSuchKey' || $metadata?.httpStatusCode === 404;
}

function describeAwsError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return `${error.name}${status === undefined ? '' : ` (HTTP ${status})`}: ${error.message}`;
}
