import { Logger, type LogItem } from '@aws-lambda-powertools/logger';
import type { ConstructorOptions, LogAttributes } from '@aws-lambda-powertools/logger/types';
import { describe, expect, it } from 'vitest';
import { lineLogger } from '../../../lambda/core/line-logger.ts';
import { runHousekeeping } from '../../../lambda/core/pass.ts';
import { FULL_PASS } from '../../../lambda/core/request.ts';
import { HttpStatusError } from '../../../lambda/shared/errors.ts';
import { fakeDeps, testConfig } from '../../support/fakes.ts';

const LINE = 'cb06671a-7270-462f-a50d-cc892f676647';
const RUN_ID = '0b7e4c1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b';

/** A Logger that keeps what it prints, and counts the Loggers built from it (children included). */
function recordingLogger() {
  const entries: LogAttributes[] = [];
  let built = 0;
  class RecordingLogger extends Logger {
    constructor(options?: ConstructorOptions) {
      super(options);
      built += 1;
    }

    protected override createLogger(options?: ConstructorOptions): Logger {
      return new RecordingLogger(options);
    }

    protected override printLog(_level: number, log: LogItem): void {
      log.prepareForPrint();
      // The time differs between two loggers printing the same entry; everything else must not.
      const { timestamp: _timestamp, ...attributes } = log.getAttributes();
      entries.push(attributes);
    }
  }
  // The suite silences Powertools by its environment; a level given here wins over it.
  const logger = new RecordingLogger({ serviceName: 'test', logLevel: 'DEBUG' });
  return { logger, entries, built: () => built };
}

/** The same entries, sent to a logger of one line. */
function logSome(logger: Logger): void {
  logger.info('line dismantled', { bytes: 262144, uploaded: 1 });
  logger.warn(
    { message: 'retrying', attempt: 2 },
    new HttpStatusError('answered 503', {
      method: 'GET',
      url: 'http://127.0.0.1:1/api/tokens',
      status: 503,
      retryable: true,
    }),
  );
  logger.debug('a key given at the call wins', { lineId: 'given' });
  logger.error('line failed');
}

describe('lineLogger', () => {
  it('prints every entry as a child logger with the line id prints it, key for key and in order', () => {
    const viaChild = recordingLogger();
    const viaLine = recordingLogger();
    const runOf = (logger: Logger) => logger.createChild({ persistentKeys: { runId: RUN_ID } });

    logSome(runOf(viaChild.logger).createChild({ persistentKeys: { lineId: LINE } }));
    logSome(lineLogger(runOf(viaLine.logger), LINE));

    expect(viaLine.entries).toHaveLength(4);
    expect(viaLine.entries.map((entry) => Object.entries(entry))).toEqual(
      viaChild.entries.map((entry) => Object.entries(entry)),
    );
    expect(viaLine.entries[0]).toMatchObject({ runId: RUN_ID, lineId: LINE, message: 'line dismantled' });
  });

  it("refuses what would change the run's logger for every line, and gives children that keep the line id", () => {
    const { logger, entries } = recordingLogger();
    const line = lineLogger(logger, LINE);

    expect(() => line.appendKeys({ file: 'data' })).toThrow(
      /appendKeys on the logger of line .* run's logger/,
    );
    expect(() => line.setLogLevel('ERROR')).toThrow(TypeError);
    line.createChild({ persistentKeys: { file: 'data' } }).info('uploaded');
    logger.info('the run logs on');

    expect(entries).toEqual([
      expect.objectContaining({ message: 'uploaded', lineId: LINE, file: 'data' }),
      expect.not.objectContaining({ lineId: expect.anything() }),
    ]);
  });
});

describe('runHousekeeping', () => {
  it("logs every entry of a line with the line's id, building no Logger per line", async () => {
    const { deps, tokens } = fakeDeps();
    const { logger, entries, built } = recordingLogger();
    const ids = Array.from({ length: 5 }, (_, i) => `a0000000-0000-4000-8000-00000000000${i}`);
    tokens.listPages({ lines: ids.map((id) => [id, 'finished'] as const) });
    for (const id of ids) tokens.line(id, {});
    const before = built();

    const summary = await runHousekeeping({ ...deps, logger }, testConfig(), FULL_PASS, { runId: RUN_ID });

    expect(summary.dismantled).toBe(ids.length);
    const dismantled = entries.filter((entry) => entry.message === 'line dismantled');
    expect(dismantled.map((entry) => entry.lineId).sort()).toEqual(ids);
    for (const entry of dismantled) expect(entry.runId).toBe(RUN_ID);
    // The run's own logger (its runId) is the only one built.
    expect(built() - before).toBe(1);
  });
});
