import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { describe, expect, it, vi } from 'vitest';
import { ArchiveKeys } from '../../../lambda/archive/keys.ts';
import { ObjectStore } from '../../../lambda/archive/store.ts';
import { BUFFERED_PUT_BYTES, FileUploader } from '../../../lambda/archive/upload.ts';
import { ArchiveReadError, IntegrityError } from '../../../lambda/shared/errors.ts';
import {
  aborted,
  archiveOver,
  completedParts,
  compositeOf,
  created,
  echoPart,
  fakeS3,
  type Input,
  LINE,
  MIB,
  mockedS3,
  partDigests,
  sha256,
  tick,
} from '../../support/fake-s3.ts';

const BYTES = Buffer.from('the bytes of a small file');
const SHA256 = createHash('sha256').update(BYTES).digest();
const FILE = { name: 'data', size: BYTES.length, sha256: SHA256.toString('hex'), link: undefined };

describe('FileUploader read-back', () => {
  const { client, s3 } = mockedS3();

  const archive = (readback: 'head' | 'full') =>
    archiveOver(client, { multipartThresholdBytes: 8 * 2 ** 20, partSizeBytes: 8 * 2 ** 20, readback });
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
    const multipart = archiveOver(client, { multipartThresholdBytes: 8 });

    const uncaught = await uncaughtDuring(async () => {
      await expect(multipart.uploadVerified(LINE, FILE, Readable.from([BYTES]))).rejects.toThrow(
        /socket hang up/,
      );
    });

    expect(uncaught).toEqual([]);
  });
});

// A three-part file, no two parts alike (a byte pattern with a period dividing 5 MiB would make parts equal).
const body = randomBytes(12 * MIB);
const file = { name: 'data', size: body.length, sha256: sha256(body, 'hex'), link: undefined };

describe('FileUploader read-back under a store that answers falsely (head)', () => {
  /** A HEAD showing an object that is not the file: any read-back must refuse it. */
  const wrongObject = async () => ({
    ContentLength: 1,
    Metadata: { sha256: file.sha256, size: String(file.size) },
    ETag: '"w"',
  });
  /** A store that takes every part and answers its completion with `checksum` over the parts listed. */
  const completingWith = (checksum: (parts: Input[]) => string) =>
    fakeS3({
      CreateMultipartUpload: created,
      UploadPart: echoPart,
      CompleteMultipartUpload: async (input) => ({ ChecksumSHA256: checksum(completedParts(input)) }),
      HeadObject: wrongObject,
    });

  it('needs no HEAD when the completion checksum is the one over the parts it was sent', async () => {
    const s3 = completingWith((parts) => compositeOf(partDigests(parts)));

    await archiveOver(s3.client).uploadVerified(LINE, file, Readable.from([body]));

    expect(s3.of('HeadObject')).toHaveLength(0);
  });

  // Each is a completion checksum that is not the composite over the parts sent, so none may stand
  // in for the read-back (a bare `includes('-')` once let every one of them through).
  it.for([
    ['over the parts in another order', (parts: Input[]) => compositeOf(partDigests(parts).reverse())],
    ['over all parts but the last', (parts: Input[]) => compositeOf(partDigests(parts).slice(0, -1))],
    [
      'over a part repeated in place of another',
      (parts: Input[]) => {
        const digests = partDigests(parts);
        return compositeOf([digests[0] ?? '', digests[0] ?? '', digests[2] ?? '']);
      },
    ],
    [
      'right in its hash but not in its part count',
      (parts: Input[]) => compositeOf(partDigests(parts)).replace(/-3$/, '-4'),
    ],
    ['without its "-N" suffix', (parts: Input[]) => compositeOf(partDigests(parts)).replace(/-3$/, '')],
    ['any dashed value ("…-7" for 3 parts)', () => `${Buffer.alloc(32).toString('base64')}-7`],
    ["the whole file's SHA-256", () => sha256(body, 'base64')],
  ] as const)(
    'reads back with a HEAD when the multipart completion checksum is %s',
    async ([_label, checksum]) => {
      const s3 = completingWith(checksum);

      await expect(archiveOver(s3.client).uploadVerified(LINE, file, Readable.from([body]))).rejects.toThrow(
        /read-back/,
      );
      expect(s3.of('HeadObject')).toHaveLength(1);
    },
  );

  const small = Buffer.from('a small file');
  const smallFile = { name: 'data', size: small.length, sha256: sha256(small, 'hex'), link: undefined };

  // A single PutObject never has a composite checksum: only its own SHA-256, in base64, confirms it.
  it.for([
    ['the checksum of other bytes', sha256(Buffer.from('other bytes'), 'base64')],
    ['a truncated checksum', createHash('sha256').update(small).digest().subarray(0, 31).toString('base64')],
    ['the checksum in hex', sha256(small, 'hex')],
    ['a dashed, multipart-looking checksum', 'garbage-1'],
  ] as const)('reads back with a HEAD when a PutObject reply carries %s', async ([_label, reply]) => {
    const s3 = fakeS3({ PutObject: async () => ({ ChecksumSHA256: reply }), HeadObject: wrongObject });

    await expect(
      archiveOver(s3.client).uploadVerified(LINE, smallFile, Readable.from([small])),
    ).rejects.toThrow(/read-back/);
    expect(s3.of('HeadObject')).toHaveLength(1);
  });

  // Guards uploadMultipart: an UploadPart reply whose checksum is not the digest sent (S3 holds
  // other bytes for that part) fails the part, instead of letting a HEAD with size and metadata
  // alone vouch for the object.
  it('refuses a multipart object whose part reply names other bytes than were sent', async () => {
    const other = sha256(Buffer.from('not part 2'), 'base64');
    const s3 = fakeS3({
      CreateMultipartUpload: created,
      UploadPart: async (input) => ({
        ETag: `e${input.PartNumber}`,
        ChecksumSHA256: input.PartNumber === 2 ? other : input.ChecksumSHA256,
      }),
      // As S3 would: the composite over the parts it holds.
      CompleteMultipartUpload: async (input) => ({
        ChecksumSHA256: compositeOf(partDigests(completedParts(input))),
      }),
      HeadObject: async () => ({
        ContentLength: file.size,
        Metadata: { sha256: file.sha256, size: String(file.size) },
        ChecksumSHA256: `${Buffer.alloc(32, 1).toString('base64')}-3`,
        ETag: '"m"',
      }),
    });

    await expect(archiveOver(s3.client).uploadVerified(LINE, file, Readable.from([body]))).rejects.toThrow();
  });
});

