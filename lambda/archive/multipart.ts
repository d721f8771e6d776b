import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  ChecksumAlgorithm,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { untilAborted } from '../shared/abort.ts';
import { ArchiveError } from '../shared/errors.ts';
import type { PartBuffer, PartBuffers } from './part-buffers.ts';
import { PartReader, type ReadPart } from './part-reader.ts';

const MIB = 1024 * 1024;

/*
 * S3's limits, from "Amazon S3 multipart upload limits"
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html): at most 10,000 parts,
 * each 5 MiB to 5 GiB (the last may be smaller), maximum object size 48.8 TiB (5 TiB until AWS
 * raised it, in December 2025). "Amazon S3 objects overview"
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingObjects.html) calls it "50 TB" and
 * says the actual maximum is what multipart allows: 10,000 parts x 5 GiB = 50,000 GiB (53.7 TB).
 */
/** The most parts one multipart upload may have. */
export const MAX_PARTS = 10_000;
/** The largest part S3 takes. */
export const MAX_PART_SIZE = 5 * 1024 * MIB;
/** The largest object S3 can hold: 10,000 parts of 5 GiB, 53,687,091,200,000 bytes (48.8 TiB). */
export const MAX_OBJECT_SIZE = MAX_PARTS * MAX_PART_SIZE;

/**
 * The part size for a file of `fileSize` bytes: `minimumPartSize` (the configured part size)
 * when the file fits in {@link MAX_PARTS} parts of it, otherwise the smallest whole number of MiB
 * that makes it fit. Larger parts cost no memory (each part is streamed) and only bigger files
 * get them. Throws a non-retryable {@link ArchiveError} naming `key` for a file larger than
 * {@link MAX_OBJECT_SIZE}: no part size makes it fit.
 */
export function partSizeFor(fileSize: number, minimumPartSize: number, key: string): number {
  if (!Number.isSafeInteger(fileSize) || fileSize < 0) {
    throw new ArchiveError(key, `size ${fileSize} is not a byte count`);
  }
  if (fileSize > MAX_OBJECT_SIZE) {
    throw new ArchiveError(
      key,
      `${fileSize} bytes is more than S3's largest object, ${MAX_OBJECT_SIZE} bytes (${MAX_PARTS} parts of 5 GiB)`,
    );
  }
  const needed = Math.ceil(fileSize / MAX_PARTS);
  if (needed <= minimumPartSize) return minimumPartSize;
  // At most MAX_PART_SIZE: MAX_OBJECT_SIZE / MAX_PARTS is exactly 5 GiB, a whole number of MiB.
  return Math.ceil(needed / MIB) * MIB;
}

export interface MultipartTarget {
  readonly Bucket: string;
  readonly Key: string;
  readonly ContentType: string;
  readonly Metadata: Record<string, string>;
}

/** How one multipart upload runs: part sizes, parts in flight, the shared buffer budget. */
export interface MultipartOptions {
  /** The configured part size: the minimum (a larger file gets larger parts, {@link partSizeFor}). */
  readonly minPartSize: number;
  /** Parts of this file uploaded at once. */
  readonly partsInFlight: number;
  /** The process's part buffers, within its budget: a part waits for room before it is read. */
  readonly partBuffers: PartBuffers;
  /** Stops the upload (the download failed, the run's deadline, the line's failure). */
  readonly abortSignal: AbortSignal;
  /** Completes only where there is no object, or only over the one with this ETag. */
  readonly completeCondition?: { readonly IfNoneMatch: '*' } | { readonly IfMatch: string };
  /** Told of the upload's failure at once, before the cleanup (abort) the rejection waits for. */
  readonly onFailure?: (error: unknown) => void;
}

/**
 * Uploads `source` (exactly `size` bytes, the verifier's output) as a multipart upload with
 * several parts in flight, as lib-storage and rclone do. Each part is read into a buffer taken
 * from the process's {@link PartBuffers} (within its budget), with its SHA-256 computed on the way in and sent as the
 * part's checksum (S3 checks it; the SDK need not hash again), so a part can be retried by the SDK
 * and the download does not wait for each request. The verifier holds back the file's last bytes
 * until its size and SHA-256 are proven, so the last part exists only for a verified file; the
 * upload is completed only when the source then ends cleanly, and any failure aborts it.
 * Returns the completion's checksum (S3's checksum of the parts' checksums) when it gives one,
 * and the one S3 gives for exactly the parts sent: only an equal pair proves what was assembled.
 */
