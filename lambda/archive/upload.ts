import type { Readable } from 'node:stream';
import { VARIABLES } from '../shared/environment.ts';
import {
  ArchiveChangedError,
  ArchiveError,
  ArchiveReadError,
  deadlineReason,
  describeError,
  HousekeepingError,
  IntegrityError,
} from '../shared/errors.ts';
import type { LineFile } from '../shared/ids.ts';
import type { StoredFile, UploadOptions } from '../shared/ports/archive.ts';
import { base64ToHex, type Expectation, hexToBase64, Verifier } from '../shared/verify.ts';
import { pipeInto, readWhole } from './body-pipe.ts';
import { ByteBudget } from './budget.ts';
import type { ArchiveKeys } from './keys.ts';
import { type MultipartTarget, uploadMultipart } from './multipart.ts';
import { PartBuffers } from './part-buffers.ts';
import { type ObjectStore, s3Condition, statusOf } from './store.ts';

export type { UploadOptions } from '../shared/ports/archive.ts';

/** How files go up: the multipart threshold and part size, and how much is read back. */
export interface UploadSettings {
  readonly multipartThresholdBytes: number;
  /** The minimum part size (a file too large for 10,000 of them gets larger parts). */
  readonly partSizeBytes: number;
  /**
   * `full` streams every object back and hashes it; `head` trusts S3's own checksum check: a
   * PutObject or CompleteMultipartUpload that returns the checksum S3 validated needs no HEAD.
   */
  readonly readback: 'head' | 'full';
  /** Bytes of part buffers the whole process may hold (`UPLOAD_BUFFER_BYTES`). */
  readonly uploadBufferBytes?: number;
  /** Parts of one file uploaded at once (`UPLOAD_PARTS_IN_FLIGHT`). */
  readonly partsInFlight?: number;
}

/** `UPLOAD_BUFFER_BYTES` when not configured: 96 MiB of part buffers for the whole process. */
export const DEFAULT_UPLOAD_BUFFER_BYTES = VARIABLES.UPLOAD_BUFFER_BYTES.default;
/** `UPLOAD_PARTS_IN_FLIGHT` when not configured, as lib-storage's default queue size. */
export const DEFAULT_PARTS_IN_FLIGHT = VARIABLES.UPLOAD_PARTS_IN_FLIGHT.default;
/**
 * Files up to this size (and the multipart threshold) are read whole and verified, then sent as
 * one buffer: one socket write, as a plain copy sends a small body, not one per chunk (issue 22).
 */
export const BUFFERED_PUT_BYTES = 1024 * 1024;

/**
 * Files into the archive: judged against their own record ({@link StoredFile}), streamed up
 * through a {@link Verifier}, and read back before they count.
 */
export class FileUploader {
  readonly #store: ObjectStore;
  readonly #keys: ArchiveKeys;
  readonly #settings: UploadSettings;
  /** Shared by every file this uploader sends: one uploader, one budget, per process. */
  readonly budget: ByteBudget;
  /** The part buffers within {@link budget}, recycled from one part to the next. */
  readonly partBuffers: PartBuffers;

  constructor(store: ObjectStore, keys: ArchiveKeys, settings: UploadSettings) {
    this.#store = store;
    this.#keys = keys;
    this.#settings = settings;
    this.budget = new ByteBudget(settings.uploadBufferBytes ?? DEFAULT_UPLOAD_BUFFER_BYTES);
    this.partBuffers = new PartBuffers(this.budget);
  }

