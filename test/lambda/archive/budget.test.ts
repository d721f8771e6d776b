import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ByteBudget } from '../../../lambda/archive/budget.ts';
import { within } from '../../support/fake-s3.ts';

describe('ByteBudget', () => {
  it('grants at once what fits, and makes a request that does not fit wait for a release', async () => {
    const budget = new ByteBudget(10);
    await budget.acquire(6);
    let granted = false;
    const waiting = budget.acquire(6).then(() => {
      granted = true;
    });

    await Promise.resolve();
    expect(granted).toBe(false);
    expect(budget.used).toBe(6);
    budget.release(6);
    await waiting;

    expect(granted).toBe(true);
    expect(budget.used).toBe(6);
  });

  it('serves waiting requests in order, so a large one is not passed over by small ones forever', async () => {
    const budget = new ByteBudget(10);
    await budget.acquire(8);
    const order: string[] = [];
    const large = budget.acquire(10).then(() => order.push('large'));
    const small = budget.acquire(1).then(() => order.push('small'));

    budget.release(8);
    await large;
    expect(order).toEqual(['large']);
    budget.release(10);
    await small;

    expect(order).toEqual(['large', 'small']);
  });

  it('gives a request larger than the whole budget all of it once it is free, instead of waiting forever', async () => {
    const budget = new ByteBudget(10);
    await budget.acquire(3);
    const huge = budget.acquire(50);

    budget.release(3);

    await expect(huge).resolves.toBe(10);
    expect(budget.used).toBe(10);
  });

  it('drops a waiting request whose signal aborts, and lets the next one through', async () => {
    const budget = new ByteBudget(10);
    await budget.acquire(10);
    const stop = new AbortController();
    const cancelled = budget.acquire(5, stop.signal);
    const next = budget.acquire(5);

    stop.abort(new Error('deadline'));
    await expect(cancelled).rejects.toThrow('deadline');
    budget.release(10);
    await next;

    expect(budget.used).toBe(5);
  });

  it('never holds more than its capacity, whatever the order of requests and releases', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 64 }),
        fc.array(fc.integer({ min: 1, max: 80 }), { minLength: 1, maxLength: 30 }),
        async (capacity, sizes) => {
          const budget = new ByteBudget(capacity);
          await Promise.all(
            sizes.map(async (size) => {
              const held = await budget.acquire(size);
              expect(budget.used).toBeLessThanOrEqual(capacity);
              await new Promise((resolve) => setImmediate(resolve));
              budget.release(held);
            }),
          );
          expect(budget.peak).toBeLessThanOrEqual(capacity);
          expect(budget.used).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });

  // Guards the order in release(): the check comes before `used` changes, so a refused
  // over-release cannot leave `used` negative and the budget lending more than its capacity.
  it('keeps its count when a release of more than is held is refused', async () => {
    const budget = new ByteBudget(10);
    const held = await budget.acquire(4);

    expect(() => budget.release(held + 1)).toThrow(RangeError);

    expect(budget.used).toBe(4);
  });

  it('refuses a double release (an abandoned part released twice) without lending bytes it does not have', async () => {
    const budget = new ByteBudget(10);
    const held = await budget.acquire(10);
    budget.release(held);
    expect(() => budget.release(held)).toThrow(RangeError);
    expect(budget.used).toBe(0);
    expect(await within(budget.acquire(10), 100)).toEqual({ value: 10 });
    expect(await within(budget.acquire(1), 50)).toBe('timed out');
  });
});
