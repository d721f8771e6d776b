import { describe, expect, it } from 'vitest';
import { isLoopbackHost, loadConfig } from '../../../lambda/app/config.ts';
import { ConfigError } from '../../../lambda/shared/errors.ts';
import { thrownBy } from '../../support/thrown.ts';

/** The smallest environment that loads: the three required variables. */
const MINIMAL: Readonly<Record<string, string>> = {
  TOKENS_API_URL: 'https://tokens.example.com',
  SESSION_KEY_SECRET_ID: 'tokens/session-key',
  ARCHIVE_BUCKET: 'tokens-archive',
};

function env(overrides: Record<string, string | undefined>): Record<string, string | undefined> {
  return { ...MINIMAL, ...overrides };
}

/** Runs `loadConfig` and returns the ConfigError it threw, failing the test if it did not throw. */
const configErrorOf = (environment: Record<string, string | undefined>): ConfigError =>
  thrownBy(ConfigError, () => loadConfig(environment));

/** The ConfigError for `variable` set to `value` (over MINIMAL), once it is checked to name the variable. */
function refusalOf(variable: string, value: string): ConfigError {
  const error = configErrorOf(env({ [variable]: value }));
  expect(error.variable).toBe(variable);
  return error;
}

const NUMERIC_VARIABLES = [
  'MULTIPART_THRESHOLD_BYTES',
  'MULTIPART_PART_SIZE_BYTES',
  'LINE_CONCURRENCY',
  'FILE_CONCURRENCY',
  'HTTP_CONNECT_TIMEOUT_MS',
  'HTTP_HEADERS_TIMEOUT_MS',
  'HTTP_BODY_TIMEOUT_MS',
  'RETRY_ATTEMPTS',
  'RETRY_BASE_DELAY_MS',
  'RETRY_MAX_DELAY_MS',
  'SESSION_KEY_TTL_SECONDS',
  'TIME_RESERVE_MS',
  'LIST_MAX_PAGES',
  'LIST_MAX_EMPTY_PAGES',
  'DOWNLOAD_MIN_SPEED_BYTES',
  'DOWNLOAD_SPEED_WINDOW_SECONDS',
] as const;