describe('FileUploader with parts in flight', () => {
  it('aborts, completes nothing and frees the budget when the hash fails on the last chunk with parts in flight', async () => {
    const s3 = fakeS3({
      CreateMultipartUpload: created,
      UploadPart: async (input) => {
        for (let i = 0; i < 5; i++) await tick();
        return { ETag: `e${input.PartNumber}` };
      },
      AbortMultipartUpload: aborted,
    });
    const target = archiveOver(s3.client);
    const chunks = [body.subarray(0, 11 * MIB), body.subarray(11 * MIB)];

    const upload = target.uploadVerified(LINE, { ...file, sha256: '0'.repeat(64) }, Readable.from(chunks));

    await expect(upload).rejects.toThrow(IntegrityError);
    expect(s3.of('UploadPart').length).toBeGreaterThan(0);
    expect(s3.of('CompleteMultipartUpload')).toHaveLength(0);
    expect(s3.of('AbortMultipartUpload')).toHaveLength(1);
    expect(target.uploadBudget.used).toBe(0);
  });
});

describe('FileUploader, a small file', () => {
  const { client, s3 } = mockedS3();
  const small = () => archiveOver(client, { multipartThresholdBytes: 8 * MIB });

  it('verifies a small file whole before its PUT: a body whose hash differs sends no request at all', async () => {
    s3.on(PutObjectCommand).resolves({ ChecksumSHA256: SHA256.toString('base64') });
    const other = Buffer.from(BYTES).fill(0x41, 0, 3);

    const uploading = small().uploadVerified(LINE, FILE, Readable.from([other]));

    await expect(uploading).rejects.toThrow(IntegrityError);
    expect(s3.commandCalls(PutObjectCommand)).toHaveLength(0);
  });

  it('sends the verified bytes as one buffer, with the stated checksum', async () => {
    s3.on(PutObjectCommand).resolves({ ChecksumSHA256: SHA256.toString('base64') });

    await small().uploadVerified(LINE, FILE, Readable.from([BYTES.subarray(0, 5), BYTES.subarray(5)]));

    const input = s3.commandCalls(PutObjectCommand)[0]?.args[0].input;
    expect(Buffer.isBuffer(input?.Body)).toBe(true);
    expect(Buffer.compare(input?.Body as Buffer, BYTES)).toBe(0);
    expect(input?.ChecksumSHA256).toBe(SHA256.toString('base64'));
  });

  it('holds its bytes within the upload budget until S3 has answered, then gives them back', async () => {
    let heldDuringPut: number | undefined;
    const fake = fakeS3({
      PutObject: async () => {
        heldDuringPut = target.uploadBudget.used;
        return { ChecksumSHA256: SHA256.toString('base64') };
      },
    });
    const target = archiveOver(fake.client, { multipartThresholdBytes: 8 * MIB });

    await target.uploadVerified(LINE, FILE, Readable.from([BYTES]));

    expect(heldDuringPut).toBe(BYTES.length);
    expect(target.uploadBudget.used).toBe(0);
  });

  it('keeps a small file read whole and the free part buffers together within the upload budget', async () => {
    const bytes = randomBytes(MIB);
    let heldDuringPut: number | undefined;
    const fake = fakeS3({
      PutObject: async () => {
        heldDuringPut = uploader.budget.used + uploader.partBuffers.freeBytes;
        return { ChecksumSHA256: sha256(bytes, 'base64') };
      },
    });
    const uploader = new FileUploader(
      new ObjectStore(fake.client, 'tokens-archive'),
      new ArchiveKeys('tokens/'),
      {
        multipartThresholdBytes: 5 * MIB,
        partSizeBytes: 5 * MIB,
        readback: 'head',
        uploadBufferBytes: 20 * MIB,
      },
    );
    // A large file's parts went up before: their buffers wait in the pool, the whole budget of them.
    const parts = await Promise.all([1, 2, 3, 4].map(() => uploader.partBuffers.take(5 * MIB)));
    for (const part of parts) part.recycle();
    expect(uploader.partBuffers.freeBytes).toBe(20 * MIB);

    await uploader.uploadVerified(
      LINE,
      { name: 'small', size: bytes.length, sha256: sha256(bytes, 'hex'), link: undefined },
      Readable.from([bytes]),
    );

    expect(heldDuringPut).toBeLessThanOrEqual(20 * MIB);
    expect(uploader.budget.used).toBe(0);
  });

  it('streams a file above the size sent from memory into its PUT, aborting nothing when it succeeds', async () => {
    const bytes = randomBytes(BUFFERED_PUT_BYTES + 1000);
    const fake = fakeS3({
      PutObject: async (input) => {
        const hash = createHash('sha256');
        for await (const chunk of input.Body as Readable) hash.update(chunk as Buffer);
        return { ChecksumSHA256: hash.digest('base64') };
      },
    });
    const target = archiveOver(fake.client, { multipartThresholdBytes: 8 * MIB });
    const abort = vi.spyOn(AbortController.prototype, 'abort');
    try {
      await target.uploadVerified(
        LINE,
        { name: 'data', size: bytes.length, sha256: sha256(bytes, 'hex'), link: undefined },
        Readable.from([bytes.subarray(0, MIB), bytes.subarray(MIB)]),
      );

      expect(fake.of('PutObject')[0]?.Body).toBeInstanceOf(Readable);
      expect(abort).not.toHaveBeenCalled();
    } finally {
      abort.mockRestore();
    }
  });
});

describe('Archive.storedDigest when its run aborts', () => {
  const { client, s3 } = mockedS3();
  const archive = archiveOver(client, {
    multipartThresholdBytes: 8 * MIB,
    partSizeBytes: 8 * MIB,
    readback: 'full',
  });

  it('ends a read stalled mid-body as inconclusive, never as the digest of the bytes read so far', async () => {
    // A flaky store: the object's first bytes, no Content-Length, then nothing more. Only the
    // run's abort ends the read; what was hashed by then must not pass for the object's digest.
    const stalled = new Readable({ read: () => undefined });
    stalled.push(BYTES.subarray(0, 8));
    s3.on(GetObjectCommand).callsFake(() => ({ Body: stalled }));
    const run = new AbortController();

    const reading = archive.storedDigest('tokens/line/data', run.signal);
    await tick();
    run.abort(new Error('deadline reached'));

    await expect(reading).rejects.toThrow(ArchiveReadError);
    await expect(reading).rejects.toThrow(/broke off after 8 bytes/);
  });
});
