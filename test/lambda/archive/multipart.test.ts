import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ByteBudget } from '../../../lambda/archive/budget.ts';
import { MAX_OBJECT_SIZE } from '../../../lambda/archive/multipart.ts';
import { PartBuffers } from '../../../lambda/archive/part-buffers.ts';
import { ArchiveError } from '../../../lambda/shared/errors.ts';
import {
  aborted,
  created,
  echoPart,
  fakeS3,
  hang,
  type Input,
  MIB,
  multipartTo,
  sha256,
  tick,
  within,
} from '../../support/fake-s3.ts';
import { unhandledDuring } from '../../support/unhandled.ts';

/** The configured default, `MULTIPART_PART_SIZE_BYTES`. */
const DEFAULT_PART = 8 * MIB;

describe('uploadMultipart', () => {
  it('starts no upload for a file larger than S3 holds', async () => {
    const s3 = fakeS3({});

    const upload = multipartTo(s3, Readable.from([]), MAX_OBJECT_SIZE + 1, {
      minPartSize: DEFAULT_PART,
      budget: new ByteBudget(DEFAULT_PART),
    });

    await expect(upload).rejects.toThrow(ArchiveError);
    expect(s3.of('CreateMultipartUpload')).toHaveLength(0);
  });
});

describe('uploadMultipart with parts in flight', () => {
  /** A store whose UploadPart answers only when the test says so, recording what is in flight. */
  function slowStore() {
    let inFlight = 0;
    let maxInFlight = 0;
    const releases: (() => void)[] = [];
    const s3 = fakeS3({
      CreateMultipartUpload: created,
      UploadPart: async (input) => {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise<void>((resolve) => releases.push(resolve));
        inFlight -= 1;
        return { ETag: `e${input.PartNumber}` };
      },
      CompleteMultipartUpload: async () => ({ ChecksumSHA256: 'abc-3' }),
      AbortMultipartUpload: aborted,
    });
    const drain = async () => {
      while (releases.length > 0 || inFlight > 0) {
        releases.shift()?.();
        await tick();
      }
    };
    return { s3, maxInFlight: () => maxInFlight, drain };
  }

  it('sends several parts at once but never holds more part bytes than the budget', async () => {
    const store = slowStore();
    const budget = new ByteBudget(12 * MIB);
    const body = Buffer.alloc(30 * MIB, 7);

    const upload = multipartTo(store.s3, Readable.from([body]), body.length, { budget });
    const drained = (async () => {
      for (let i = 0; i < 200 && budget.used === 0; i++) await tick();
      await store.drain();
    })();
    const [completed] = await Promise.all([upload, drained]);

    expect(completed.checksum).toBe('abc-3');
    // 12 MiB hold two 5 MiB parts: more than one part in flight, never more than the budget.
    expect(store.maxInFlight()).toBe(2);
    expect(budget.peak).toBeLessThanOrEqual(12 * MIB);
    expect(budget.used).toBe(0);
    const parts = store.s3.of('UploadPart');
    expect(parts.map((part) => part.PartNumber)).toEqual([1, 2, 3, 4, 5, 6]);
    // Each part carries its own SHA-256, computed on the way in.
    expect(parts[0]?.ChecksumSHA256).toBe(sha256(body.subarray(0, 5 * MIB), 'base64'));
  });

  it('puts every byte in its own part, in order, whatever the chunk boundaries and reply order', async () => {
    const body = Buffer.from(Array.from({ length: 17 * MIB + 3 }, (_, i) => (i * 31 + 7) & 0xff));
    // A one-byte chunk, chunks ending exactly on a part boundary, one spanning three parts.
    const cuts = [1, 5 * MIB, 10 * MIB, 10 * MIB + 1, 17 * MIB + 3];
    const chunks = cuts.map((end, i) => body.subarray(i === 0 ? 0 : cuts[i - 1], end));
    const s3 = fakeS3({
      CreateMultipartUpload: created,
      // Later parts answer first.
      UploadPart: async (input) => {
        for (let i = 0; i < 10 - Number(input.PartNumber); i++) await tick();
        return echoPart(input);
      },
      CompleteMultipartUpload: async () => ({ ChecksumSHA256: 'x-4' }),
    });
    const budget = new ByteBudget(40 * MIB);

    await multipartTo(s3, Readable.from(chunks), body.length, { budget });

    const parts = s3.of('UploadPart');
    expect(Buffer.concat(parts.map((part) => part.Body as Buffer)).equals(body)).toBe(true);
    for (const part of parts) expect(part.ChecksumSHA256).toBe(sha256(part.Body as Buffer, 'base64'));
    const completed = s3.of('CompleteMultipartUpload')[0]?.MultipartUpload as { Parts: Input[] };
    expect(completed.Parts.map((part) => [part.PartNumber, part.ETag])).toEqual([
      [1, 'e1'],
      [2, 'e2'],
      [3, 'e3'],
      [4, 'e4'],
    ]);
    expect(budget.used).toBe(0);
  });

  it('sends a part larger than the whole budget alone, completes, and gives the budget back', async () => {
    const s3 = fakeS3({
      CreateMultipartUpload: created,
      UploadPart: async (input) => {
        await tick();
        return { ETag: `e${input.PartNumber}` };
      },
      CompleteMultipartUpload: async () => ({}),
    });
    const budget = new ByteBudget(5 * MIB);

    const upload = multipartTo(s3, Readable.from([Buffer.alloc(13 * MIB)]), 13 * MIB, {
      minPartSize: 6 * MIB,
      budget,
    });

    expect(await within(upload, 2000)).toMatchObject({ value: { checksum: undefined } });
    expect(s3.of('UploadPart')).toHaveLength(3);
    expect(budget.peak).toBe(5 * MIB);
    expect(budget.used).toBe(0);
  });
});