  /**
   * What the object at `key` holds, judged against its own record (see {@link StoredFile}). With
   * `full` read-back the object is streamed back and hashed: a store that does not check what it
   * is sent may hold other bytes under a matching checksum.
   */
  async inspect(key: string): Promise<StoredFile> {
    const head = await this.#store.head(key);
    if (head === undefined) return { kind: 'missing' };
    const version = head.ETag ?? '';
    const sha256 = head.Metadata?.sha256;
    if (sha256 === undefined || !/^[0-9a-f]{64}$/.test(sha256)) return { kind: 'unrecorded', version };
    // A HEAD that does not say how long the object is says too little to judge it by.
    if (head.ContentLength === undefined)
      throw new ArchiveReadError(key, 'HeadObject gave no Content-Length');
    const size = head.ContentLength;
    const recordedSize = head.Metadata?.size;
    // What the object says it holds: a damaged object may be replaced by this version only.
    const recorded = { size: recordedSize === undefined ? size : Number(recordedSize), sha256 };
    const damaged = (problem: string): StoredFile => ({ kind: 'damaged', recorded, problem, version });
    if (recordedSize !== undefined && recordedSize !== String(size)) {
      return damaged(`holds ${size} bytes, recorded ${recordedSize}`);
    }
    const checksum = head.ChecksumSHA256;
    // A multipart object carries a checksum of its parts' checksums ("…-N"), not of its bytes.
    if (checksum !== undefined && !checksum.includes('-') && base64ToHex(checksum) !== sha256) {
      return damaged(`stored checksum is ${base64ToHex(checksum)}, recorded ${sha256}`);
    }
    if (this.#settings.readback === 'full') {
      // Only a read that completed can show damage: one that failed (dropped, 5xx, timed out)
      // throws an ArchiveReadError, inconclusive, and never leads to an overwrite.
      const stored = await this.#store.storedDigest(key);
      if (stored === undefined) return { kind: 'missing' };
      // A read of another length than the object has ended early, however cleanly: not the object.
      if (stored.size !== size) {
        throw new ArchiveReadError(key, `read back ${stored.size} bytes of an object of ${size}: incomplete`);
      }
      if (stored.mismatch !== undefined) return damaged(`read back whole: ${stored.mismatch}`);
      if (stored.sha256 !== sha256) return damaged(`bytes hash to ${stored.sha256}, recorded ${sha256}`);
    }
    return { kind: 'verified', recorded: { size, sha256 }, version };
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
    options: UploadOptions = {},
  ): Promise<void> {
    const key = options.key ?? this.#keys.fileKey(lineId, file.name);
    const expected: Expectation = { lineId, file: file.name, size: file.size, sha256: file.sha256 };
    const verifier = new Verifier(expected);
    const params = {
      Bucket: this.#store.bucket,
      Key: key,
      ContentType: 'application/octet-stream',
      // The record an object is judged against later (Archive.inspect): what was verified.
      Metadata: { sha256: file.sha256, size: String(file.size), 'line-id': lineId },
    };
    const signal = options.signal;
    // S3 answered with the checksum of exactly what was sent, having validated it on receipt.
    let confirmed = false;
    try {
      confirmed = await this.#send(file, body, verifier, params, options);
    } catch (error) {
      body.destroy();
      verifier.destroy();
      throw uploadFailure(error, key, signal);
    }
    // On S3, a checksum in the reply is proof of what landed: a single object's equals the file's;
    // a multipart object's equals the composite over the parts sent, each checked by S3 on upload.
    if (this.#settings.readback === 'head' && confirmed) return;
    await this.#readBack(key, file);
  }

  /**
   * Sends the file as its size calls for: up to {@link BUFFERED_PUT_BYTES} (an empty file too)
   * read whole and verified first, then one PUT of those bytes; up to the multipart threshold one
   * streamed PUT; above it a multipart upload. Whether S3's reply confirmed the checksum of
   * exactly what was sent.
   */
  async #send(
    file: LineFile,
    body: Readable,
    verifier: Verifier,
    params: MultipartTarget,
    options: UploadOptions,
  ): Promise<boolean> {
    const signal = options.signal;
    // The port's condition, in S3's headers.
    const condition = options.condition === undefined ? undefined : s3Condition(options.condition);
    let confirmed = false;
    if (file.size <= Math.min(BUFFERED_PUT_BYTES, this.#settings.multipartThresholdBytes)) {
      // The bytes stay in memory until S3 has answered: they count against the budget as long,
      // and free part buffers make room for them (held through the pool, not beside it).
      const release = file.size === 0 ? undefined : await this.partBuffers.hold(file.size, signal);
      try {
        const bytes = await verifiedWhole(body, verifier, file.size, signal);
        const reply = await this.#store.put(
          { ...params, ...condition, Body: bytes, ChecksumSHA256: hexToBase64(file.sha256) },
          signal,
        );
        confirmed = isChecksumOf(reply.ChecksumSHA256, file.sha256);
      } finally {
        release?.();
      }
    } else if (file.size <= this.#settings.multipartThresholdBytes) {
      await transfer(body, verifier, signal, async (abortSignal) => {
        const reply = await this.#store.put(
          {
            ...params,
            ...condition,
            Body: verifier,
            ContentLength: file.size,
            // Real S3 also verifies the whole object against the stated hash.
            ChecksumSHA256: hexToBase64(file.sha256),
          },
          abortSignal,
        );
        confirmed = isChecksumOf(reply.ChecksumSHA256, file.sha256);
      });
    } else {
      await transfer(body, verifier, signal, async (abortSignal) => {
        const completed = await uploadMultipart(this.#store.s3, params, verifier, file.size, {
          minPartSize: this.#settings.partSizeBytes,
          partsInFlight: this.#settings.partsInFlight ?? DEFAULT_PARTS_IN_FLIGHT,
          partBuffers: this.partBuffers,
          abortSignal,
          // The store failed first: fail the pipe now, not after the abort's round trip.
          onFailure: (error) => verifier.destroy(error instanceof Error ? error : new Error(String(error))),
          ...(condition === undefined ? {} : { completeCondition: condition }),
        });
        confirmed = completed.checksum === completed.expected;
      });
    }
    return confirmed;
  }

  /** Confirms what landed, judged as {@link inspect} judges it, before the file counts as archived. */
  async #readBack(key: string, file: LineFile): Promise<void> {
    const problem = readBackProblem(await this.inspect(key), file);
    if (problem !== undefined) throw new ArchiveError(key, problem, { retryable: true });
  }
}

