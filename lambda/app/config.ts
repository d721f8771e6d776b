import { DEFAULT_PARTS_IN_FLIGHT, DEFAULT_UPLOAD_BUFFER_BYTES } from '../archive/upload.ts';
import type { ArchiveConfig, Config, DrillConfig, PlannerConfig } from '../core/types.ts';
import {
  archivePrefixProblem,
  DEFAULT_ARCHIVE_PREFIX,
  DEFAULT_DEADLINE_RESERVE_MS,
  DEFAULT_DISMANTLE_SHARE_MIN_LINES,
  DEFAULT_DRILL_MAX_LINES,
  DEFAULT_DRILL_SAMPLE_SIZE,
  DEFAULT_LINE_CONCURRENCY,
  DEFAULT_TIME_RESERVE_MS,
  DRILL_MAX_LINES_RANGE,
  DRILL_SAMPLE_SIZE_RANGE,
  downloadsAtOnce,
  LINE_CONCURRENCY_RANGE,
  MAX_BYTES_PER_SECOND_RANGE,
  MAX_DISMANTLES_RANGE,
  MAX_REQUESTS_PER_SECOND_RANGE,
  smallestByteCap,
} from '../shared/contract.ts';
import { parseDuration } from '../shared/duration.ts';
import { ConfigError } from '../shared/errors.ts';

type Env = Readonly<Record<string, string | undefined>>;

const MIB = 1024 * 1024;

/**
 * The problems found by the variable reads of one load: every read goes on after a problem, so
 * one {@link ConfigError} names every missing or malformed variable at once.
 */
let found: ConfigError[] | undefined;

/** One variable's read: its value, or (a problem noted) a stand-in the load never returns. */
function field<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof ConfigError) || found === undefined) throw error;
    found.push(...error.all);
    return undefined as T;
  }
}

/** Runs a load, then throws one ConfigError for all its problems, if any. */
function gathering<T>(load: () => T): T {
  if (found !== undefined) return load();
  found = [];
  try {
    const value = load();
    const problems = found;
    if (problems.length > 0) throw ConfigError.of(problems);
    return value;
  } finally {
    found = undefined;
  }
}

/** Reads the archive's settings only; a {@link ConfigError} names every variable at fault. */
export function loadArchiveConfig(env: Env): Readonly<ArchiveConfig> {
  return gathering(() => archiveConfig(env));
}

function archiveConfig(env: Env): Readonly<ArchiveConfig> {
  const s3EndpointOverride = s3Endpoint(env);
  return Object.freeze({
    archiveBucket: field(() => bucketName(env)),
    archivePrefix: field(() => archivePrefix(env)),
    s3EndpointOverride,
    http: httpTimeouts(env),
    upload: uploadSettings(env, s3EndpointOverride),
  });
}

/**
 * Reads and validates the configuration. Throws one {@link ConfigError} naming every variable
 * that is missing or malformed.
 */
export function loadConfig(env: Env): Readonly<Config> {
  return gathering(() => config(env));
}

function config(env: Env): Readonly<Config> {
  const loaded = readConfig(env);
  field(() => byteCapFits(loaded));
  return loaded;
}

/**
 * `MAX_BYTES_PER_SECOND` must leave half of itself to the downloads once what they read ahead of
 * it is kept free (see `smallestByteCap`): a smaller cap could not hold over every second.
 */
function byteCapFits(config: Config): void {
  const cap = config.maxBytesPerSecond;
  // A variable already at fault has been named; its stand-in is not judged.
  if (cap === undefined || !(config.lineConcurrency > 0) || !(config.fileConcurrency > 0)) return;
  const smallest = smallestByteCap(downloadsAtOnce(config.lineConcurrency, config.fileConcurrency));
  if (cap >= smallest) return;
  throw new ConfigError(
    'MAX_BYTES_PER_SECOND',
    `${cap} is too small for LINE_CONCURRENCY ${config.lineConcurrency} and FILE_CONCURRENCY ${config.fileConcurrency}: ` +
      `each open download reads up to 128 KiB off its socket before the cap can hold it back, so the cap must be at least ${smallest}; ` +
      'raise it or lower LINE_CONCURRENCY',
  );
}