describe('uploadMultipart when it fails', () => {
  it.for([
    [
      'the source fails after some parts',
      { UploadPart: async () => ({ ETag: 'e' }) },
      async function* failing() {
        yield Buffer.alloc(6 * MIB);
        throw new Error('SHA-256 mismatch in the last bytes');
      },
      'SHA-256 mismatch',
      4,
    ],
    [
      'a part fails for good',
      { UploadPart: () => Promise.reject(new Error('part refused')) },
      async function* whole() {
        yield Buffer.alloc(12 * MIB);
      },
      'part refused',
      2,
    ],
  ] as const)(
    'aborts the upload, completes nothing and gives its budget back when %s',
    async ([_label, handlers, source, message, partsInFlight]) => {
      const s3 = fakeS3({ CreateMultipartUpload: created, AbortMultipartUpload: aborted, ...handlers });
      const budget = new ByteBudget(20 * MIB);

      const upload = multipartTo(s3, Readable.from(source()), 12 * MIB, { budget, partsInFlight });

      await expect(upload).rejects.toThrow(message);
      expect(s3.of('CompleteMultipartUpload')).toHaveLength(0);
      expect(s3.of('AbortMultipartUpload')).toHaveLength(1);
      expect(budget.used).toBe(0);
    },
  );

  // Guards the race of the part's read against the upload's own stop: a part that failed for good
  // is reported at once, not after a stalled download delivers a whole further part.
  it('reports a part that fails for good at once, without waiting for a stalled source', async () => {
    const s3 = fakeS3({
      CreateMultipartUpload: created,
      UploadPart: async () => {
        await tick();
        throw new Error('part refused');
      },
      AbortMultipartUpload: aborted,
    });
    const budget = new ByteBudget(20 * MIB);
    let first = Buffer.alloc(5 * MIB);
    // A download that yields one part's bytes and then never another byte nor an end.
    const stalled = new Readable({
      read() {
        if (first.length > 0) this.push(first);
        first = Buffer.alloc(0);
      },
    });

    const upload = multipartTo(s3, stalled, 12 * MIB, { budget });

    expect(await within(upload, 1000)).toMatchObject({ error: { message: 'part refused' } });
    expect(s3.of('AbortMultipartUpload')).toHaveLength(1);
    expect(budget.used).toBe(0);
  });
});

