import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';

/** A fake S3 at the SDK boundary for the upload red-team tests: what they share. */

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
