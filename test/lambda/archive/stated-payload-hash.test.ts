import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { PutObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Listening, listenOnLoopback } from '../../support/loopback.ts';
import { archiveS3At } from '../../support/loopback-s3.ts';

/** What the store received: the payload hash the request was signed with, and its body's own. */
interface Received {
  readonly signedPayload: string | undefined;
  readonly bodySha256: string;
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes);
const hex = (bytes: Uint8Array) => sha256(bytes).digest('hex');
const base64 = (bytes: Uint8Array) => sha256(bytes).digest('base64');

let server: Listening;
const received: Received[] = [];

async function bodyOf(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

beforeAll(async () => {
  server = await listenOnLoopback(
    createServer((request, response) => {
      void bodyOf(request).then((body) => {
        const signed = request.headers['x-amz-content-sha256'];
        received.push({
          signedPayload: typeof signed === 'string' ? signed : undefined,
          bodySha256: hex(body),
        });
        response.writeHead(200, { etag: '"e"' }).end();
      });
    }),
  );
});
afterAll(() => server.close());

/** Sends `command` through the archive's S3 client (as the function builds it) and returns what the store saw. */
async function sent(command: PutObjectCommand | UploadPartCommand): Promise<Received> {
  const s3 = archiveS3At(server.url);
  const before = received.length;
  try {
    await s3.send(command as PutObjectCommand);
  } finally {
    s3.destroy();
  }
  expect(received).toHaveLength(before + 1);
  return received.at(-1) as Received;
}

const bytes = Buffer.from('the stated bytes of a verified file\n'.repeat(100));
const other = Buffer.from('other bytes, not the ones stated\n'.repeat(100));
const target = { Bucket: 'archive', Key: 'line/data' };

describe('signing a PUT of bytes whose SHA-256 is sent beside them', () => {
  it('signs a verified file with its stated SHA-256, the digest of the bytes the store receives', async () => {
    const seen = await sent(new PutObjectCommand({ ...target, Body: bytes, ChecksumSHA256: base64(bytes) }));
    expect(seen.signedPayload).toBe(hex(bytes));
    expect(seen.bodySha256).toBe(hex(bytes));
  });

  it('signs a part with its stated SHA-256', async () => {
    const part = new UploadPartCommand({
      ...target,
      UploadId: 'u',
      PartNumber: 1,
      Body: bytes,
      ChecksumSHA256: base64(bytes),
    });
    expect((await sent(part)).signedPayload).toBe(hex(bytes));
  });

  it('signs bytes that are not the stated ones with the stated SHA-256, so S3 refuses them', async () => {
    const seen = await sent(new PutObjectCommand({ ...target, Body: other, ChecksumSHA256: base64(bytes) }));
    expect(seen.signedPayload).toBe(hex(bytes));
    expect(seen.bodySha256).not.toBe(seen.signedPayload);
  });

  it('hashes a record sent without a SHA-256 checksum itself', async () => {
    const seen = await sent(new PutObjectCommand({ ...target, Body: other }));
    expect(seen.signedPayload).toBe(hex(other));
  });

  it('hashes the bytes itself when the stated checksum is not a well-formed SHA-256', async () => {
    const seen = await sent(
      new PutObjectCommand({ ...target, Body: other, ChecksumSHA256: 'bm90IGEgZGlnZXN0' }),
    );
    expect(seen.signedPayload).toBe(hex(other));
  });

  it('leaves a streamed body unsigned, as the SDK sends it', async () => {
    const seen = await sent(
      new PutObjectCommand({
        ...target,
        Body: Readable.from([bytes]),
        ContentLength: bytes.length,
        ChecksumSHA256: base64(bytes),
      }),
    );
    expect(seen.signedPayload).toBe('UNSIGNED-PAYLOAD');
  });
});
