/**
 * The independent reference of issue 13: the plain copy script an operator would write. Each file
 * is streamed from the tokens service (undici `request`, the session key header) into
 * `@aws-sdk/lib-storage`'s `Upload`, 8 MiB parts with 4 in flight, several files at once
 * (p-limit). Nothing else: no line GET, no hashing (the SDK's default CRC32 off too), no
 * read-back, no manifest, no DELETE. It borrows nothing from the product, so the limit it sets
 * does not move when the product changes.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import pLimit from 'p-limit';
import { request } from 'undici';
import type { Moved, PlanLine } from './plan.ts';

/** Part size and parts in flight per file, as lib-storage users commonly set them. */
export const REFERENCE_PART_BYTES = 8 * 1024 * 1024;
export const REFERENCE_PARTS_IN_FLIGHT = 4;
/** Files at once when the bench does not match another run's concurrency. */
export const REFERENCE_FILES_IN_FLIGHT = 4;

/** Where to copy from and to: what an operator would put in the script's environment. */
export interface ReferenceTarget {
  readonly tokensApiUrl: string;
  readonly sessionKey: string;
  readonly bucket: string;
  /** A local or third-party S3 (path-style addressing). */
  readonly s3Endpoint: string | undefined;
  readonly filesInFlight: number;
}

/** Copies every file of `lines` to `reference/{line}/{file}` in the bucket. */
export async function referenceCopy(target: ReferenceTarget, lines: readonly PlanLine[]): Promise<Moved> {
  const s3 = plainS3Client(target);
  const limit = pLimit(target.filesInFlight);
  try {
    const copied = await Promise.all(
      lines.flatMap((line) =>
        line.files.map((file) => limit(() => copyFile(s3, target, line.id, file.name))),
      ),
    );
    return {
      lines: lines.length,
      files: copied.length,
      bytes: copied.reduce((sum, bytes) => sum + bytes, 0),
    };
  } finally {
    s3.destroy();
  }
}

/** An S3 client as the script's operator would make it: the endpoint given, the SDK's CRC32 off. */
export function plainS3Client(target: ReferenceTarget): S3Client {
  return new S3Client({
    ...(target.s3Endpoint === undefined ? {} : { endpoint: target.s3Endpoint, forcePathStyle: true }),
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
}

/** One file, GET piped into an upload; resolves to the bytes the upload reports sent. */
async function copyFile(
  s3: S3Client,
  target: ReferenceTarget,
  lineId: string,
  name: string,
): Promise<number> {
  // A URL's empty path reads back as "/": "//api" would name another host.
  const base = target.tokensApiUrl.replace(/\/+$/, '');
  const { statusCode, body } = await request(`${base}/api/tokens/${lineId}/${name}`, {
    headers: { 'session-key': target.sessionKey },
  });
  if (statusCode !== 200) {
    await body.dump();
    throw new Error(`GET file ${name} of line ${lineId} answered ${statusCode}`);
  }
  const upload = new Upload({
    client: s3,
    params: { Bucket: target.bucket, Key: `reference/${lineId}/${name}`, Body: body },
    partSize: REFERENCE_PART_BYTES,
    queueSize: REFERENCE_PARTS_IN_FLIGHT,
  });
  let sent = 0;
  upload.on('httpUploadProgress', (progress) => {
    sent = progress.loaded ?? sent;
  });
  try {
    await upload.done();
  } catch (error) {
    body.destroy();
    throw error;
  }
  return sent;
}
