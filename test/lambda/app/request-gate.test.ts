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
});
