import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_OBJECT_SIZE, MAX_PART_SIZE, MAX_PARTS, partSizeFor } from '../../../lambda/archive/multipart.ts';
import { ArchiveError } from '../../../lambda/shared/errors.ts';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const TIB = 1024 * GIB;
/** The configured default, `MULTIPART_PART_SIZE_BYTES`. */
const DEFAULT_PART = 8 * MIB;
const KEY = 'tokens/0b9a6f1e-4c47-4a1b-9a7e-2f6a4c1d8e3b/data';

/** How many parts `uploadMultipart` sends for `size` bytes in parts of `part`, in exact arithmetic. */
function partsOf(size: number, part: number): bigint {
  return (BigInt(size) + BigInt(part) - 1n) / BigInt(part);
}

describe('partSizeFor', () => {
  it('keeps the configured part size for the files it fits', () => {
    for (const size of [0, 1, 5 * MIB, DEFAULT_PART, DEFAULT_PART + 1, 1 * GIB, 10 * GIB]) {
      expect(partSizeFor(size, DEFAULT_PART, KEY)).toBe(DEFAULT_PART);
    }
  });

  it('keeps the configured part size for a file of exactly 10,000 parts of it', () => {
    const size = MAX_PARTS * DEFAULT_PART;

    const part = partSizeFor(size, DEFAULT_PART, KEY);

    expect(part).toBe(DEFAULT_PART);
    expect(partsOf(size, part)).toBe(10_000n);
  });

  it('takes the next whole MiB for one byte more than 10,000 parts of the configured size', () => {
    const size = MAX_PARTS * DEFAULT_PART + 1;

    const part = partSizeFor(size, DEFAULT_PART, KEY);

    expect(part).toBe(DEFAULT_PART + MIB);
    expect(partsOf(size, part)).toBeLessThanOrEqual(10_000n);
  });

  it('fits a 1 TiB file in 10,000 parts of a whole number of MiB', () => {
    const part = partSizeFor(TIB, DEFAULT_PART, KEY);

    // 1 TiB / 10,000 = 104.86 MiB.
    expect(part).toBe(105 * MIB);
    expect(partsOf(TIB, part)).toBeLessThanOrEqual(10_000n);
  });

  it('fits the largest object S3 holds in 10,000 parts of 5 GiB', () => {
    const part = partSizeFor(MAX_OBJECT_SIZE, DEFAULT_PART, KEY);

    expect(MAX_OBJECT_SIZE).toBe(53_687_091_200_000);
    expect(part).toBe(5 * GIB);
    expect(part).toBeLessThanOrEqual(MAX_PART_SIZE);
    expect(partsOf(MAX_OBJECT_SIZE, part)).toBe(10_000n);
  });

  it('refuses one byte more than the largest object, naming the key and the sizes, not to be retried', () => {
    let thrown: unknown;
    try {
      partSizeFor(MAX_OBJECT_SIZE + 1, DEFAULT_PART, KEY);
    } catch (error) {
      thrown = error;
    }

    expect(thrown).toBeInstanceOf(ArchiveError);
    expect(thrown).toMatchObject({
      key: KEY,
      retryable: false,
      message: expect.stringContaining(
        "53687091200001 bytes is more than S3's largest object, 53687091200000 bytes",
      ),
    });
  });

  it('refuses a size that is not a byte count', () => {
    for (const size of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => partSizeFor(size, DEFAULT_PART, KEY)).toThrow(ArchiveError);
    }
  });

  it('respects a larger configured minimum', () => {
    const minimum = 64 * MIB;

    expect(partSizeFor(1 * GIB, minimum, KEY)).toBe(minimum);
    expect(partSizeFor(MAX_PARTS * minimum, minimum, KEY)).toBe(minimum);
    expect(partSizeFor(MAX_PARTS * minimum + 1, minimum, KEY)).toBe(minimum + MIB);
    expect(partSizeFor(MAX_OBJECT_SIZE, 5 * GIB, KEY)).toBe(5 * GIB);
  });

  it('keeps a configured minimum that is not a whole MiB while it fits', () => {
    const minimum = 5 * MIB + 1;

    expect(partSizeFor(1 * GIB, minimum, KEY)).toBe(minimum);
    expect(partSizeFor(MAX_PARTS * minimum + 1, minimum, KEY)).toBe(6 * MIB);
  });

  it('fits any size S3 takes in at most 10,000 parts of at least the minimum, whole MiB, at most 5 GiB', () => {
    const minimumArb = fc.integer({ min: 5, max: 5 * 1024 }).map((mib) => mib * MIB);
    const sizeArb = fc.oneof(
      fc.integer({ min: 0, max: MAX_OBJECT_SIZE }),
      // The edges: around multiples of 10,000 MiB, where the part size steps up, and the maximum.
      fc
        .tuple(fc.integer({ min: 0, max: 5 * 1024 }), fc.integer({ min: -2, max: 2 }))
        .map(([mib, delta]) => Math.min(MAX_OBJECT_SIZE, Math.max(0, MAX_PARTS * mib * MIB + delta))),
    );

    fc.assert(
      fc.property(sizeArb, minimumArb, (size, minimum) => {
        const part = partSizeFor(size, minimum, KEY);

        expect(partsOf(size, part)).toBeLessThanOrEqual(BigInt(MAX_PARTS));
        expect(part).toBeGreaterThanOrEqual(minimum);
        expect(part).toBeLessThanOrEqual(MAX_PART_SIZE);
        expect(part % MIB).toBe(0);
        // The smallest such size: one MiB less would not fit (unless it is the minimum itself).
        if (part > minimum) expect(partsOf(size, part - MIB)).toBeGreaterThan(BigInt(MAX_PARTS));
      }),
      { numRuns: 2000 },
    );
  });
});
