import { describe, expect, it } from 'vitest';
import { progressLine } from '../../../lambda/entries/terminal.ts';

function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; written: string[] } {
  const written: string[] = [];
  const stream = { isTTY, write: (text: string) => written.push(text) } as unknown as NodeJS.WriteStream;
  return { stream, written };
}

describe('progressLine', () => {
  it('shows lines done of total, megabytes and a rate on a terminal', () => {
    const { stream, written } = fakeStream(true);
    const progress = progressLine('housekeep', stream);

    progress.update({ done: 3, total: 10, bytes: 5_000_000 }, true);
    progress.finish();

    expect(written[0]).toMatch(/^\rhousekeep: 3\/10 · 5\.0 MB · [\d.]+ MB\/s/);
    expect(written.at(-1)).toBe('\n');
  });

  it('writes nothing when stderr is not a terminal, so logs stay plain JSON', () => {
    const { stream, written } = fakeStream(false);
    const progress = progressLine('housekeep', stream);

    progress.update({ done: 1, total: 1, bytes: 1 }, true);
    progress.finish();

    expect(written).toEqual([]);
  });

  it('redraws at most every 200 ms unless forced', () => {
    const { stream, written } = fakeStream(true);
    const progress = progressLine('audit', stream);

    progress.update({ done: 1, total: 3, bytes: 0 });
    progress.update({ done: 2, total: 3, bytes: 0 });

    expect(written).toHaveLength(1);
  });
});
