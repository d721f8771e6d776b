import { describe, expect, it } from 'vitest';
import { chooseLogFormat, progressLine, StderrScreen } from '../../../lambda/entries/terminal.ts';

function fakeScreen(isTTY: boolean): { screen: StderrScreen; written: string[] } {
  const written: string[] = [];
  const stream = { isTTY, write: (text: string) => written.push(text) } as unknown as NodeJS.WriteStream;
  return { screen: new StderrScreen(stream), written };
}

/**
 * What a terminal shows for `written`: each row is what is left after the last "erase line"
 * (ESC[2K) and "column 1" (ESC[1G) on it, the way our screen draws.
 */
function rows(written: string[]): string[] {
  return written
    .join('')
    .split('\n')
    .map((row) => row.split('\u001b[2K').at(-1)?.replace('\u001b[1G', '') ?? '');
}

describe('progressLine', () => {
  it('shows lines done of total, megabytes and a rate on a terminal', () => {
    const { screen, written } = fakeScreen(true);
    const progress = progressLine('housekeep', screen);

    progress.update({ done: 3, total: 10, bytes: 5_000_000 }, true);
    progress.finish();

    expect(written[0]).toMatch(/^housekeep: 3\/10 · 5\.0 MB · [\d.]+ MB\/s$/);
    expect(written.at(-1)).toBe('\n');
  });

  it('writes nothing when stderr is not a terminal', () => {
    const { screen, written } = fakeScreen(false);
    const progress = progressLine('housekeep', screen);

    progress.update({ done: 1, total: 1, bytes: 1 }, true);
    progress.finish();

    expect(written).toEqual([]);
  });

  it('redraws at most every 200 ms unless forced', () => {
    const { screen, written } = fakeScreen(true);
    const progress = progressLine('audit', screen);

    progress.update({ done: 1, total: 3, bytes: 0 });
    progress.update({ done: 2, total: 3, bytes: 0 });

    expect(written).toHaveLength(1);
  });

  it('ends on the last figures, even when their redraw was skipped', () => {
    const { screen, written } = fakeScreen(true);
    const progress = progressLine('housekeep', screen);

    progress.update({ done: 1, total: 3, bytes: 0 });
    progress.update({ done: 3, total: 3, bytes: 0 });
    progress.finish();

    expect(rows(written).at(-2)).toMatch(/^housekeep: 3\/3 · /);
  });

  it('never shares a row with a log line: the log goes above, the progress is drawn again below', () => {
    const { screen, written } = fakeScreen(true);
    const progress = progressLine('housekeep', screen);

    progress.update({ done: 1, total: 4, bytes: 0 }, true);
    screen.print('13:24:08 WARN  retrying  attempt=2');
    progress.update({ done: 2, total: 4, bytes: 0 }, true);
    screen.print('13:24:09 INFO  line dismantled');
    progress.finish();

    expect(rows(written)).toEqual([
      '13:24:08 WARN  retrying  attempt=2',
      '13:24:09 INFO  line dismantled',
      expect.stringMatching(/^housekeep: 2\/4 · /),
      '',
    ]);
  });

  it('prints lines as they come when no progress shows', () => {
    const { screen, written } = fakeScreen(false);

    screen.print('one');
    screen.print('two');

    expect(written).toEqual(['one\n', 'two\n']);
  });
});

describe('chooseLogFormat', () => {
  it.each([
    // --json-logs, LOG_FORMAT, stderr is a terminal -> format
    [true, undefined, true, 'json'],
    [true, 'text', true, 'json'],
    [false, undefined, true, 'text'],
    [false, '', true, 'text'],
    [false, undefined, false, 'json'],
    [false, 'json', true, 'json'],
    [false, 'text', false, 'text'],
    [false, ' JSON ', true, 'json'],
  ] as const)('--json-logs %s, LOG_FORMAT %s, terminal %s: %s', (flag, variable, terminal, expected) => {
    expect(chooseLogFormat(flag, variable, terminal)).toBe(expected);
  });

  it('refuses any other LOG_FORMAT, naming it', () => {
    expect(() => chooseLogFormat(false, 'yaml', true)).toThrow(
      'LOG_FORMAT: expected json or text, got "yaml"',
    );
  });
});