export async function uploadMultipart(
  s3: S3Client,
  target: MultipartTarget,
  source: Readable,
  size: number,
  options: MultipartOptions,
): Promise<{ readonly checksum: string | undefined; readonly expected: string }> {
  const { Bucket, Key } = target;
  // Before any request: a file S3 cannot hold starts no upload.
  const partLength = partSizeFor(size, options.minPartSize, Key);
  const UploadId = await createUpload(s3, target, options.abortSignal);
  const stop = new AbortController();
  const signal = AbortSignal.any([options.abortSignal, stop.signal]);
  const reader = new PartReader(source, Key);
  const state: PartsState = { parts: [], digests: [], inFlight: new Set(), failure: undefined, stop };
  try {
    for (let partNumber = 1, offset = 0; offset < size; partNumber += 1) {
      while (state.inFlight.size >= Math.max(1, options.partsInFlight)) await Promise.race(state.inFlight);
      if (state.failure !== undefined) throw state.failure.error;
      const length = Math.min(partLength, size - offset);
      // Every part takes a buffer of the file's part size, a shorter last part too: the same
      // buffers serve every part, and the budget counts what is held.
      const buffer = await options.partBuffers.take(partLength, signal);
      let part: ReadPart;
      try {
        // A part that failed for good stops the upload now, not when a stalled download moves.
        part = await untilAborted(reader.read(buffer.bytes.subarray(0, length)), signal);
      } catch (error) {
        // An abandoned read goes on writing into the buffer when the download moves: never reuse it.
        buffer.discard();
        throw error;
      }
      state.digests[partNumber - 1] = Buffer.from(part.sha256, 'base64');
      sendPart(s3, { Bucket, Key, UploadId }, state, { number: partNumber, length, part }, signal, buffer);
      offset += length;
    }
    // All bytes are read; the source must now end without error: that is the verifier's verdict.
    await untilAborted(reader.end(), signal);
    await Promise.all(state.inFlight);
    if (state.failure !== undefined) throw state.failure.error;
    const completed = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket,
        Key,
        UploadId,
        MultipartUpload: { Parts: state.parts },
        ...options.completeCondition,
      }),
      { abortSignal: options.abortSignal },
    );
    return { checksum: completed.ChecksumSHA256, expected: compositeChecksum(state.digests) };
  } catch (error) {
    stop.abort(error);
    options.onFailure?.(error);
    await Promise.allSettled(state.inFlight);
    // Not under the (possibly aborted) signal: the parts must go whatever stopped the upload.
    await s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined);
    throw error;
  }
}

/** Starts the multipart upload, its parts checksummed with SHA-256: its UploadId. */
async function createUpload(
  s3: S3Client,
  target: MultipartTarget,
  abortSignal: AbortSignal,
): Promise<string> {
  const created = await s3.send(
    new CreateMultipartUploadCommand({ ...target, ChecksumAlgorithm: ChecksumAlgorithm.SHA256 }),
    { abortSignal },
  );
  const UploadId = created.UploadId;
  if (UploadId === undefined) {
    // A store's glitch: a fresh attempt creates a fresh upload.
    throw new ArchiveError(target.Key, 'CreateMultipartUpload answered without an UploadId', {
      retryable: true,
    });
  }
  return UploadId;
}

/** One upload's parts as they go: those S3 took, every part's digest, those in flight, the first failure. */
interface PartsState {
  readonly parts: CompletedPart[];
  readonly digests: Buffer[];
  readonly inFlight: Set<Promise<void>>;
  failure: { readonly error: unknown } | undefined;
  /** Stops every part when one fails. */
  readonly stop: AbortController;
}

/**
 * Sends one part, in flight until S3 answers: its entry lands in `state.parts` and its buffer is
 * recycled, or its error is the upload's first failure and stops the other parts, and its buffer
 * is discarded (a request that failed or was aborted may not have finished writing it).
 */
function sendPart(
  s3: S3Client,
  { Bucket, Key, UploadId }: { readonly Bucket: string; readonly Key: string; readonly UploadId: string },
  state: PartsState,
  { number, length, part }: { readonly number: number; readonly length: number; readonly part: ReadPart },
  signal: AbortSignal,
  buffer: PartBuffer,
): void {
  const sending: Promise<void> = s3
    .send(
      new UploadPartCommand({
        Bucket,
        Key,
        UploadId,
        PartNumber: number,
        Body: part.bytes,
        ContentLength: length,
        ChecksumSHA256: part.sha256,
      }),
      { abortSignal: signal },
    )
    .then((reply) => {
      // S3 names the bytes it took: any other digest than the one sent is not this part.
      if (reply.ChecksumSHA256 !== undefined && reply.ChecksumSHA256 !== part.sha256) {
        throw new ArchiveError(
          Key,
          `part ${number}: S3 answered checksum ${reply.ChecksumSHA256}, sent ${part.sha256}`,
          { retryable: true },
        );
      }
      // Our own digest: S3 checks it again at completion.
      state.parts[number - 1] = { PartNumber: number, ETag: reply.ETag, ChecksumSHA256: part.sha256 };
      // S3 answered for every byte of the part (the SDK retries no more): nothing reads it now.
      buffer.recycle();
    })
    .catch((error: unknown) => {
      buffer.discard();
      state.failure ??= { error };
      state.stop.abort(error);
    })
    .finally(() => {
      state.inFlight.delete(sending);
    });
  state.inFlight.add(sending);
}

/**
 * S3's composite checksum of a multipart object: the SHA-256 of its parts' raw SHA-256 digests
 * in order, base64, then "-" and the part count ("Checking object integrity", Amazon S3 guide).
 */
function compositeChecksum(digests: readonly Buffer[]): string {
  return `${createHash('sha256').update(Buffer.concat(digests)).digest('base64')}-${digests.length}`;
}