function readConfig(env: Env): Readonly<Config> {
  return Object.freeze({
    tokensApiUrl: field(() => tokensApiUrl(env)),
    sessionKeySecretId: field(() => required(env, 'SESSION_KEY_SECRET_ID')),
    ...archiveConfig(env),
    lineConcurrency: field(() =>
      integer(
        env,
        'LINE_CONCURRENCY',
        DEFAULT_LINE_CONCURRENCY,
        LINE_CONCURRENCY_RANGE.min,
        LINE_CONCURRENCY_RANGE.max,
      ),
    ),
    fileConcurrency: field(() => integer(env, 'FILE_CONCURRENCY', 1, 1, 16)),
    retry: {
      attempts: field(() => integer(env, 'RETRY_ATTEMPTS', 5, 1, 20)),
      baseDelayMs: field(() => integer(env, 'RETRY_BASE_DELAY_MS', 500, 0, 60_000)),
      maxDelayMs: field(() => integer(env, 'RETRY_MAX_DELAY_MS', 20_000, 0, 300_000)),
    },
    sessionKeyTtlMs: field(() => integer(env, 'SESSION_KEY_TTL_SECONDS', 300, 0, 86_400)) * 1000,
    timeReserveMs: field(() => integer(env, 'TIME_RESERVE_MS', DEFAULT_TIME_RESERVE_MS, 0, 900_000)),
    deadlineReserveMs: field(() =>
      integer(env, 'DEADLINE_RESERVE_MS', DEFAULT_DEADLINE_RESERVE_MS, 0, 900_000),
    ),
    minAgeMs: field(() => minAge(env)),
    maxRequestsPerSecond: field(() =>
      optionalInteger(
        env,
        'MAX_REQUESTS_PER_SECOND',
        MAX_REQUESTS_PER_SECOND_RANGE.min,
        MAX_REQUESTS_PER_SECOND_RANGE.max,
      ),
    ),
    dismantleGuard: dismantleLimits(env),
    maxBytesPerSecond: field(() =>
      optionalInteger(
        env,
        'MAX_BYTES_PER_SECOND',
        MAX_BYTES_PER_SECOND_RANGE.min,
        MAX_BYTES_PER_SECOND_RANGE.max,
      ),
    ),
    secretsEndpointOverride:
      optional(env, 'AWS_ENDPOINT_URL_SECRETS_MANAGER') ?? optional(env, 'AWS_ENDPOINT_URL'),
    listing: listingBounds(env),
    download: downloadFloor(env),
  });
}

function listingBounds(env: Env): Config['listing'] {
  return {
    maxPages: field(() => integer(env, 'LIST_MAX_PAGES', 10_000, 1, 1_000_000)),
    maxEmptyPages: field(() => integer(env, 'LIST_MAX_EMPTY_PAGES', 20, 1, 1_000_000)),
  };
}

function dismantleLimits(env: Env): Config['dismantleGuard'] {
  return {
    maxPerRun: field(() =>
      optionalInteger(env, 'MAX_DISMANTLES_PER_RUN', MAX_DISMANTLES_RANGE.min, MAX_DISMANTLES_RANGE.max),
    ),
    maxShare: field(() => share(env, 'MAX_DISMANTLE_SHARE')),
    shareMinLines: field(() =>
      integer(env, 'MAX_DISMANTLE_SHARE_MIN_LINES', DEFAULT_DISMANTLE_SHARE_MIN_LINES, 1, 1_000_000),
    ),
  };
}

/** A share of a whole: a decimal number above 0 and at most 1 (`0.5`); unset is none. */
function share(env: Env, name: string): number | undefined {
  const raw = optional(env, name);
  if (raw === undefined) return undefined;
  const value = /^(0|1)?(\.\d+)?$/.test(raw) && raw !== '.' ? Number(raw) : Number.NaN;
  if (!(value > 0 && value <= 1)) {
    throw new ConfigError(name, `must be a share above 0 and at most 1, such as 0.5, got "${raw}"`);
  }
  return value;
}

function downloadFloor(env: Env): Config['download'] {
  return {
    minSpeedBytesPerSecond: field(() => integer(env, 'DOWNLOAD_MIN_SPEED_BYTES', 1024, 0, 1024 * MIB)),
    speedWindowMs: field(() => integer(env, 'DOWNLOAD_SPEED_WINDOW_SECONDS', 30, 1, 3600)) * 1000,
  };
}

