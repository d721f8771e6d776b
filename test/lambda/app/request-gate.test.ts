import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { requestGate } from '../../../lambda/app/deps.ts';
import { tick, within } from '../../support/fake-s3.ts';
import { unhandledDuring } from '../../support/unhandled.ts';

describe('requestGate', () => {
  it('stops the waiting requests at once on abort, with no listener left and nothing unhandled', async () => {
    const gate = requestGate(1);
    if (gate === undefined) throw new Error('no gate');
    const run = new AbortController();
    const unhandled = await unhandledDuring(async () => {
      await gate(run.signal);
      const waiting = Array.from({ length: 5 }, () => gate(run.signal));
      await tick();
      run.abort(new Error('deadline'));
      for (const wait of waiting)
        expect(await within(wait, 200)).toMatchObject({ error: { message: 'deadline' } });
      expect(getEventListeners(run.signal, 'abort')).toHaveLength(0);
      await expect(gate(run.signal)).rejects.toThrow('deadline');
    });
    expect(unhandled).toEqual([]);
  });

  it('gives the slot of a request stopped while waiting to the next one: a request after the deadline does not wait for the abandoned', async () => {
    // Ten a second, all ten taken: the next slot is a second on; forty abandoned would be five.
    const gate = requestGate(10);
    if (gate === undefined) throw new Error('no gate');
    const filled = performance.now();
    for (let i = 0; i < 10; i += 1) await gate();
    const run = new AbortController();
    const abandoned = Array.from({ length: 40 }, () => gate(run.signal).catch(() => undefined));
    await tick();
    run.abort(new Error('deadline'));
    await Promise.all(abandoned);
    // The confirming GET after a DELETE, in its own window: the next free slot is its own.
    await gate(AbortSignal.timeout(5_000));
    expect(performance.now() - filled).toBeLessThan(3_000);
  });

  it('starts an urgent request (a DELETE, the read it rests on) before every request waiting that is not, and the others in their order', async () => {
    const gate = requestGate(20);
    if (gate === undefined) throw new Error('no gate');
    const order: string[] = [];
    // The slot of this moment is taken: the rest wait, and leave in the order the gate gives them.
    await gate();
    const downloads = [1, 2, 3, 4].map((i) => gate().then(() => void order.push(`download ${i}`)));
    const urgent = [1, 2].map((i) => gate(undefined, true).then(() => void order.push(`urgent ${i}`)));

    await Promise.all([...downloads, ...urgent]);

    expect(order).toEqual(['urgent 1', 'urgent 2', 'download 1', 'download 2', 'download 3', 'download 4']);
  });

  it('lets an urgent request stopped while it waits leave its place: the other urgent ones still go first, in their order', async () => {
    const gate = requestGate(20);
    if (gate === undefined) throw new Error('no gate');
    const order: string[] = [];
    await gate();
    const window = new AbortController();
    const downloads = [1, 2].map((i) => gate().then(() => void order.push(`download ${i}`)));
    const urgent = [1, 2, 3].map((i) =>
      gate(i === 2 ? window.signal : undefined, true).then(
        () => void order.push(`urgent ${i}`),
        (error: unknown) => void order.push(`urgent ${i} stopped: ${(error as Error).message}`),
      ),
    );
    // The confirming GET's own window ends while it waits behind the others.
    window.abort(new Error('window over'));

    await Promise.all([...downloads, ...urgent]);

    expect(order).toEqual([
      'urgent 2 stopped: window over',
      'urgent 1',
      'urgent 3',
      'download 1',
      'download 2',
    ]);
  });

  it('starts no more than the cap in any one-second window, a stopped request giving back its slot', async () => {
    const gate = requestGate(4);
    if (gate === undefined) throw new Error('no gate');
    const starts: number[] = [];
    const stopped = new AbortController();
    const requests = Array.from({ length: 12 }, (_, i) =>
      gate(i >= 4 && i % 2 === 0 ? stopped.signal : undefined).then(
        () => void starts.push(performance.now()),
        () => undefined,
      ),
    );
    await tick();
    stopped.abort(new Error('stopped'));
    await Promise.all(requests);
    expect(starts).toHaveLength(8);
    for (const [i, at] of starts.entries()) {
      // The fifth start after any start is a second after it. A start is timed here as its promise
      // settles, which can trail the gate's own start by a few ms on a busy machine (995.8 was seen):
      // 20 ms of slack, where a burst would start the fifth 250 ms or more early.
      const fifth = starts[i + 4];
      if (fifth !== undefined) expect(fifth - at).toBeGreaterThanOrEqual(980);
    }
  }, 10_000);
});
