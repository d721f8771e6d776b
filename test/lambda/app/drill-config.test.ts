import { describe, expect, it } from 'vitest';
import { loadDrillConfig } from '../../../lambda/app/config.ts';
import { ConfigError } from '../../../lambda/shared/errors.ts';

describe('loadDrillConfig', () => {
  it('reads the archive and the drill settings, with their defaults, and needs nothing of the tokens service', () => {
    const config = loadDrillConfig({ ARCHIVE_BUCKET: 'tokens-archive' });

    expect(config).toMatchObject({
      archiveBucket: 'tokens-archive',
      archivePrefix: 'tokens/',
      deadlineReserveMs: 20_000,
      drill: { sampleSize: 20, maxLines: 200, recentLines: true },
    });
    expect(config).not.toHaveProperty('tokensApiUrl');
    expect(config).not.toHaveProperty('sessionKeySecretId');
  });

  it('takes the sample size, the cap and the recent lines from the environment', () => {
    const config = loadDrillConfig({
      ARCHIVE_BUCKET: 'tokens-archive',
      DRILL_SAMPLE_SIZE: '0',
      DRILL_MAX_LINES: '10000',
      DRILL_RECENT_LINES: 'false',
      DEADLINE_RESERVE_MS: '5000',
    });

    expect(config.drill).toEqual({ sampleSize: 0, maxLines: 10_000, recentLines: false });
    expect(config.deadlineReserveMs).toBe(5000);
  });

  it('names every drill variable at fault at once', () => {
    let error: unknown;
    try {
      loadDrillConfig({ DRILL_SAMPLE_SIZE: '-1', DRILL_MAX_LINES: '0', DRILL_RECENT_LINES: 'yes' });
    } catch (caught) {
      error = caught;
    }

    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variables).toEqual([
      'ARCHIVE_BUCKET',
      'DRILL_SAMPLE_SIZE',
      'DRILL_MAX_LINES',
      'DRILL_RECENT_LINES',
    ]);
    expect((error as ConfigError).message).toContain('DRILL_MAX_LINES: must be between 1 and 10000, got 0');
    expect((error as ConfigError).message).toContain(
      'DRILL_RECENT_LINES: must be one of true, false, got "yes"',
    );
  });
});
