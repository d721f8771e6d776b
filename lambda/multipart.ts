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
): Promise<void> {
  const { Bucket, Key } = target;
  const created = await s3.send(
    new CreateMultipartUploadCommand({ ...target, ChecksumAlgorithm: checksumAlgorithm }),
    { abortSignal },
  );
  const UploadId = created.UploadId;
  if (UploadId === undefined) throw new Error('CreateMultipartUpload answered without an UploadId');
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
          if (next.done) throw new Error(`the body ended ${left} bytes before part end`);
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
      const length = Math.min(partSize, size - offset);
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
    if (!end.done) throw new Error('the body has more bytes than stated');
    await s3.send(
      new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }),
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
