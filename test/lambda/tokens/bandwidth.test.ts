import { afterEach, describe, expect, it, vi } from 'vitest';
import { BandwidthCap, type ByteGate } from '../../../lambda/tokens/bandwidth.ts';

/** The largest sum of `bytes` over any one-second window of `grants` (times in ms). */
function busiestSecond(grants: readonly { readonly at: number; readonly bytes: number }[]): number {
  const sorted = [...grants].sort((a, b) => a.at - b.at);
  let busiest = 0;
  let sum = 0;
  let first = 0;
  for (const grant of sorted) {
    sum += grant.bytes;
    // A window is [start, start + 1000): every grant within 1000 ms after the first one counted.
    while (grant.at - (sorted[first]?.at ?? grant.at) >= 1000) {
      sum -= sorted[first]?.bytes ?? 0;
      first += 1;
    }
    busiest = Math.max(busiest, sum);
  }
  return busiest;
}

/**
 * Takers that ask for `sizes` bytes in turn, as fast as they are granted, until `stop`; every
 * grant is recorded with the (fake) time it came.
 */
function takers(gate: ByteGate, count: number, sizes: readonly number[]) {
  const grants: { at: number; bytes: number }[] = [];
  let stopped = false;
  const loops = Array.from({ length: count }, async (_, taker) => {
    for (let turn = taker; !stopped; turn += 1) {
      const bytes = sizes[turn % sizes.length] ?? 1;
      await gate.take(bytes);
      grants.push({ at: performance.now(), bytes });
    }
  });
  return {
    grants,
    stop: async () => {
      stopped = true;
      // Each loop ends at its next grant; the bucket refills in well under a minute.
      await vi.advanceTimersByTimeAsync(60_000);
      await Promise.all(loops);
    },
  };
}

describe('BandwidthCap', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    vi.useRealTimers();
  });

  // limiter's bucket reads performance.now(): the fake clock drives it and the timers together.
  const fakeClock = () => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });

  it('lets no one-second window through more than the cap, to many waiters at once', async () => {
    fakeClock();
    const cap = new BandwidthCap(10_000);
    const started = performance.now();
    const load = takers(cap, 6, [cap.largestTake, 1, 137, cap.largestTake - 1, 64]);

    await vi.advanceTimersByTimeAsync(20_000);
    await load.stop();

    const granted = load.grants.filter((grant) => grant.at <= started + 20_000);
    expect(busiestSecond(granted)).toBeLessThanOrEqual(10_000);
    // Saturated, it sustains what the bucket fills at: 85% of the cap, the rest kept as headroom.
    const total = granted.reduce((sum, grant) => sum + grant.bytes, 0);
    expect(cap.sustainedBytesPerSecond).toBe(8500);
    expect(total).toBeGreaterThanOrEqual(20 * 8500 - cap.bucketBytes);
    expect(total).toBeLessThanOrEqual(20 * 8500 + cap.bucketBytes);
  });

  it('starts empty: the first bytes wait for the bucket to fill', async () => {
    fakeClock();
    const cap = new BandwidthCap(10_000);
    let granted = false;

    const take = cap.take(cap.largestTake).then(() => {
      granted = true;
    });
    // 250 bytes at 8500 bytes a second: 29.4 ms.
    await vi.advanceTimersByTimeAsync(29);
    const early = granted;
    await vi.advanceTimersByTimeAsync(2);
    await take;

    expect(early).toBe(false);
    expect(granted).toBe(true);
  });

  it('lets no catch-up burst through after a stalled timer', async () => {
    fakeClock();
    const cap = new BandwidthCap(10_000);
    const load = takers(cap, 4, [100]);
    await vi.advanceTimersByTimeAsync(2000);
    const beforeStall = load.grants.length;
    // A stall: five seconds pass and no timer fires (a blocked event loop, a frozen container).
    const fakeNow = performance.now.bind(performance);
    let stalledMs = 0;
    vi.spyOn(performance, 'now').mockImplementation(() => fakeNow() + stalledMs);
    stalledMs = 5000;

    // The first timer due after the stall: it finds the bucket full, no fuller.
    await vi.advanceTimersByTimeAsync(15);
    const atOnce = load.grants.slice(beforeStall).reduce((sum, grant) => sum + grant.bytes, 0);
    await vi.advanceTimersByTimeAsync(3000);
    await load.stop();

    expect(atOnce).toBeLessThanOrEqual(cap.bucketBytes + 15 * 8.5);
    expect(busiestSecond(load.grants)).toBeLessThanOrEqual(10_000);
  });

  it('drops an aborted waiter from the line at once, and spends nothing for it', async () => {
    fakeClock();
    const cap = new BandwidthCap(10_000);
    const stop = new AbortController();
    const first = cap.take(cap.largestTake, stop.signal);
    let secondAt: number | undefined;
    const started = performance.now();
    const second = cap.take(100).then(() => {
      secondAt = performance.now() - started;
    });
    await vi.advanceTimersByTimeAsync(10);

    stop.abort(new Error('the run is over'));

    await expect(first).rejects.toThrow('the run is over');
    await vi.advanceTimersByTimeAsync(100);
    await second;
    // 100 bytes at 8500 a second: 11.8 ms; the first waiter's 250 would have been 29.4 ms more.
    expect(secondAt).toBeLessThan(20);
  });

  it('refuses a signal already aborted, and a take larger than its largest', async () => {
    const cap = new BandwidthCap(10_000);

    await expect(cap.take(1, AbortSignal.abort(new Error('too late')))).rejects.toThrow('too late');
    await expect(cap.take(cap.largestTake + 1)).rejects.toThrow(RangeError);
    expect(() => new BandwidthCap(39)).toThrow(RangeError);
  });
});
