import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach } from 'vitest';
import { Archive, type ArchiveOptions } from '../../lambda/archive/archive.ts';
import type { ByteBudget } from '../../lambda/archive/budget.ts';
import { uploadMultipart } from '../../lambda/archive/multipart.ts';
import { PartBuffers } from '../../lambda/archive/part-buffers.ts';

/** A fake S3 at the SDK boundary, and what the upload tests that drive it share. */

/**
 * An S3 client (dummy credentials, never sent) behind aws-sdk-client-mock, reset after each test
 * of the describe block it is called in.
 */
export function mockedS3() {
  const client = new S3Client({
    region: 'us-east-1',
    credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
  });
  const s3 = mockClient(client);
  afterEach(() => s3.reset());
  return { client, s3 };
}

export const MIB = 1024 * 1024;
export const LINE = '6f1f0d2e-8b9a-4c3d-9e8f-0a1b2c3d4e5f';
export const TARGET = {
  Bucket: 'b',
  Key: 'tokens/line/data',
  ContentType: 'application/octet-stream',
  Metadata: {},
};

export type Input = Record<string, unknown>;
type Handler = (input: Input, signal: AbortSignal | undefined) => Promise<unknown>;
interface Call {
  readonly command: string;
  readonly input: Input;
}

const COMMANDS = [
  ['CreateMultipartUpload', CreateMultipartUploadCommand],
  ['UploadPart', UploadPartCommand],
  ['CompleteMultipartUpload', CompleteMultipartUploadCommand],
  ['AbortMultipartUpload', AbortMultipartUploadCommand],
  ['PutObject', PutObjectCommand],
  ['HeadObject', HeadObjectCommand],
  ['GetObject', GetObjectCommand],
] as const;

/**
 * A fake S3Client at the SDK boundary that, unlike aws-sdk-client-mock, hands each handler the
 * request's abort signal, so a hung request can be stopped the way the SDK stops it.
 */
export function fakeS3(handlers: Partial<Record<(typeof COMMANDS)[number][0], Handler>>) {
  const calls: Call[] = [];
  const client = {
    send(command: object, options?: { abortSignal?: AbortSignal }): Promise<unknown> {
      const found = COMMANDS.find(([, type]) => command instanceof type);
      const name = found?.[0] ?? 'Other';
      const input = (command as { input: Input }).input;
      calls.push({ command: name, input });
      const handler = found === undefined ? undefined : handlers[found[0]];
      if (handler === undefined) return Promise.reject(new Error(`unexpected ${name}`));
      return handler(input, options?.abortSignal);
    },
  };
  const of = (name: string) => calls.filter((call) => call.command === name).map((call) => call.input);
  return { client: client as unknown as S3Client, calls, of };
}

export const created = async () => ({ UploadId: 'u1' });
export const aborted = async () => ({});
export const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
/** Settles with the promise, or with 'timed out' after `ms`: a hang shows as a failed assertion. */
export const within = <T>(promise: Promise<T>, ms: number) =>
  Promise.race([
    promise.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    ),
    new Promise<'timed out'>((resolve) => setTimeout(() => resolve('timed out'), ms).unref()),
  ]);
export const sha256 = (bytes: Buffer, encoding: 'hex' | 'base64') =>
  createHash('sha256').update(bytes).digest(encoding);

/** S3's composite checksum over raw part digests (base64 each): SHA-256 of their concatenation, "-N". */
export const compositeOf = (digests: readonly string[]) =>
  `${createHash('sha256')
    .update(Buffer.concat(digests.map((digest) => Buffer.from(digest, 'base64'))))
    .digest('base64')}-${digests.length}`;
/** The part digests a CompleteMultipartUpload input names, in its order. */
export const partDigests = (parts: readonly Input[]) => parts.map((part) => String(part.ChecksumSHA256));
/** The parts a CompleteMultipartUpload input lists. */
export const completedParts = (input: Input) => (input.MultipartUpload as { Parts: Input[] }).Parts;

/** An UploadPart handler that answers at once, echoing the part's own checksum as S3 does. */
export const echoPart = async (input: Input) => ({
  ETag: `e${input.PartNumber}`,
  ChecksumSHA256: input.ChecksumSHA256,
});

/** The Archive the upload tests drive: 5 MiB parts, HEAD read-back, unless `options` say otherwise. */
export function archiveOver(client: S3Client, options: Partial<ArchiveOptions> = {}): Archive {
  return new Archive({
    s3: client,
    bucket: 'tokens-archive',
    prefix: 'tokens/',
    multipartThresholdBytes: 5 * MIB,
    partSizeBytes: 5 * MIB,
    readback: 'head',
    uploadBufferBytes: 20 * MIB,
    partsInFlight: 4,
    ...options,
  });
}

/** `uploadMultipart` of `size` bytes to {@link TARGET}: 5 MiB parts, four in flight, unless said otherwise. */
export function multipartTo(
  s3: ReturnType<typeof fakeS3>,
  source: Readable,
  size: number,
  options: {
    budget: ByteBudget;
    partBuffers?: PartBuffers;
    signal?: AbortSignal;
    minPartSize?: number;
    partsInFlight?: number;
  },
) {
  return uploadMultipart(s3.client, TARGET, source, size, {
    minPartSize: options.minPartSize ?? 5 * MIB,
    partsInFlight: options.partsInFlight ?? 4,
    partBuffers: options.partBuffers ?? new PartBuffers(options.budget),
    abortSignal: options.signal ?? new AbortController().signal,
  });
}

/** Rejects when the signal aborts, as the SDK does for a request in flight. */
export const hang = (signal: AbortSignal | undefined) =>
  new Promise<never>((_, reject) => {
    signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
