import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { IntegrityError } from '../../../lambda/shared/errors.ts';
import { base64ToHex, type Expectation, hexToBase64, Verifier } from '../../../lambda/shared/verify.ts';

const LINE_ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const EMPTY_SHA256 = createHash('sha256').digest('hex');

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function expectationFor(bytes: Buffer, overrides: Partial<Expectation> = {}): Expectation {
  return { lineId: LINE_ID, file: 'data', size: bytes.length, sha256: sha256(bytes), ...overrides };
}

/** A downstream stage that records what reaches it, like the S3 upload would. */
function recordingSink(): { sink: Writable; received: () => Buffer } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  return { sink, received: () => Buffer.concat(chunks) };
}

/** A byte stream of these chunks, as an HTTP body delivers them. */
function bodyOf(chunks: readonly Buffer[]): Readable {
  return Readable.from(chunks, { objectMode: false });
}

/** Deterministic content of `size` bytes. */
function content(size: number): Buffer {
  return Buffer.from(Array.from({ length: size }, (_, index) => (index * 31 + 7) % 256));
}

function split(bytes: Buffer, chunkSize: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += chunkSize) {
    chunks.push(bytes.subarray(offset, offset + chunkSize));
  }
  return chunks;
}

describe('Verifier', () => {
  it('passes the stated bytes through unchanged and reports their SHA-256', async () => {
    const bytes = content(10_000);
    const verifier = new Verifier(expectationFor(bytes));
    const { sink, received } = recordingSink();

    await pipeline(bodyOf(split(bytes, 1024)), verifier, sink);

    expect(received().equals(bytes)).toBe(true);
    expect(verifier.sha256).toBe(sha256(bytes));
    expect(verifier.bytes).toBe(10_000);
  });

  it('passes a single-chunk file through', async () => {
    const bytes = content(100);
    const verifier = new Verifier(expectationFor(bytes));
    const { sink, received } = recordingSink();

    await pipeline(bodyOf([bytes]), verifier, sink);

    expect(received().equals(bytes)).toBe(true);
    expect(verifier.sha256).toBe(sha256(bytes));
  });

  it('has no verified SHA-256 before the end', () => {
    const bytes = content(10);
    const verifier = new Verifier(expectationFor(bytes));

    verifier.write(bytes.subarray(0, 5));

    expect(verifier.sha256).toBeUndefined();
    expect(verifier.bytes).toBe(5);
    verifier.destroy();
  });

  it('accepts an empty file stated as 0 bytes with the hash of no bytes', async () => {
    const verifier = new Verifier({ lineId: LINE_ID, file: 'data', size: 0, sha256: EMPTY_SHA256 });
    const { sink, received } = recordingSink();

    await pipeline(bodyOf([]), verifier, sink);

    expect(received().length).toBe(0);
    expect(verifier.sha256).toBe(EMPTY_SHA256);
  });

  describe('a hash mismatch', () => {
    it('errors with an IntegrityError naming the line, file, expected and actual hash', async () => {
      const bytes = content(4096);
      const stated = sha256(Buffer.from('something else'));
      const verifier = new Verifier(expectationFor(bytes, { file: 'score', sha256: stated }));
      const { sink } = recordingSink();

      const error = await pipeline(bodyOf(split(bytes, 1000)), verifier, sink).catch(
        (caught: unknown) => caught,
      );

      expect(error).toBeInstanceOf(IntegrityError);
      expect(error).toMatchObject({
        lineId: LINE_ID,
        file: 'score',
        expected: { size: 4096, sha256: stated },
        actual: { size: 4096, sha256: sha256(bytes) },
      });
      expect((error as IntegrityError).message).toContain(LINE_ID);
      expect((error as IntegrityError).message).toContain('score');
      expect(verifier.sha256).toBeUndefined();
    });

    it('never lets the last chunk reach the consumer', async () => {
      const bytes = content(4096);
      const verifier = new Verifier(expectationFor(bytes, { sha256: 'a'.repeat(64) }));
      const { sink, received } = recordingSink();

      await pipeline(bodyOf(split(bytes, 1000)), verifier, sink).catch(() => undefined);

      expect(received().length).toBeLessThan(bytes.length);
      expect(received().equals(bytes.subarray(0, 4000))).toBe(true);
    });

    it('lets nothing of a single-chunk file reach the consumer', async () => {
      const bytes = content(500);
      const verifier = new Verifier(expectationFor(bytes, { sha256: 'b'.repeat(64) }));
      const { sink, received } = recordingSink();

      await pipeline(bodyOf([bytes]), verifier, sink).catch(() => undefined);

      expect(received().length).toBe(0);
    });

    it('never lets the whole file reach the consumer, even when an empty chunk arrives last', async () => {
      const bytes = content(300);
      const verifier = new Verifier(expectationFor(bytes, { sha256: 'c'.repeat(64) }));
      const { sink, received } = recordingSink();
      // An object-mode source (Readable.from, an async generator) hands over empty chunks as they are.
      const source = Readable.from([bytes, Buffer.alloc(0)]);

      const error = await pipeline(source, verifier, sink).catch((caught: unknown) => caught);

      expect(error).toBeInstanceOf(IntegrityError);
      expect(received().length).toBeLessThan(bytes.length);
    });
  });

  describe('a wrong size', () => {
    it('errors when the body is shorter than stated, and the consumer gets fewer bytes', async () => {
      const stated = content(5000);
      const truncated = stated.subarray(0, 4000);
      const verifier = new Verifier(expectationFor(stated));
      const { sink, received } = recordingSink();

      const error = await pipeline(bodyOf(split(truncated, 1000)), verifier, sink).catch(
        (caught: unknown) => caught,
      );

      expect(error).toBeInstanceOf(IntegrityError);
      expect(error).toMatchObject({ expected: { size: 5000 }, actual: { size: 4000 } });
      expect(received().length).toBeLessThan(4000);
    });

    it('errors on an empty body for a non-empty file', async () => {
      const stated = content(10);
      const verifier = new Verifier(expectationFor(stated));
      const { sink } = recordingSink();

      const error = await pipeline(bodyOf([]), verifier, sink).catch((caught: unknown) => caught);

      expect(error).toBeInstanceOf(IntegrityError);
      expect(error).toMatchObject({ actual: { size: 0 } });
    });

    it('errors when a body stated as empty sends a byte', async () => {
      const verifier = new Verifier({ lineId: LINE_ID, file: 'data', size: 0, sha256: EMPTY_SHA256 });
      const { sink, received } = recordingSink();

      const error = await pipeline(bodyOf([Buffer.from('x')]), verifier, sink).catch(
        (caught: unknown) => caught,
      );

      expect(error).toBeInstanceOf(IntegrityError);
      expect(received().length).toBe(0);
    });

    it('errors as soon as the stated size plus one byte has arrived', async () => {
      const stated = content(100);
      const verifier = new Verifier(expectationFor(stated));
      const { sink, received } = recordingSink();
      const longer = Buffer.concat([stated, Buffer.from('0123456789')]);

      const error = await pipeline(bodyOf(split(longer, 1)), verifier, sink).catch(
        (caught: unknown) => caught,
      );

      expect(error).toBeInstanceOf(IntegrityError);
      expect(verifier.bytes).toBe(101);
      expect(error).toMatchObject({ expected: { size: 100 }, actual: { size: 101 } });
      expect(received().length).toBeLessThan(100);
    });

    it('stops reading a body that never ends', { timeout: 5000 }, async () => {
      const chunkSize = 1024;
      const size = 10_000;
      let produced = 0;
      const endless = new Readable({
        read() {
          produced += chunkSize;
          this.push(Buffer.alloc(chunkSize, 0x61));
        },
      });
      const verifier = new Verifier({ lineId: LINE_ID, file: 'data', size, sha256: 'd'.repeat(64) });
      const { sink, received } = recordingSink();

      const error = await pipeline(endless, verifier, sink).catch((caught: unknown) => caught);

      expect(error).toBeInstanceOf(IntegrityError);
      // The chunk that carries byte size+1 is the last one the verifier looks at.
      expect(verifier.bytes).toBe(Math.ceil((size + 1) / chunkSize) * chunkSize);
      expect(endless.destroyed).toBe(true);
      expect(produced).toBeLessThan(size + 256 * 1024);
      expect(received().length).toBeLessThan(size);
    });
  });
});

describe('hexToBase64', () => {
  it('turns a hex SHA-256 into the base64 form S3 uses, and back', () => {
    const hex = sha256(Buffer.from('hello'));

    const base64 = hexToBase64(hex);

    expect(base64).toBe(createHash('sha256').update('hello').digest('base64'));
    expect(base64ToHex(base64)).toBe(hex);
  });
});
