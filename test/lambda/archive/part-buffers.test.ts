import { describe, expect, it } from 'vitest';
import { ByteBudget } from '../../../lambda/archive/budget.ts';
import { PartBuffers } from '../../../lambda/archive/part-buffers.ts';
import { within } from '../../support/fake-s3.ts';

describe('PartBuffers', () => {
  it('gives a recycled buffer to the next part instead of allocating another', async () => {
    const buffers = new PartBuffers(new ByteBudget(10));
    const first = await buffers.take(5);

    first.recycle();
    const next = await buffers.take(5);

    expect(next.bytes).toBe(first.bytes);
    expect({ used: buffers.budget.used, free: buffers.freeBytes }).toEqual({ used: 5, free: 0 });
  });

  it('never gives a discarded buffer again, but gives its bytes back to the budget', async () => {
    const buffers = new PartBuffers(new ByteBudget(5));
    const failed = await buffers.take(5);

    failed.discard();
    const next = await buffers.take(5);

    expect(next.bytes).not.toBe(failed.bytes);
    expect({ used: buffers.budget.used, free: buffers.freeBytes }).toEqual({ used: 5, free: 0 });
  });

  it('makes a part wait while the budget is held, and hands it the buffer given back', async () => {
    const buffers = new PartBuffers(new ByteBudget(5));
    const held = await buffers.take(5);
    const waiting = buffers.take(5);

    expect(await within(waiting, 20)).toBe('timed out');
    held.recycle();

    expect((await within(waiting, 1000)) as { value: { bytes: Buffer } }).toMatchObject({
      value: { bytes: held.bytes },
    });
  });

  it('keeps the buffers it allocated, held and free, within the budget when part sizes change', async () => {
    const buffers = new PartBuffers(new ByteBudget(12));
    const small = [await buffers.take(4), await buffers.take(4), await buffers.take(4)];
    for (const buffer of small) buffer.recycle();

    const large = await buffers.take(6);

    // Two 4-byte buffers made room for the 6-byte one; one stays for the next 4-byte part.
    expect(large.bytes.length).toBe(6);
    expect(buffers.budget.used + buffers.freeBytes).toBeLessThanOrEqual(12);
    expect(buffers.freeBytes).toBe(4);
  });

  it('keeps no buffer larger than the whole budget', async () => {
    const buffers = new PartBuffers(new ByteBudget(5));
    const oversized = await buffers.take(8);

    oversized.recycle();

    expect(oversized.bytes.length).toBe(8);
    expect({ used: buffers.budget.used, free: buffers.freeBytes }).toEqual({ used: 0, free: 0 });
  });

  it('gives a buffer back once, however often it is given back', async () => {
    const buffers = new PartBuffers(new ByteBudget(10));
    const buffer = await buffers.take(5);

    buffer.recycle();
    buffer.recycle();
    buffer.discard();

    expect({ used: buffers.budget.used, free: buffers.freeBytes }).toEqual({ used: 0, free: 5 });
  });
});