describe('loadConfig', () => {
  describe('required variables', () => {
    it.each(['TOKENS_API_URL', 'SESSION_KEY_SECRET_ID', 'ARCHIVE_BUCKET'])(
      'refuses an environment without %s, naming it',
      (variable) => {
        const environment = env({ [variable]: undefined });

        const error = configErrorOf(environment);

        expect(error.variable).toBe(variable);
        expect(error.message).toContain(variable);
      },
    );

    it.each(['TOKENS_API_URL', 'SESSION_KEY_SECRET_ID', 'ARCHIVE_BUCKET'])(
      'treats a blank %s as missing',
      (variable) => {
        const environment = env({ [variable]: '   ' });

        const error = configErrorOf(environment);

        expect(error.variable).toBe(variable);
      },
    );

    it('names the variable of an empty environment', () => {
      const error = configErrorOf({});

      expect(['TOKENS_API_URL', 'SESSION_KEY_SECRET_ID', 'ARCHIVE_BUCKET']).toContain(error.variable);
      expect(error.message).toContain(error.variable);
    });
  });

  describe('defaults', () => {
    it('fills every optional setting with its documented default', () => {
      const config = loadConfig(MINIMAL);

      expect(config).toEqual({
        tokensApiUrl: new URL('https://tokens.example.com'),
        sessionKeySecretId: 'tokens/session-key',
        archiveBucket: 'tokens-archive',
        archivePrefix: 'tokens/',
        lineConcurrency: 16,
        fileConcurrency: 1,
        http: { connectTimeoutMs: 10_000, headersTimeoutMs: 30_000, bodyTimeoutMs: 30_000 },
        retry: { attempts: 5, baseDelayMs: 500, maxDelayMs: 20_000 },
        upload: {
          multipartThresholdBytes: 8 * 1024 * 1024,
          partSizeBytes: 8 * 1024 * 1024,
          readback: 'head',
          conditionalWrites: 'enforced',
          uploadBufferBytes: 96 * 1024 * 1024,
          partsInFlight: 4,
        },
        sessionKeyTtlMs: 300_000,
        timeReserveMs: 90_000,
        deadlineReserveMs: 20_000,
        s3EndpointOverride: undefined,
        secretsEndpointOverride: undefined,
        listing: { maxPages: 10_000, maxEmptyPages: 20 },
        download: { minSpeedBytesPerSecond: 1024, speedWindowMs: 30_000 },
        dismantleGuard: { maxPerRun: undefined, maxShare: undefined, shareMinLines: 20 },
      });
    });

    it('returns a frozen object', () => {
      const config = loadConfig(MINIMAL);

      expect(Object.isFrozen(config)).toBe(true);
    });

    it('trims the required values', () => {
      const config = loadConfig(
        env({ SESSION_KEY_SECRET_ID: '  tokens/key \n', ARCHIVE_BUCKET: ' bucket-1 ' }),
      );

      expect(config.sessionKeySecretId).toBe('tokens/key');
      expect(config.archiveBucket).toBe('bucket-1');
    });
  });

  describe('numbers', () => {
    it('reads whole numbers from their variables', () => {
      const environment = env({
        LINE_CONCURRENCY: '8',
        FILE_CONCURRENCY: '2',
        HTTP_CONNECT_TIMEOUT_MS: '1000',
        HTTP_HEADERS_TIMEOUT_MS: '2000',
        HTTP_BODY_TIMEOUT_MS: '3000',
        RETRY_ATTEMPTS: '3',
        RETRY_BASE_DELAY_MS: '0',
        RETRY_MAX_DELAY_MS: '4000',
        MULTIPART_THRESHOLD_BYTES: String(16 * 1024 * 1024),
        MULTIPART_PART_SIZE_BYTES: String(5 * 1024 * 1024),
        SESSION_KEY_TTL_SECONDS: '60',
        TIME_RESERVE_MS: '5000',
      });

      const config = loadConfig(environment);

      expect(config.lineConcurrency).toBe(8);
      expect(config.fileConcurrency).toBe(2);
      expect(config.http).toEqual({ connectTimeoutMs: 1000, headersTimeoutMs: 2000, bodyTimeoutMs: 3000 });
      expect(config.retry).toEqual({ attempts: 3, baseDelayMs: 0, maxDelayMs: 4000 });
      expect(config.upload.multipartThresholdBytes).toBe(16 * 1024 * 1024);
      expect(config.upload.partSizeBytes).toBe(5 * 1024 * 1024);
      expect(config.sessionKeyTtlMs).toBe(60_000);
      expect(config.timeReserveMs).toBe(5000);
    });

    it.each(
      NUMERIC_VARIABLES.flatMap((variable) =>
        ['abc', '-1', '1.5', '10ms', '1e3', '0x10'].map((value) => [variable, value] as const),
      ),
    )('refuses %s=%s, naming the variable', (variable, value) => {
      const { message } = refusalOf(variable, value);

      expect(message).toContain(variable);
      expect(message).toContain(value);
    });

    it.each([
      ['LINE_CONCURRENCY', '0'],
      ['LINE_CONCURRENCY', '65'],
      ['FILE_CONCURRENCY', '17'],
      ['RETRY_ATTEMPTS', '0'],
      ['HTTP_CONNECT_TIMEOUT_MS', '0'],
      ['MULTIPART_PART_SIZE_BYTES', String(5 * 1024 * 1024 - 1)],
      ['MULTIPART_THRESHOLD_BYTES', String(5 * 1024 * 1024 * 1024 + 1)],
      ['SESSION_KEY_TTL_SECONDS', '86401'],
      ['LINE_CONCURRENCY', '99999999999999999999999'],
      ['LIST_MAX_PAGES', '0'],
      ['LIST_MAX_EMPTY_PAGES', '0'],
      ['DOWNLOAD_SPEED_WINDOW_SECONDS', '0'],
      ['DOWNLOAD_SPEED_WINDOW_SECONDS', '3601'],
    ])('refuses %s=%s as out of range, naming the variable', (variable, value) => {
      expect(refusalOf(variable, value).message).toMatch(/between/);
    });
  });

  describe('every problem at once', () => {
    it('names every missing and malformed variable in one error', () => {
      const error = configErrorOf({ LINE_CONCURRENCY: 'many', VERIFY_READBACK: 'sometimes' });

      expect(error.variables).toEqual([
        'TOKENS_API_URL',
        'SESSION_KEY_SECRET_ID',
        'ARCHIVE_BUCKET',
        'VERIFY_READBACK',
        'LINE_CONCURRENCY',
      ]);
      expect(error.variable).toBe('TOKENS_API_URL');
      for (const name of error.variables) expect(error.message).toContain(`${name}: `);
    });

    it('keeps a single problem as it was: one variable, one message', () => {
      const error = configErrorOf(env({ LINE_CONCURRENCY: '0' }));

      expect(error.variables).toEqual(['LINE_CONCURRENCY']);
      expect(error.message).toBe('LINE_CONCURRENCY: must be between 1 and 64, got 0');
    });
  });

  describe('upload buffer budget', () => {
    it('reads UPLOAD_BUFFER_BYTES and UPLOAD_PARTS_IN_FLIGHT', () => {
      const config = loadConfig(
        env({ UPLOAD_BUFFER_BYTES: String(64 * 2 ** 20), UPLOAD_PARTS_IN_FLIGHT: '2' }),
      );

      expect(config.upload).toMatchObject({ uploadBufferBytes: 64 * 2 ** 20, partsInFlight: 2 });
    });

    it('refuses a budget that cannot hold one part, naming both variables', () => {
      const error = configErrorOf(
        env({ UPLOAD_BUFFER_BYTES: String(6 * 2 ** 20), MULTIPART_PART_SIZE_BYTES: String(8 * 2 ** 20) }),
      );

      expect(error.variable).toBe('UPLOAD_BUFFER_BYTES');
      expect(error.message).toMatch(/at least one part \(MULTIPART_PART_SIZE_BYTES/);
    });
  });

  describe('grace period and request cap', () => {
    it.each([
      ['3600', 3_600_000],
      ['30m', 1_800_000],
      ['24h', 86_400_000],
      ['7d', 604_800_000],
      ['0', undefined],
    ])('reads MIN_AGE=%s', (raw, ms) => {
      expect(loadConfig(env({ MIN_AGE: raw })).minAgeMs).toBe(ms);
    });

    it.each([['soon'], ['-1h'], ['1.5h'], ['10 minutes']])('refuses MIN_AGE=%s, naming it', (raw) => {
      expect(() => loadConfig(env({ MIN_AGE: raw }))).toThrow(/^MIN_AGE: must be a duration/);
    });

    it('reads MAX_REQUESTS_PER_SECOND, none by default, and refuses 0', () => {
      expect(loadConfig(env({})).maxRequestsPerSecond).toBeUndefined();
      expect(loadConfig(env({ MAX_REQUESTS_PER_SECOND: '5' })).maxRequestsPerSecond).toBe(5);
      expect(() => loadConfig(env({ MAX_REQUESTS_PER_SECOND: '0' }))).toThrow(
        /^MAX_REQUESTS_PER_SECOND: must be between/,
      );
    });

    it('reads MAX_BYTES_PER_SECOND, none by default', () => {
      expect(loadConfig(env({})).maxBytesPerSecond).toBeUndefined();
      expect(loadConfig(env({ MAX_BYTES_PER_SECOND: '8388608' })).maxBytesPerSecond).toBe(8 * 1024 * 1024);
    });

    it.each([
      ['1023', /^MAX_BYTES_PER_SECOND: must be between 1024 and 10737418240, got 1023$/],
      ['10737418241', /^MAX_BYTES_PER_SECOND: must be between 1024 and 10737418240/],
      ['8M', /^MAX_BYTES_PER_SECOND: must be a whole number, got "8M"$/],
      ['1e6', /^MAX_BYTES_PER_SECOND: must be a whole number/],
    ])('refuses MAX_BYTES_PER_SECOND=%s, naming it', (raw, message) => {
      expect(refusalOf('MAX_BYTES_PER_SECOND', raw).message).toMatch(message);
    });
    it('refuses a MAX_BYTES_PER_SECOND too small to hold over the downloads it runs at once, naming the concurrency', () => {
      // LINE_CONCURRENCY 16 (the default) of FILE_CONCURRENCY 1, and a listing: seventeen bodies
      // read at once, each up to 128 KiB ahead of the cap; half the cap must be left: 4.25 MiB at least.
      const error = refusalOf('MAX_BYTES_PER_SECOND', String(4352 * 1024 - 1));

      expect(error.message).toMatch(/LINE_CONCURRENCY 16 and FILE_CONCURRENCY 1.*at least 4456448/);
      expect(loadConfig(env({ MAX_BYTES_PER_SECOND: String(4352 * 1024) })).maxBytesPerSecond).toBe(
        4352 * 1024,
      );
      expect(
        loadConfig(env({ MAX_BYTES_PER_SECOND: String(512 * 1024), LINE_CONCURRENCY: '1' }))
          .maxBytesPerSecond,
      ).toBe(512 * 1024);
    });
  });

  describe('dismantle guard', () => {
    it('reads the cap per run (0 holds every line), the share and the listing it is judged on', () => {
      const guard = loadConfig(
        env({ MAX_DISMANTLES_PER_RUN: '0', MAX_DISMANTLE_SHARE: '0.5', MAX_DISMANTLE_SHARE_MIN_LINES: '40' }),
      ).dismantleGuard;

      expect(guard).toEqual({ maxPerRun: 0, maxShare: 0.5, shareMinLines: 40 });
      expect(loadConfig(env({ MAX_DISMANTLE_SHARE: '1' })).dismantleGuard.maxShare).toBe(1);
      expect(loadConfig(env({ MAX_DISMANTLE_SHARE: '.25' })).dismantleGuard.maxShare).toBe(0.25);
    });

    it.each([['0'], ['1.5'], ['-0.5'], ['half'], ['50%'], ['.']])(
      'refuses MAX_DISMANTLE_SHARE=%s, naming it',
      (raw) => {
        expect(() => loadConfig(env({ MAX_DISMANTLE_SHARE: raw }))).toThrow(
          /^MAX_DISMANTLE_SHARE: must be a share above 0 and at most 1/,
        );
      },
    );

    it('refuses a cap that is not a whole number, and a share judged on no lines, naming each', () => {
      expect(() =>
        loadConfig(env({ MAX_DISMANTLES_PER_RUN: '-1', MAX_DISMANTLE_SHARE_MIN_LINES: '0' })),
      ).toThrow(
        /MAX_DISMANTLES_PER_RUN: must be a whole number[\s\S]*MAX_DISMANTLE_SHARE_MIN_LINES: must be between 1/,
      );
    });
  });

  describe('listing bounds and download speed floor', () => {
    it('reads the page cap, the run of empty pages and the speed floor', () => {
      const environment = env({
        LIST_MAX_PAGES: '50',
        LIST_MAX_EMPTY_PAGES: '3',
        DOWNLOAD_MIN_SPEED_BYTES: '4096',
        DOWNLOAD_SPEED_WINDOW_SECONDS: '10',
      });

      const config = loadConfig(environment);

      expect(config.listing).toEqual({ maxPages: 50, maxEmptyPages: 3 });
      expect(config.download).toEqual({ minSpeedBytesPerSecond: 4096, speedWindowMs: 10_000 });
    });

    it('accepts DOWNLOAD_MIN_SPEED_BYTES=0, which disables the floor', () => {
      const config = loadConfig(env({ DOWNLOAD_MIN_SPEED_BYTES: '0' }));

      expect(config.download.minSpeedBytesPerSecond).toBe(0);
    });
  });

  describe('TOKENS_API_URL', () => {
    it('accepts an https URL', () => {
      const config = loadConfig(env({ TOKENS_API_URL: 'https://tokens.example.com:8443' }));

      expect(config.tokensApiUrl.href).toBe('https://tokens.example.com:8443/');
    });

    it.each([
      'http://127.0.0.1:8080',
      'http://127.10.20.30',
      'http://localhost:3000',
      'http://LOCALHOST:3000',
      'http://[::1]:8080',
    ])('accepts plain http to the loopback host of %s', (url) => {
      expect(loadConfig(env({ TOKENS_API_URL: url })).tokensApiUrl.protocol).toBe('http:');
    });

    it.each([
      'http://tokens.example.com',
      'http://10.0.0.1:8080',
      'http://128.0.0.1',
      'http://localhost.evil.example',
      'http://127.0.0.1.evil.example',
      'http://[::2]',
      'ftp://tokens.example.com',
    ])('refuses %s, which is not https to a non-loopback host', (url) => {
      expect(refusalOf('TOKENS_API_URL', url).message).toContain('https');
    });

    it.each([
      ['not a URL', 'tokens.example.com'],
      ['credentials', 'https://user:secret@tokens.example.com'],
      ['a query', 'https://tokens.example.com/?a=1'],
      ['a fragment', 'https://tokens.example.com/#top'],
    ])('refuses a URL with %s', (_problem, url) => {
      refusalOf('TOKENS_API_URL', url);
    });

    it('never echoes the password of a URL with credentials', () => {
      const error = configErrorOf(env({ TOKENS_API_URL: 'https://user:pa55w0rd-XYZ@tokens.example.com' }));

      expect(error.message).not.toContain('pa55w0rd-XYZ');
    });

    it.each([
      ['https://tokens.example.com/base/', '/base'],
      ['https://tokens.example.com/base///', '/base'],
      ['https://tokens.example.com/a/b', '/a/b'],
    ])('trims the trailing slash of %s', (url, pathname) => {
      expect(loadConfig(env({ TOKENS_API_URL: url })).tokensApiUrl.pathname).toBe(pathname);
    });
  });

  describe('ARCHIVE_PREFIX', () => {
    it('defaults to "tokens/" when unset', () => {
      const config = loadConfig(MINIMAL);

      expect(config.archivePrefix).toBe('tokens/');
    });

    it.each([
      ['', ''],
      ['   ', ''],
      ['archive/', 'archive/'],
      ['archive/tokens/', 'archive/tokens/'],
      ["a-b_c.d!e*f'g(h)/", "a-b_c.d!e*f'g(h)/"],
    ])('accepts %j as %j', (value, expected) => {
      expect(loadConfig(env({ ARCHIVE_PREFIX: value })).archivePrefix).toBe(expected);
    });

    it.each([
      ['no trailing slash', 'archive'],
      ['a leading slash', '/archive/'],
      ['a parent segment', '../archive/'],
      ['a parent segment inside', 'archive/../other/'],
      ['a parent segment at the end', 'archive/../'],
      ['a space', 'my archive/'],
      ['a backslash', 'archive\\x/'],
    ])('refuses a prefix with %s', (_problem, value) => {
      expect(refusalOf('ARCHIVE_PREFIX', value).message).toContain('ARCHIVE_PREFIX');
    });
  });

  describe('ARCHIVE_BUCKET', () => {
    it.each(['abc', 'tokens-archive', 'tokens.archive.2024', 'a'.repeat(63)])('accepts %s', (bucket) => {
      expect(loadConfig(env({ ARCHIVE_BUCKET: bucket })).archiveBucket).toBe(bucket);
    });

    it.each([
      ['too short', 'ab'],
      ['too long', 'a'.repeat(64)],
      ['uppercase', 'Tokens-Archive'],
      ['an underscore', 'tokens_archive'],
      ['a leading hyphen', '-tokens'],
      ['a trailing hyphen', 'tokens-'],
      ['a trailing period', 'tokens.'],
      ['a slash', 'tokens/archive'],
      ['two adjacent periods', 'tokens..archive'],
      ['the form of an IP address', '192.168.5.4'],
    ])('refuses a bucket name with %s', (_problem, bucket) => {
      refusalOf('ARCHIVE_BUCKET', bucket);
    });
  });

  describe('VERIFY_READBACK', () => {
    it.each([
      [undefined, 'head'],
      ['head', 'head'],
      ['full', 'full'],
      [' full ', 'full'],
    ])('reads %j as %s', (value, expected) => {
      expect(loadConfig(env({ VERIFY_READBACK: value })).upload.readback).toBe(expected);
    });

    it('defaults to full when S3 is reached through an endpoint override, which may not verify checksums', () => {
      const config = loadConfig(env({ AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000' }));

      expect(config.upload.readback).toBe('full');
    });

    it('keeps an explicit head with an endpoint override', () => {
      const config = loadConfig(
        env({ AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000', VERIFY_READBACK: 'head' }),
      );

      expect(config.upload.readback).toBe('head');
    });

    it.each(['none', 'FULL', 'true'])('refuses %s, naming the variable', (value) => {
      expect(refusalOf('VERIFY_READBACK', value).message).toContain(value);
    });
  });

  describe('S3_CONDITIONAL_WRITES', () => {
    it('trusts AWS S3 to refuse a failed condition, and assumes a store behind an override ignores it', () => {
      expect(loadConfig(env({})).upload.conditionalWrites).toBe('enforced');
      expect(loadConfig(env({ AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000' })).upload.conditionalWrites).toBe(
        'ignored',
      );
    });

    it('keeps an explicit enforced with an endpoint override', () => {
      const config = loadConfig(
        env({ AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000', S3_CONDITIONAL_WRITES: 'enforced' }),
      );

      expect(config.upload.conditionalWrites).toBe('enforced');
    });

    it.each(['yes', 'ENFORCED'])('refuses %s, naming the variable', (value) => {
      refusalOf('S3_CONDITIONAL_WRITES', value);
    });
  });

  describe('endpoint overrides', () => {
    it('prefers the service-specific endpoint over AWS_ENDPOINT_URL', () => {
      const environment = env({
        AWS_ENDPOINT_URL: 'http://127.0.0.1:4566',
        AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000',
      });

      const config = loadConfig(environment);

      expect(config.s3EndpointOverride).toBe('http://127.0.0.1:9000');
      expect(config.secretsEndpointOverride).toBe('http://127.0.0.1:4566');
    });
  });
});

describe('isLoopbackHost', () => {
  it.each([
    ['localhost', true],
    ['127.0.0.1', true],
    ['127.255.255.255', true],
    ['[::1]', true],
    ['::1', false],
    ['localhost.example', false],
    ['127.0.0.1.example', false],
    ['10.0.0.1', false],
    ['example.com', false],
  ])('judges %s as loopback: %s', (hostname, expected) => {
    const loopback = isLoopbackHost(hostname);

    expect(loopback).toBe(expected);
  });
});