/**
 * The error an upload that failed (its body and verifier destroyed) throws: the deadline's reason
 * when it stopped it; a precondition that failed (412) as {@link ArchiveChangedError}; ours as
 * they are (they already name what failed: the verifier, the download, S3); anything else as a
 * retryable {@link ArchiveError} naming `key`.
 */
function uploadFailure(error: unknown, key: string, signal: AbortSignal | undefined): HousekeepingError {
  const stopped = deadlineReason(signal);
  if (stopped !== undefined) return stopped;
  if (statusOf(error) === 412 || statusOf((error as { cause?: unknown }).cause) === 412) {
    return new ArchiveChangedError(key, 'changed by another pass while this one uploaded it; planned again');
  }
  // Ours already name what failed (the verifier, the download, S3): keep their words.
  if (error instanceof HousekeepingError) return error;
  return new ArchiveError(key, `upload failed: ${describeError(error)}`, {
    cause: error,
    retryable: true,
  });
}

/** What is wrong with a file's object right after its upload, or undefined when nothing is. */
function readBackProblem(stored: StoredFile, file: LineFile): string | undefined {
  switch (stored.kind) {
    case 'missing':
      return 'not found right after upload';
    case 'unrecorded':
      return 'read-back: no sha256 recorded in its metadata';
    case 'damaged':
      return `read-back: ${stored.problem}`;
    case 'verified': {
      const { size, sha256 } = stored.recorded;
      if (size === file.size && sha256 === file.sha256) return undefined;
      return `read-back: holds ${size} bytes recorded as ${sha256}, stated ${file.size} bytes, ${file.sha256}`;
    }
  }
}

/**
 * A small file's bytes, read whole through the verifier before its PUT starts: a mismatch never
 * reaches S3 at all. The run's deadline, or the line's failure elsewhere, stops the read.
 */
async function verifiedWhole(
  body: Readable,
  verifier: Verifier,
  size: number,
  signal: AbortSignal | undefined,
): Promise<Buffer> {
  const stop = () => body.destroy();
  if (signal?.aborted === true) stop();
  signal?.addEventListener('abort', stop, { once: true });
  try {
    return await readWhole(body, verifier, size);
  } finally {
    signal?.removeEventListener('abort', stop);
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
  // Once the download has been piped in whole, nothing else listens to the verifier: an upload
  // that fails then destroys it with its error only to stop the SDK reading it, and that error
  // (already the upload's rejection below) must not reach the process as an unhandled 'error'.
  verifier.on('error', () => {});
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
  const piping = pipeInto(body, verifier).catch((error: unknown) => {
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

/** Whether a PutObject reply's checksum (base64) is the file's SHA-256: anything else is no proof. */
function isChecksumOf(validated: string | undefined, sha256: string): boolean {
  return validated === hexToBase64(sha256);
}