/**
 * Reads the planner's configuration: everything {@link loadConfig} reads, then `QUEUE_URL`
 * (required) and `QUEUE_MARKER_TTL_SECONDS`. A {@link ConfigError} names the variable at fault.
 */
export function loadPlannerConfig(env: Env): Readonly<PlannerConfig> {
  return gathering(() => plannerConfig(env));
}

function plannerConfig(env: Env): Readonly<PlannerConfig> {
  const base = config(env);
  const sqsEndpointOverride = optional(env, 'AWS_ENDPOINT_URL_SQS') ?? optional(env, 'AWS_ENDPOINT_URL');
  return Object.freeze({
    ...base,
    fanout: Object.freeze({
      queueUrl: field(() => queueUrl(env, sqsEndpointOverride !== undefined)),
      // Markers expire from the bucket after a day (lifecycle rule): a longer TTL could not hold.
      queueMarkerTtlMs: field(() => integer(env, 'QUEUE_MARKER_TTL_SECONDS', 7200, 0, 86_400)) * 1000,
      sqsEndpointOverride,
    }),
  });
}

/**
 * Reads the restore drill's configuration: the archive's settings, `DEADLINE_RESERVE_MS`, and
 * `DRILL_SAMPLE_SIZE`, `DRILL_MAX_LINES`, `DRILL_RECENT_LINES`. Neither the tokens service nor the
 * session key: a drill reads only the archive. A {@link ConfigError} names every variable at fault.
 */
export function loadDrillConfig(env: Env): Readonly<DrillConfig> {
  return gathering(() =>
    Object.freeze({
      ...archiveConfig(env),
      deadlineReserveMs: field(() =>
        integer(env, 'DEADLINE_RESERVE_MS', DEFAULT_DEADLINE_RESERVE_MS, 0, 900_000),
      ),
      drill: Object.freeze({
        sampleSize: field(() =>
          integer(
            env,
            'DRILL_SAMPLE_SIZE',
            DEFAULT_DRILL_SAMPLE_SIZE,
            DRILL_SAMPLE_SIZE_RANGE.min,
            DRILL_SAMPLE_SIZE_RANGE.max,
          ),
        ),
        maxLines: field(() =>
          integer(
            env,
            'DRILL_MAX_LINES',
            DEFAULT_DRILL_MAX_LINES,
            DRILL_MAX_LINES_RANGE.min,
            DRILL_MAX_LINES_RANGE.max,
          ),
        ),
        recentLines:
          field(() => oneOf(env, 'DRILL_RECENT_LINES', ['true', 'false'] as const, 'true')) === 'true',
      }),
    }),
  );
}

function httpTimeouts(env: Env): Config['http'] {
  return {
    connectTimeoutMs: field(() => integer(env, 'HTTP_CONNECT_TIMEOUT_MS', 10_000, 1, 120_000)),
    headersTimeoutMs: field(() => integer(env, 'HTTP_HEADERS_TIMEOUT_MS', 30_000, 1, 600_000)),
    bodyTimeoutMs: field(() => integer(env, 'HTTP_BODY_TIMEOUT_MS', 30_000, 1, 600_000)),
  };
}

function uploadSettings(env: Env, s3EndpointOverride: string | undefined): Config['upload'] {
  const partSizeBytes = field(() =>
    integer(env, 'MULTIPART_PART_SIZE_BYTES', 8 * MIB, 5 * MIB, 5 * 1024 * MIB),
  );
  const uploadBufferBytes = field(() =>
    integer(env, 'UPLOAD_BUFFER_BYTES', DEFAULT_UPLOAD_BUFFER_BYTES, 5 * MIB, 8 * 1024 * MIB),
  );
  field(() => {
    if (uploadBufferBytes < partSizeBytes) {
      throw new ConfigError(
        'UPLOAD_BUFFER_BYTES',
        `must hold at least one part (MULTIPART_PART_SIZE_BYTES, ${partSizeBytes}), got ${uploadBufferBytes}`,
      );
    }
  });
  return {
    multipartThresholdBytes: field(() =>
      integer(env, 'MULTIPART_THRESHOLD_BYTES', 8 * MIB, 5 * MIB, 5 * 1024 * MIB),
    ),
    partSizeBytes,
    uploadBufferBytes,
    partsInFlight: field(() => integer(env, 'UPLOAD_PARTS_IN_FLIGHT', DEFAULT_PARTS_IN_FLIGHT, 1, 32)),
    // AWS S3 verifies the SHA-256 sent with each upload; a local or third-party store may not
    // (fauxqs stores the checksum header as sent), so there the default re-reads every object.
    readback: field(() =>
      oneOf(
        env,
        'VERIFY_READBACK',
        ['head', 'full'] as const,
        s3EndpointOverride === undefined ? 'head' : 'full',
      ),
    ),
  };
}

