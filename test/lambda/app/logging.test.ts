import { Logger } from '@aws-lambda-powertools/logger';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type LogFormat, logToTerminal, serviceLogger, textLogLine } from '../../../lambda/app/logging.ts';
import { HttpStatusError } from '../../../lambda/shared/errors.ts';

const LINE = 'cb06671a-7270-462f-a50d-cc892f676647';

/** A terminal output that keeps what it was given. */
function captured(format: LogFormat, color = false): string[] {
  const lines: string[] = [];
  logToTerminal({ format, color, write: (line) => lines.push(line) });
  return lines;
}

// The suite silences Powertools (POWERTOOLS_LOG_LEVEL=SILENT); these tests read what it prints.
beforeEach(() => vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'INFO'));
afterEach(() => {
  logToTerminal(undefined);
  vi.unstubAllEnvs();
});

describe('serviceLogger at a terminal', () => {
  it('prints one short line per log: time, level, the line, what happened, the details', () => {
    const lines = captured('text');
    const logger = serviceLogger().createChild({ persistentKeys: { runId: 'run-1', lineId: LINE } });

    logger.info('line dismantled', { bytes: 262144, uploaded: 1, reused: 0 });

    expect(lines).toEqual([
      expect.stringMatching(
        new RegExp(`^\\d\\d:\\d\\d:\\d\\d INFO  line ${LINE}: line dismantled  bytes=262144  uploaded=1$`),
      ),
    ]);
    // Nothing of the JSON's bookkeeping: service, sampling rate, run id, timestamp.
    expect(lines[0]).not.toMatch(/tokens-housekeeper|sampling_rate|run-1|\d{4}-\d\d-\d\dT/);
  });

  it('names an error by its name and message, without its stack', () => {
    const lines = captured('text');
    const error = new HttpStatusError('answered 503', {
      method: 'GET',
      url: 'http://127.0.0.1:1/api/tokens',
      status: 503,
      retryable: true,
    });

    serviceLogger().warn('retrying', { attempt: 2, error });

    expect(lines[0]).toMatch(
      /WARN {2}retrying {2}attempt=2 {2}error="HttpStatusError: GET http:\/\/127\.0\.0\.1:1\/api\/tokens: answered 503"$/,
    );
    expect(lines[0]).not.toContain(' at ');
  });

  it('keeps the JSON as Powertools prints it when JSON is asked for, through the same output', () => {
    const lines = captured('json');
    const logger = serviceLogger().createChild({ persistentKeys: { runId: 'run-1', lineId: LINE } });

    logger.warn('retrying', { attempt: 2 });

    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({
      level: 'WARN',
      message: 'retrying',
      service: 'tokens-housekeeper',
      runId: 'run-1',
      lineId: LINE,
      attempt: 2,
    });
  });

  it('colours the level only when the output says colour may be used', () => {
    const plain = captured('text', false);
    serviceLogger().error('line failed');
    const coloured = captured('text', true);
    serviceLogger().error('line failed');

    expect(plain[0]).toMatch(/ ERROR line failed$/);
    expect(coloured[0]).toContain('\u001b[31mERROR\u001b[39m');
  });

  it('builds and prints with debug sampling on (the base constructor prints before the subclass is set up)', () => {
    vi.stubEnv('POWERTOOLS_LOGGER_SAMPLE_RATE', '1');
    for (const format of ['text', 'json'] as const) {
      const lines = captured(format);

      serviceLogger()
        .createChild({ persistentKeys: { lineId: LINE } })
        .debug('file archived');

      // The sampling notice and the DEBUG line both come through the terminal's output.
      expect(lines.some((line) => line.includes('sampling rate'))).toBe(true);
      expect(lines.some((line) => line.includes('file archived'))).toBe(true);
    }
  });

  it('leaves a Lambda (no terminal output chosen) with Powertools’ own logger', () => {
    const logger = serviceLogger();

    expect(Object.getPrototypeOf(logger)).toBe(Logger.prototype);
  });
});

describe('textLogLine', () => {
  it('flattens nested details, quotes strings with spaces, and leaves out what says nothing happened', () => {
    const line = textLogLine({
      time: '13:24:08',
      level: 'INFO',
      message: 'run summary',
      summary: { listed: 12, failed: [], dryRun: false, skipped: null, reason: 'two words', key: 'a/b' },
    });

    expect(line).toBe(
      '13:24:08 INFO  run summary  summary.listed=12  summary.reason="two words"  summary.key=a/b',
    );
  });

  it('shows a list that holds something as JSON', () => {
    const line = textLogLine({ time: 't', level: 'ERROR', message: 'm', failed: [{ id: LINE }] });

    expect(line).toBe(`t ERROR m  failed=[{"id":"${LINE}"}]`);
  });

  it('escapes control characters from anywhere (a file name the service sent), never passing them raw', () => {
    const line = textLogLine({
      time: 't',
      level: 'DEBUG',
      message: 'file \u001b[2J archived',
      lineId: 'x\u009by',
      file: 'a\u001b[2Jb',
      note: 'two\u0007 words',
    });

    expect(line).not.toMatch(/\p{Cc}/u);
    expect(line).toBe(
      't DEBUG line x\\u009by: file \\u001b[2J archived  file="a\\u001b[2Jb"  note="two\\u0007 words"',
    );
  });

  it('shows a circular detail without overflowing, and a Date or URL as its JSON form', () => {
    const detail: Record<string, unknown> = { a: 1 };
    detail.self = detail;

    const line = textLogLine({
      time: 't',
      level: 'INFO',
      message: 'm',
      detail,
      at: new Date(0),
      url: new URL('http://x/y'),
    });

    expect(line).toBe(
      't INFO  m  detail.a=1  detail.self=[circular]  at=1970-01-01T00:00:00.000Z  url=http://x/y',
    );
  });
});
