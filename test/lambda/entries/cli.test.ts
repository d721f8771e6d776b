import { describe, expect, it } from 'vitest';
import { parseEvent } from '../../../lambda/app/event.ts';
import { housekeepArgs, payloadFromArgs } from '../../../lambda/entries/cli.ts';

const LINE_A = '0b7c6f2e-3d1a-4c5b-9e8f-7a6b5c4d3e2f';
const LINE_B = 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';

describe('payloadFromArgs', () => {
  it('maps no flags to an empty payload (a full pass)', () => {
    const payload = payloadFromArgs([]);

    expect(payload).toEqual({});
  });

  it.each([
    [['--dry-run'], { dryRun: true }],
    [['--archive-only'], { archiveOnly: true }],
    [['--max-lines', '5'], { maxLines: 5 }],
    [['--max-lines=2'], { maxLines: 2 }],
    [['--ids', LINE_A], { ids: [LINE_A] }],
    [[`--ids=${LINE_A},${LINE_B}`], { ids: [LINE_A, LINE_B] }],
  ])('maps %j to %j', (args, expected) => {
    const payload = payloadFromArgs(args);

    expect(payload).toEqual(expected);
  });

  it('trims the ids and drops empty ones', () => {
    const payload = payloadFromArgs(['--ids', ` ${LINE_A} ,, ${LINE_B},`]);

    expect(payload.ids).toEqual([LINE_A, LINE_B]);
  });

  it('maps every flag together to the payload the event parser reads', () => {
    const args = [
      '--dry-run',
      '--archive-only',
      '--max-lines',
      '3',
      '--ids',
      `${LINE_A},${LINE_B}`,
      '--max-duration',
      '10m',
      '--on-conflict',
      'keep-both',
    ];

    const payload = payloadFromArgs(args);

    const expected = {
      dryRun: true,
      archiveOnly: true,
      maxLines: 3,
      ids: [LINE_A, LINE_B],
      maxDurationSeconds: 600,
      onConflict: 'keep-both',
    };
    expect(payload).toEqual(expected);
    expect(parseEvent(payload)).toEqual(expected);
  });

  it('maps the dismantle guard flags to the payload the event parser reads, and refuses bad values naming the flag', () => {
    const payload = payloadFromArgs(['--max-dismantles', '0', '--max-dismantle-share', '0.5']);

    expect(payload).toEqual({ maxDismantles: 0, maxDismantleShare: 0.5 });
    expect(parseEvent(payload)).toMatchObject({ maxDismantles: 0, maxDismantleShare: 0.5 });
    expect(() => payloadFromArgs(['--max-dismantles', 'all'])).toThrow(
      /^--max-dismantles: expected a whole number/,
    );
    expect(() => payloadFromArgs(['--max-dismantle-share', '2'])).toThrow(
      /^--max-dismantle-share: expected a share above 0 and at most 1/,
    );
    expect(() => payloadFromArgs(['--max-dismantle-share', '0'])).toThrow(/^--max-dismantle-share: /);
  });

  it.each([['01'], ['001'], ['1.']])(
    'refuses --max-dismantle-share %s as MAX_DISMANTLE_SHARE does (01 read as 1 would turn the check off)',
    (text) => {
      expect(() => payloadFromArgs(['--max-dismantle-share', text])).toThrow(
        /^--max-dismantle-share: expected a share above 0 and at most 1/,
      );
    },
  );

  it('maps --min-age to the payload minAge, in seconds', () => {
    expect(payloadFromArgs(['--min-age', '24h'])).toEqual({ minAge: 86_400 });
    expect(() => payloadFromArgs(['--min-age', 'later'])).toThrow(/^--min-age: expected a duration/);
  });

  it.each([
    ['30s', 30],
    ['90', 90],
    ['10m', 600],
    ['1h', 3600],
    ['2d', 172_800],
  ])('reads the duration %s as %i seconds', (text, seconds) => {
    expect(payloadFromArgs(['--max-duration', text]).maxDurationSeconds).toBe(seconds);
  });

  it.each([['0'], ['abc'], ['10 minutes'], ['1.5h'], ['']])(
    'refuses the duration %j, naming the flag',
    (text) => {
      expect(() => payloadFromArgs(['--max-duration', text])).toThrow(/--max-duration: expected a duration/);
    },
  );

  it.each([['--dryrun'], ['--force'], ['-x'], ['--ids']])(
    'throws on the unknown or incomplete flag %s',
    (flag) => {
      const attempt = () => payloadFromArgs([flag]);

      expect(attempt).toThrow();
    },
  );

  it('throws on a positional argument', () => {
    const attempt = () => payloadFromArgs(['--dry-run', LINE_A]);

    expect(attempt).toThrow();
  });

  it.each(['abc', '0', '-1', '1.5', ''])('refuses --max-lines %j, naming the flag', (value) => {
    const attempt = () => payloadFromArgs([`--max-lines=${value}`]);

    expect(attempt).toThrow(/^--max-lines: expected a positive integer/);
  });

  it.each([[' , '], ['not-a-uuid'], ['../x']])('refuses --ids %j, naming the flag', (value) => {
    expect(() => payloadFromArgs(['--ids', value])).toThrow(/^--ids: /);
  });

  it('refuses --on-conflict keep-both without --ids, and an unknown resolution', () => {
    expect(() => payloadFromArgs(['--on-conflict', 'keep-both'])).toThrow(/give --ids/);
    expect(() => payloadFromArgs(['--ids', LINE_A, '--on-conflict', 'overwrite'])).toThrow(
      /^--on-conflict: /,
    );
  });

  it('maps --max-bytes-per-second to MAX_BYTES_PER_SECOND for the run, not to the payload', () => {
    const args = housekeepArgs(['--dry-run', '--max-bytes-per-second', '8388608']);

    expect(args).toEqual({ payload: { dryRun: true }, settings: { MAX_BYTES_PER_SECOND: '8388608' } });
    expect(parseEvent(args.payload)).toMatchObject({ dryRun: true });
    expect(housekeepArgs([]).settings).toEqual({});
  });

  it.each(['8M', '1023', '10737418241', '1.5', '', '-1'])(
    'refuses --max-bytes-per-second %j, naming the flag and the range',
    (value) => {
      expect(() => housekeepArgs([`--max-bytes-per-second=${value}`])).toThrow(
        /^--max-bytes-per-second: expected a whole number of bytes between 1024 and 10737418240/,
      );
    },
  );
});
