import type { S3Client } from '@aws-sdk/client-s3';

/** The header SigV4 signs as the payload's SHA-256 (hex), and S3 checks the body against. */
const PAYLOAD_HASH_HEADER = 'x-amz-content-sha256';

/**
 * Signs a PUT of bytes already hashed under the SHA-256 sent beside them (`ChecksumSHA256`, a
 * verified file or part) instead of hashing those bytes again: without this the signer hashes
 * every byte of a PutObject or UploadPart body a second time, to the same digest. S3 checks the
 * body against both headers, so bytes that are not the stated ones are refused as before (by
 * `x-amz-content-sha256` now as well as by the checksum). A streamed body is left as it is
 * (signed as UNSIGNED-PAYLOAD), as is a request without a SHA-256 checksum.
 */
export function signWithStatedPayloadHash(s3: S3Client): void {
  s3.middlewareStack.add(
    (next) => async (args) => {
      const checksum = (args.input as { ChecksumSHA256?: unknown }).ChecksumSHA256;
      if (typeof checksum === 'string') statePayloadHash(args.request, checksum);
      return next(args);
    },
    // After the content-length and checksum headers are set, before the signer runs (finalize).
    { step: 'build', name: 'statedPayloadHash', priority: 'low' },
  );
}

/** The parts of the SDK's HTTP request read and set here. */
interface OutgoingRequest {
  readonly headers: Record<string, string>;
  readonly body?: unknown;
}

function statePayloadHash(request: unknown, checksum: string): void {
  if (typeof request !== 'object' || request === null || !('headers' in request)) return;
  const { headers, body } = request as OutgoingRequest;
  if (!(body instanceof Uint8Array) || hasHeader(headers, PAYLOAD_HASH_HEADER)) return;
  const digest = Buffer.from(checksum, 'base64');
  // Only a well-formed digest stands in for the signer's own: anything else is hashed as before.
  if (digest.length === 32 && digest.toString('base64') === checksum) {
    headers[PAYLOAD_HASH_HEADER] = digest.toString('hex');
  }
}

function hasHeader(headers: Record<string, string>, name: string): boolean {
  return Object.keys(headers).some((key) => key.toLowerCase() === name);
}
