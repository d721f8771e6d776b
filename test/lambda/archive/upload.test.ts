import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { Archive } from '../../../lambda/archive/archive.ts';

const LINE = '6f1f0d2e-8b9a-4c3d-9e8f-0a1b2c3d4e5f';
const BYTES = Buffer.from('the bytes of a small file');
const SHA256 = createHash('sha256').update(BYTES).digest();
const FILE = { name: 'data', size: BYTES.length, sha256: SHA256.toString('hex'), link: undefined };

describe('FileUploader read-back', () => {
  const client = new S3Client({
    region: 'us-east-1',
    credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
  });
  const s3 = mockClient(client);
  afterEach(() => s3.reset());

  const archive = (readback: 'head' | 'full') =>
    new Archive({
      s3: client,
      bucket: 'tokens-archive',
      prefix: 'tokens/',
      multipartThresholdBytes: 8 * 2 ** 20,
      partSizeBytes: 8 * 2 ** 20,
      readback,
    });
  const stored = {
    ContentLength: BYTES.length,
    Metadata: { sha256: FILE.sha256, size: String(BYTES.length) },
    ChecksumSHA256: SHA256.toString('base64'),
    ETag: '"e"',
  };

  it('needs no HEAD on S3 when the PutObject reply carries the checksum S3 validated (head)', async () => {
    s3.on(PutObjectCommand).resolves({ ChecksumSHA256: SHA256.toString('base64') });
    s3.on(HeadObjectCommand).resolves(stored);

    await archive('head').uploadVerified(LINE, FILE, Readable.from([BYTES]));

    expect(s3.commandCalls(PutObjectCommand)).toHaveLength(1);
    expect(s3.commandCalls(HeadObjectCommand)).toHaveLength(0);
  });

  it('reads back with a HEAD when the reply carries no checksum, or another one (head)', async () => {
    s3.on(PutObjectCommand)
      .resolvesOnce({})
      .resolvesOnce({ ChecksumSHA256: Buffer.alloc(32).toString('base64') });
    s3.on(HeadObjectCommand).resolves(stored);

    await archive('head').uploadVerified(LINE, FILE, Readable.from([BYTES]));
    await archive('head').uploadVerified(LINE, FILE, Readable.from([BYTES]));

    expect(s3.commandCalls(HeadObjectCommand)).toHaveLength(2);
  });

  it('always reads back with full, whatever the reply says (a store that does not check)', async () => {
    s3.on(PutObjectCommand).resolves({ ChecksumSHA256: SHA256.toString('base64') });
    s3.on(HeadObjectCommand).resolves(stored);
    // What the store holds: other bytes of the same length, read back whole.
    const other = Buffer.alloc(BYTES.length, 1);
    s3.on(GetObjectCommand).callsFake(() => ({ Body: Readable.from([other]), ContentLength: other.length }));

    await expect(archive('full').uploadVerified(LINE, FILE, Readable.from([BYTES]))).rejects.toThrow(
      /read-back: bytes hash to/,
    );

    expect(s3.commandCalls(HeadObjectCommand)).toHaveLength(1);
  });

  it('judges no object by a HEAD that does not say its length: inconclusive, never damaged', async () => {
    const { ContentLength: _dropped, ...withoutLength } = stored;
    s3.on(HeadObjectCommand).resolves(withoutLength);

    const inspecting = archive('head').inspect(`tokens/${LINE}/data`);

    await expect(inspecting).rejects.toMatchObject({
      name: 'ArchiveReadError',
      message: `s3 object tokens/${LINE}/data: HeadObject gave no Content-Length`,
    });
  });

  /** Uncaught exceptions while `during` runs and a moment after: a stream error nobody listened to. */
  const uncaughtDuring = async (during: () => Promise<unknown>): Promise<unknown[]> => {
    const uncaught: unknown[] = [];
    const note = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', note);
    try {
      await during().catch(() => undefined);
      await new Promise((settled) => setImmediate(settled));
    } finally {
      process.off('uncaughtException', note);
    }
    return uncaught;
  };
  const hangUp = async () => {
    // The request fails only after the whole (small) body was verified and buffered for it.
    await new Promise((later) => setTimeout(later, 10));
    throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
  };

  it('fails the file, not the process, when the store drops a PutObject after the body was verified', async () => {
    s3.on(PutObjectCommand).callsFake(hangUp);

    const uploading = archive('head').uploadVerified(LINE, FILE, Readable.from([BYTES]));

    await expect(uploading).rejects.toMatchObject({ name: 'ArchiveError', message: /socket hang up/ });
    expect(await uncaughtDuring(() => uploading)).toEqual([]);
  });

  it('fails the file, not the process, when the store drops a part after the body was verified', async () => {
    s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'u' });
    s3.on(UploadPartCommand).callsFake(hangUp);
    const multipart = new Archive({
      s3: client,
      bucket: 'tokens-archive',
      prefix: 'tokens/',
      multipartThresholdBytes: 8,
      partSizeBytes: 5 * 2 ** 20,
      readback: 'head',
    });

    const uncaught = await uncaughtDuring(async () => {
      await expect(multipart.uploadVerified(LINE, FILE, Readable.from([BYTES]))).rejects.toThrow(
        /socket hang up/,
      );
    });

    expect(uncaught).toEqual([]);
  });
});