describe('uploadMultipart when the run aborts', () => {
  it('stops parts in flight, completes nothing and gives the budget back when the run aborts mid-part', async () => {
    const s3 = fakeS3({
      CreateMultipartUpload: created,
      UploadPart: async (_, signal) => hang(signal),
      AbortMultipartUpload: aborted,
    });
    const budget = new ByteBudget(20 * MIB);
    const run = new AbortController();

    const upload = multipartTo(s3, Readable.from([Buffer.alloc(12 * MIB)]), 12 * MIB, {
      budget,
      signal: run.signal,
    });
    while (s3.of('UploadPart').length < 3) await tick();
    run.abort(new Error('deadline'));

    expect(await within(upload, 2000)).toMatchObject({ error: { message: 'deadline' } });
    expect(s3.of('CompleteMultipartUpload')).toHaveLength(0);
    expect(s3.of('AbortMultipartUpload')).toHaveLength(1);
    expect(budget.used).toBe(0);
  });

  it('stops waiting for room when the run aborts, leaving the other holder its bytes', async () => {
    const s3 = fakeS3({ CreateMultipartUpload: created, AbortMultipartUpload: aborted });
    const budget = new ByteBudget(10 * MIB);
    const other = await budget.acquire(10 * MIB);
    const run = new AbortController();

    const upload = multipartTo(s3, Readable.from([Buffer.alloc(6 * MIB)]), 6 * MIB, {
      budget,
      signal: run.signal,
    });
    while (s3.of('CreateMultipartUpload').length === 0) await tick();
    await tick();
    run.abort(new Error('deadline'));

    expect(await within(upload, 2000)).toMatchObject({ error: { message: 'deadline' } });
    expect(s3.of('UploadPart')).toHaveLength(0);
    expect(budget.used).toBe(other);
    budget.release(other);
    expect(budget.used).toBe(0);
  });

  // Guards the part's read when the run aborts between a budget grant and that read (the deadline
  // fires as another holder releases): the read, rejected later when the download is destroyed,
  // must be handled, or it takes the Lambda process down.
  it('leaves no unhandled rejection when the run aborts just as the budget grants a part', async () => {
    const unhandled = await unhandledDuring(async () => {
      const s3 = fakeS3({ CreateMultipartUpload: created, AbortMultipartUpload: aborted });
      const budget = new ByteBudget(5 * MIB);
      const other = await budget.acquire(5 * MIB);
      const run = new AbortController();
      const source = new Readable({ read() {} });

      const upload = multipartTo(s3, source, 6 * MIB, { budget, signal: run.signal });
      while (s3.of('CreateMultipartUpload').length === 0) await tick();
      await tick();
      budget.release(other);
      run.abort(new Error('deadline'));

      expect(await within(upload, 2000)).toMatchObject({ error: { message: 'deadline' } });
      expect(budget.used).toBe(0);
      // What transfer() does next: the download is destroyed.
      source.destroy(new Error('download reset'));
    });
    expect(unhandled).toEqual([]);
  });

  it('holds no budget after a read abandoned by the abort completes later, and sends no part for it', async () => {
    const s3 = fakeS3({
      CreateMultipartUpload: created,
      UploadPart: echoPart,
      AbortMultipartUpload: aborted,
    });
    const budget = new ByteBudget(12 * MIB);
    const run = new AbortController();
    const source = new Readable({ read() {} });
    source.push(Buffer.alloc(6 * MIB, 1));

    const upload = multipartTo(s3, source, 12 * MIB, { budget, signal: run.signal });
    while (s3.of('UploadPart').length === 0) await tick();
    for (let i = 0; i < 5; i++) await tick();
    // Part 2 is mid-read (1 MiB of 5 in hand) when the run stops.
    run.abort(new Error('deadline'));
    expect(await within(upload, 2000)).toMatchObject({ error: { message: 'deadline' } });
    expect(budget.used).toBe(0);

    // The stalled download moves again: the abandoned read completes, and must change nothing.
    const unhandled = await unhandledDuring(async () => {
      source.push(Buffer.alloc(6 * MIB, 2));
      source.push(null);
    });
    expect(unhandled).toEqual([]);
    expect(budget.used).toBe(0);
    expect(s3.of('UploadPart')).toHaveLength(1);
    expect(s3.of('CompleteMultipartUpload')).toHaveLength(0);
    expect(await within(budget.acquire(12 * MIB), 100)).toEqual({ value: 12 * MIB });
  });
});