function s3Endpoint(env: Env): string | undefined {
  return optional(env, 'AWS_ENDPOINT_URL_S3') ?? optional(env, 'AWS_ENDPOINT_URL');
}

function optional(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function required(env: Env, name: string): string {
  const value = optional(env, name);
  if (value === undefined) throw new ConfigError(name, 'is required but not set');
  return value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = optional(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max)
    throw new ConfigError(name, `must be between ${min} and ${max}, got ${raw}`);
  return value;
}

function optionalInteger(env: Env, name: string, min: number, max: number): number | undefined {
  return optional(env, name) === undefined ? undefined : integer(env, name, 0, min, max);
}

/** `MIN_AGE`: `30m`, `24h`, `7d` or plain seconds; `0` or unset is none. */
function minAge(env: Env): number | undefined {
  const raw = optional(env, 'MIN_AGE');
  if (raw === undefined) return undefined;
  const seconds = parseDuration(raw, { allowZero: true });
  if (seconds === undefined) {
    throw new ConfigError(
      'MIN_AGE',
      `must be a duration such as 30m, 24h, 7d or whole seconds, got "${raw}"`,
    );
  }
  return seconds === 0 ? undefined : seconds * 1000;
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = optional(env, name);
  if (raw === undefined) return fallback;
  const found = allowed.find((value) => value === raw);
  if (found === undefined) throw new ConfigError(name, `must be one of ${allowed.join(', ')}, got "${raw}"`);
  return found;
}

/** Loopback hosts may use plain http (local runs and tests); anything else must be https. */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** A required URL variable, parsed, and refused when it carries credentials. */
function urlVariable(env: Env, name: string): { raw: string; url: URL } {
  const raw = required(env, name);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, `is not a URL: "${raw}"`);
  }
  if (url.username || url.password) throw new ConfigError(name, 'must not carry credentials');
  return { raw, url };
}

function tokensApiUrl(env: Env): URL {
  const name = 'TOKENS_API_URL';
  const { url } = urlVariable(env, name);
  if (url.search || url.hash) throw new ConfigError(name, 'must not have a query or fragment');
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    throw new ConfigError(
      name,
      `must be https (plain http only for loopback), got ${url.protocol}//${url.host}`,
    );
  }
  url.pathname = url.pathname.replace(/\/+$/, '');
  return url;
}

function bucketName(env: Env): string {
  const name = 'ARCHIVE_BUCKET';
  const value = required(env, name);
  const shaped = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(value);
  if (!shaped || value.includes('..') || /^\d{1,3}(\.\d{1,3}){3}$/.test(value)) {
    throw new ConfigError(name, `is not a valid S3 bucket name: "${value}"`);
  }
  return value;
}

function archivePrefix(env: Env): string {
  const name = 'ARCHIVE_PREFIX';
  const raw = env[name];
  if (raw === undefined) return DEFAULT_ARCHIVE_PREFIX;
  const value = raw.trim();
  const problem = archivePrefixProblem(value);
  if (problem !== undefined) throw new ConfigError(name, problem);
  return value;
}

/** An SQS queue URL: https, or any http(s) URL when the SQS endpoint is overridden (local runs). */
function queueUrl(env: Env, local: boolean): string {
  const name = 'QUEUE_URL';
  const { raw, url } = urlVariable(env, name);
  if (url.protocol !== 'https:' && !(local && url.protocol === 'http:')) {
    throw new ConfigError(
      name,
      `must be https (plain http only with a local SQS endpoint), got ${url.protocol}`,
    );
  }
  if (url.pathname.split('/').filter(Boolean).length !== 2) {
    throw new ConfigError(
      name,
      `must be a queue URL of the form https://host/{account}/{queue}, got "${raw}"`,
    );
  }
  return raw;
}
