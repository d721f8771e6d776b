import { describe, expect, it } from 'vitest';
import { parseAuditFlags } from '../../../lambda/entries/audit-cli.ts';

const LINE = '0b7c6f2e-3d1a-4c5b-9e8f-7a6b5c4d3e2f';
const SEED = 'ab'.repeat(32);

describe('parseAuditFlags', () => {
  it.each([
    [[], { kind: 'audit', ids: undefined }],
    [['--ids', LINE], { kind: 'audit', ids: [LINE] }],
  ])('maps %j to an audit', (args, expected) => {
    expect(parseAuditFlags(args)).toEqual(expected);
  });

  it.each([
    [['--sample', '5'], { sampleSize: 5, maxLines: 5, recentLines: false }, false],
    [['--since-last-drill'], { sampleSize: 0, maxLines: 200, recentLines: true }, false],
    [['--sample', '5', '--since-last-drill'], { sampleSize: 5, maxLines: 200, recentLines: true }, false],
    [['--sample', '300', '--since-last-drill'], { sampleSize: 300, maxLines: 300, recentLines: true }, false],
    [
      ['--sample', '5', '--since-last-drill', '--max-lines', '20', '--write-report'],
      { sampleSize: 5, maxLines: 20, recentLines: true },
      true,
    ],
  ])('maps %j to a drill with %j', (args, settings, writeReport) => {
    expect(parseAuditFlags(args)).toEqual({ kind: 'drill', settings, seed: undefined, writeReport });
  });

  it('takes a seed to draw an earlier drill’s sample again', () => {
    const command = parseAuditFlags(['--sample', '2', '--seed', SEED]);

    expect(command).toMatchObject({ kind: 'drill', seed: Buffer.from(SEED, 'hex') });
  });

  it.each([
    [['--sample', '0'], /--sample: expected a positive integer, got "0"/],
    [['--sample', '2', '--ids', LINE], /--ids: audits the lines named; a drill .* chooses its own/],
    [['--write-report'], /--write-report: goes with --sample or --since-last-drill/],
    [['--seed', SEED], /--seed: goes with --sample or --since-last-drill/],
    [['--sample', '9', '--max-lines', '4'], /--sample: 9 lines do not fit in --max-lines 4/],
    [['--since-last-drill', '--max-lines', '10001'], /--max-lines: at most 10000, got 10001/],
    [['--sample', '2', '--seed', 'abc'], /--seed: expected 64 hex digits/],
  ])('refuses %j, naming the flag', (args, message) => {
    expect(() => parseAuditFlags(args)).toThrow(message);
  });
});