describe('uploadMultipart with recycled part buffers', () => {
  /** 5 MiB parts, each of its own byte value (part n holds n), so a part's bytes name it. */
  const partsOf = (count: number) => Array.from({ length: count }, (_, i) => Buffer.alloc(5 * MIB, i + 1));

  it('reuses a part buffer only once S3 has answered that part, and sends each part its own bytes', async () => {
    const parts = partsOf(6);
    const inFlight = new Map<ArrayBufferLike, number>();
    const answered = new Set<ArrayBufferLike>();
    const reusedBeforeAnswer: number[] = [];
    let reused = 0;
    const wrongBytes: number[] = [];
    const s3 = fakeS3({
      CreateMultipartUpload: created,
      UploadPart: async (input) => {
        const number = Number(input.PartNumber);
        const body = input.Body as Buffer;
        if (inFlight.has(body.buffer)) reusedBeforeAnswer.push(number);
        if (answered.has(body.buffer)) reused += 1;
        inFlight.set(body.buffer, number);
        // S3 reads the body while later parts are read from the download.
        for (let i = 0; i < 5; i++) await tick();
        if (!body.equals(parts[number - 1] ?? Buffer.alloc(0))) wrongBytes.push(number);
        inFlight.delete(body.buffer);
        answered.add(body.buffer);
        return echoPart(input);
      },
      CompleteMultipartUpload: async () => ({}),
    });
    const budget = new ByteBudget(10 * MIB);

    await multipartTo(s3, Readable.from(parts), 30 * MIB, { budget });

    expect(reusedBeforeAnswer).toEqual([]);
    expect(wrongBytes).toEqual([]);
    // Six parts through two buffers: four parts went out in a buffer S3 had answered for.
    expect(reused).toBe(4);
  });

  it('never reuses the buffer of a part S3 refused: its request may still be writing it', async () => {
    const budget = new ByteBudget(10 * MIB);
    const partBuffers = new PartBuffers(budget);
    const refusing = fakeS3({
      CreateMultipartUpload: created,
      UploadPart: async () => {
        throw new Error('part refused');
      },
      AbortMultipartUpload: aborted,
    });
    await expect(
      multipartTo(refusing, Readable.from(partsOf(2)), 10 * MIB, { budget, partBuffers }),
    ).rejects.toThrow('part refused');
    const refused = refusing.of('UploadPart').map((part) => (part.Body as Buffer).buffer);
    const next = fakeS3({
      CreateMultipartUpload: created,
      UploadPart: echoPart,
      CompleteMultipartUpload: async () => ({}),
    });

    await multipartTo(next, Readable.from(partsOf(4)), 20 * MIB, { budget, partBuffers });

    const sent = next.of('UploadPart').map((part) => (part.Body as Buffer).buffer);
    expect(refused.length).toBeGreaterThan(0);
    for (const buffer of refused) expect(sent).not.toContain(buffer);
    expect(budget.used).toBe(0);
  });

  it('never reuses the buffer of a read the abort abandoned: the read writes on when the download moves', async () => {
    const budget = new ByteBudget(10 * MIB);
    const partBuffers = new PartBuffers(budget);
    const run = new AbortController();
    // A download stalled mid-part when the run stops.
    const stalled = new Readable({ read() {} });
    stalled.push(Buffer.alloc(MIB, 9));
    const abandoning = fakeS3({ CreateMultipartUpload: created, AbortMultipartUpload: aborted });
    const abandoned = multipartTo(abandoning, stalled, 10 * MIB, { budget, partBuffers, signal: run.signal });
    while (abandoning.of('CreateMultipartUpload').length === 0) await tick();
    for (let i = 0; i < 5; i++) await tick();
    run.abort(new Error('deadline'));
    await expect(abandoned).rejects.toThrow('deadline');
    const parts = partsOf(4);
    const wrongBytes: number[] = [];
    const next = fakeS3({
      CreateMultipartUpload: created,
      UploadPart: async (input) => {
        const number = Number(input.PartNumber);
        // The abandoned read completes while this part is in flight.
        if (number === 1) stalled.push(Buffer.alloc(9 * MIB, 9));
        for (let i = 0; i < 5; i++) await tick();
        if (!(input.Body as Buffer).equals(parts[number - 1] ?? Buffer.alloc(0))) wrongBytes.push(number);
        return echoPart(input);
      },
      CompleteMultipartUpload: async () => ({}),
    });

    await multipartTo(next, Readable.from(parts), 20 * MIB, { budget, partBuffers });

    expect(wrongBytes).toEqual([]);
    expect(budget.used).toBe(0);
  });
});
