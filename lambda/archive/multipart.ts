import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  ChecksumAlgorithm,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  type S3Client,
  UploadPartCommand,
  type UploadPartCommandOutput,
} from '@aws-sdk/client-s3';
import { ArchiveError } from '../shared/errors.ts';

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

/**
 * Streams `source` (exactly `size` bytes) into S3 as a multipart upload. The size is known, so
 * every part's length is too: each part is sent as its bytes arrive, and none is buffered, which
 * keeps memory flat whatever the file size. The upload is completed only when the source ended
 * cleanly after the last byte (the verifier's verdict); any failure aborts it.
 */
export async function streamMultipart(
  s3: S3Client,
  target: MultipartTarget,
  source: Readable,
  size: number,
  partSize: number,
  abortSignal: AbortSignal,
  // The bench's raw-copy limit turns part checksums off; the product always has them.
  checksumAlgorithm: ChecksumAlgorithm | undefined = ChecksumAlgorithm.SHA256,
  /** Completes only where there is no object, or only over the one with this ETag. */
  completeCondition: { readonly IfNoneMatch: '*' } | { readonly IfMatch: string } | undefined = undefined,
): Promise<void> {
  const { Bucket, Key } = target;
  // Before any request: a file S3 cannot hold starts no upload.
  const partLength = partSizeFor(size, partSize, Key);
  const created = await s3.send(
    new CreateMultipartUploadCommand({ ...target, ChecksumAlgorithm: checksumAlgorithm }),
    { abortSignal },
  );
  const UploadId = created.UploadId;
  if (UploadId === undefined) {
    // A store's glitch: a fresh attempt creates a fresh upload.
    throw new ArchiveError(Key, 'CreateMultipartUpload answered without an UploadId', { retryable: true });
  }
  try {
    const chunks = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    let carry: Buffer | undefined;
    let sourceError: unknown;
    /** The next `length` bytes of the source, chunk by chunk, splitting a chunk at the boundary. */
    async function* partBytes(length: number): AsyncGenerator<Buffer> {
      let left = length;
      while (left > 0) {
        let chunk = carry;
        carry = undefined;
        if (chunk === undefined) {
          let next: IteratorResult<Buffer>;
          try {
            next = await chunks.next();
          } catch (error) {
            // The verifier refused the bytes. End this part short instead of erroring its body:
            // the SDK wraps the body in streams of its own that nobody listens to once the
            // request is aborted. A short part cannot complete, and the error is thrown below.
            sourceError = error;
            return;
          }
          // The verifier errors on a short body first; this only guards the arithmetic.
          // Not retryable: reaching it means the arithmetic is wrong, and would be again.
          if (next.done) throw new ArchiveError(Key, `the body ended ${left} bytes before part end`);
          chunk = next.value;
        }
        if (chunk.length > left) {
          carry = chunk.subarray(left);
          chunk = chunk.subarray(0, left);
        }
        left -= chunk.length;
        yield chunk;
      }
    }
    const parts: CompletedPart[] = [];
    for (let partNumber = 1, offset = 0; offset < size; partNumber += 1) {
      const length = Math.min(partLength, size - offset);
      let reply: UploadPartCommandOutput;
      try {
        reply = await s3.send(
          new UploadPartCommand({
            Bucket,
            Key,
            UploadId,
            PartNumber: partNumber,
            Body: Readable.from(partBytes(length), { objectMode: false }),
            ContentLength: length,
            ChecksumAlgorithm: checksumAlgorithm,
          }),
          { abortSignal },
        );
      } catch (error) {
        throw sourceError ?? error;
      }
      // Should a store take a short part anyway, the verifier's verdict still stops the upload.
      if (sourceError !== undefined) throw sourceError;
      parts.push({ PartNumber: partNumber, ETag: reply.ETag, ChecksumSHA256: reply.ChecksumSHA256 });
      offset += length;
    }
    // All bytes are up; the source must now end without error: that is the verifier's verdict.
    const end = carry === undefined ? await chunks.next() : { done: false };
    // Not retryable either: the verifier refuses a byte more than stated before this sees it.
    if (!end.done) throw new ArchiveError(Key, 'the body has more bytes than stated');
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket,
        Key,
        UploadId,
        MultipartUpload: { Parts: parts },
        ...completeCondition,
      }),
      {
        abortSignal,
      },
    );
  } catch (error) {
    // Not under the (possibly aborted) signal: the parts must go whatever stopped the upload.
    await s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined);
    throw error;
  }
}
