import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { untilAborted } from '../../../lambda/shared/abort.ts';
import { unhandledDuring } from '../../support/unhandled.ts';

/** A promise that never settles until the test says so, and the means to fail it. */
function pendingWork() {
  let fail: (error: Error) => void = () => undefined;
  const work = new Promise<never>((_, reject) => {
    fail = reject;
  });
  return { work, fail };
}

describe('untilAborted', () => {
  it('leaves no abort listener behind, whether the work resolves, rejects or loses the race', async () => {
    const run = new AbortController();
    for (let i = 0; i < 50; i++) await untilAborted(Promise.resolve(i), run.signal);
    for (let i = 0; i < 50; i++)
      await untilAborted(Promise.reject(new Error('no')), run.signal).catch(() => 0);
    expect(getEventListeners(run.signal, 'abort')).toHaveLength(0);

    const racing = Array.from({ length: 20 }, () => untilAborted(new Promise<never>(() => {}), run.signal));
    expect(getEventListeners(run.signal, 'abort')).toHaveLength(20);
    run.abort(new Error('deadline'));
    const outcomes = await Promise.allSettled(racing);
    expect(outcomes.every((outcome) => outcome.status === 'rejected')).toBe(true);
    expect(getEventListeners(run.signal, 'abort')).toHaveLength(0);
  });

  it('leaves no unhandled rejection when the work fails after the abort won the race', async () => {
    const unhandled = await unhandledDuring(async () => {
      const run = new AbortController();
      const { work, fail } = pendingWork();
      const raced = untilAborted(work, run.signal);
      run.abort(new Error('deadline'));
      await expect(raced).rejects.toThrow('deadline');
      fail(new Error('late failure'));
    });
    expect(unhandled).toEqual([]);
  });

  // Guards the order in untilAborted: `work` gets its handler before `signal.throwIfAborted()`;
  // the other way round, a work that fails after an abort that came first is unhandled (on
  // Lambda's Node runtime: Runtime.UnhandledPromiseRejection, the process exits).
  it('leaves no unhandled rejection when the signal was already aborted and the work fails later', async () => {
    const unhandled = await unhandledDuring(async () => {
      const run = new AbortController();
      run.abort(new Error('deadline'));
      const { work, fail } = pendingWork();
      await expect(untilAborted(work, run.signal)).rejects.toThrow('deadline');
      fail(new Error('late failure'));
    });
    expect(unhandled).toEqual([]);
  });
});
