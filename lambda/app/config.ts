import type { ArchiveConfig, Config, DrillConfig, PlannerConfig } from '../core/types.ts';
import { archivePrefixProblem, downloadsAtOnce, smallestByteCap } from '../shared/contract.ts';
import { parseDuration } from '../shared/duration.ts';
import { type Range, VARIABLES as V } from '../shared/environment.ts';
import { ConfigError } from '../shared/errors.ts';
import { parseTokensApiUrl } from '../shared/tokens-api-url.ts';

/** The loopback rule of `TOKENS_API_URL`, where it was first written. */
export { isLoopbackHost } from '../shared/tokens-api-url.ts';

type Env = Readonly<Record<string, string | undefined>>;

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
    V.MAX_BYTES_PER_SECOND.name,
    `${cap} is too small for LINE_CONCURRENCY ${config.lineConcurrency} and FILE_CONCURRENCY ${config.fileConcurrency}: ` +
      `each open download reads up to 128 KiB off its socket before the cap can hold it back, so the cap must be at least ${smallest}; ` +
      'raise it or lower LINE_CONCURRENCY',
  );
}

function readConfig(env: Env): Readonly<Config> {
  return Object.freeze({
    tokensApiUrl: field(() => tokensApiUrl(env)),
    sessionKeySecretId: field(() => required(env, V.SESSION_KEY_SECRET_ID.name)),
    ...archiveConfig(env),
    lineConcurrency: field(() => integer(env, V.LINE_CONCURRENCY)),
    fileConcurrency: field(() => integer(env, V.FILE_CONCURRENCY)),
    retry: {
      attempts: field(() => integer(env, V.RETRY_ATTEMPTS)),
      baseDelayMs: field(() => integer(env, V.RETRY_BASE_DELAY_MS)),
      maxDelayMs: field(() => integer(env, V.RETRY_MAX_DELAY_MS)),
    },
    sessionKeyTtlMs: field(() => integer(env, V.SESSION_KEY_TTL_SECONDS)) * 1000,
    timeReserveMs: field(() => integer(env, V.TIME_RESERVE_MS)),
    deadlineReserveMs: field(() => integer(env, V.DEADLINE_RESERVE_MS)),
    minAgeMs: field(() => minAge(env)),
    maxRequestsPerSecond: field(() => optionalInteger(env, V.MAX_REQUESTS_PER_SECOND)),
    dismantleGuard: dismantleLimits(env),
    maxBytesPerSecond: field(() => optionalInteger(env, V.MAX_BYTES_PER_SECOND)),
    secretsEndpointOverride:
      optional(env, V.AWS_ENDPOINT_URL_SECRETS_MANAGER.name) ?? optional(env, V.AWS_ENDPOINT_URL.name),
    listing: listingBounds(env),
    download: downloadFloor(env),
  });
}

function listingBounds(env: Env): Config['listing'] {
  return {
    maxPages: field(() => integer(env, V.LIST_MAX_PAGES)),
    maxEmptyPages: field(() => integer(env, V.LIST_MAX_EMPTY_PAGES)),
  };
}

function dismantleLimits(env: Env): Config['dismantleGuard'] {
  return {
    maxPerRun: field(() => optionalInteger(env, V.MAX_DISMANTLES_PER_RUN)),
    maxShare: field(() => share(env, V.MAX_DISMANTLE_SHARE.name)),
    shareMinLines: field(() => integer(env, V.MAX_DISMANTLE_SHARE_MIN_LINES)),
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
    minSpeedBytesPerSecond: field(() => integer(env, V.DOWNLOAD_MIN_SPEED_BYTES)),
    speedWindowMs: field(() => integer(env, V.DOWNLOAD_SPEED_WINDOW_SECONDS)) * 1000,
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
  const sqsEndpointOverride =
    optional(env, V.AWS_ENDPOINT_URL_SQS.name) ?? optional(env, V.AWS_ENDPOINT_URL.name);
  return Object.freeze({
    ...base,
    fanout: Object.freeze({
      queueUrl: field(() => queueUrl(env, sqsEndpointOverride !== undefined)),
      // Markers expire from the bucket after a day (lifecycle rule): a longer TTL could not hold.
      queueMarkerTtlMs: field(() => integer(env, V.QUEUE_MARKER_TTL_SECONDS)) * 1000,
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
      deadlineReserveMs: field(() => integer(env, V.DEADLINE_RESERVE_MS)),
      drill: Object.freeze({
        sampleSize: field(() => integer(env, V.DRILL_SAMPLE_SIZE)),
        maxLines: field(() => integer(env, V.DRILL_MAX_LINES)),
        recentLines: field(() => oneOf(env, V.DRILL_RECENT_LINES, V.DRILL_RECENT_LINES.default)) === 'true',
      }),
    }),
  );
}

function httpTimeouts(env: Env): Config['http'] {
  return {
    connectTimeoutMs: field(() => integer(env, V.HTTP_CONNECT_TIMEOUT_MS)),
    headersTimeoutMs: field(() => integer(env, V.HTTP_HEADERS_TIMEOUT_MS)),
    bodyTimeoutMs: field(() => integer(env, V.HTTP_BODY_TIMEOUT_MS)),
  };
}

function uploadSettings(env: Env, s3EndpointOverride: string | undefined): Config['upload'] {
  const partSizeBytes = field(() => integer(env, V.MULTIPART_PART_SIZE_BYTES));
  const uploadBufferBytes = field(() => integer(env, V.UPLOAD_BUFFER_BYTES));
  field(() => {
    if (uploadBufferBytes < partSizeBytes) {
      throw new ConfigError(
        V.UPLOAD_BUFFER_BYTES.name,
        `must hold at least one part (MULTIPART_PART_SIZE_BYTES, ${partSizeBytes}), got ${uploadBufferBytes}`,
      );
    }
  });
  return {
    multipartThresholdBytes: field(() => integer(env, V.MULTIPART_THRESHOLD_BYTES)),
    partSizeBytes,
    uploadBufferBytes,
    partsInFlight: field(() => integer(env, V.UPLOAD_PARTS_IN_FLIGHT)),
    // AWS S3 verifies the SHA-256 sent with each upload; a local or third-party store may not
    // (fauxqs stores the checksum header as sent), so there the default re-reads every object.
    readback: field(() => oneOf(env, V.VERIFY_READBACK, s3EndpointOverride === undefined ? 'head' : 'full')),
    // AWS S3 refuses a conditional write whose condition fails; a local or third-party store may
    // ignore the condition (fauxqs does), so there a line's archive is always listed first.
    conditionalWrites: field(() =>
      oneOf(env, V.S3_CONDITIONAL_WRITES, s3EndpointOverride === undefined ? 'enforced' : 'ignored'),
    ),
  };
}

function s3Endpoint(env: Env): string | undefined {
  return optional(env, V.AWS_ENDPOINT_URL_S3.name) ?? optional(env, V.AWS_ENDPOINT_URL.name);
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

/** A whole-number variable of the table: its name, its default and its range. */
interface IntegerVariable {
  readonly name: string;
  readonly default: number;
  readonly range: Range;
}

function integer(env: Env, variable: IntegerVariable): number {
  const { name, range } = variable;
  const { min, max } = range;
  const raw = optional(env, name);
  if (raw === undefined) return variable.default;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max)
    throw new ConfigError(name, `must be between ${min} and ${max}, got ${raw}`);
  return value;
}

/** A whole-number variable without a default: unset is none. */
function optionalInteger(
  env: Env,
  variable: { readonly name: string; readonly range: Range },
): number | undefined {
  return optional(env, variable.name) === undefined ? undefined : integer(env, { ...variable, default: 0 });
}

/** `MIN_AGE`: `30m`, `24h`, `7d` or plain seconds; `0` or unset is none. */
function minAge(env: Env): number | undefined {
  const name = V.MIN_AGE.name;
  const raw = optional(env, name);
  if (raw === undefined) return undefined;
  const seconds = parseDuration(raw, { allowZero: true });
  if (seconds === undefined) {
    throw new ConfigError(name, `must be a duration such as 30m, 24h, 7d or whole seconds, got "${raw}"`);
  }
  return seconds === 0 ? undefined : seconds * 1000;
}

function oneOf<T extends string>(
  env: Env,
  variable: { readonly name: string; readonly allowed: readonly T[] },
  fallback: T,
): T {
  const { name, allowed } = variable;
  const raw = optional(env, name);
  if (raw === undefined) return fallback;
  const found = allowed.find((value) => value === raw);
  if (found === undefined) throw new ConfigError(name, `must be one of ${allowed.join(', ')}, got "${raw}"`);
  return found;
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
  const name = V.TOKENS_API_URL.name;
  const verdict = parseTokensApiUrl(required(env, name), { loopbackHttp: true });
  if ('problem' in verdict) throw new ConfigError(name, verdict.problem);
  return verdict.url;
}

function bucketName(env: Env): string {
  const name = V.ARCHIVE_BUCKET.name;
  const value = required(env, name);
  const shaped = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(value);
  if (!shaped || value.includes('..') || /^\d{1,3}(\.\d{1,3}){3}$/.test(value)) {
    throw new ConfigError(name, `is not a valid S3 bucket name: "${value}"`);
  }
  return value;
}

function archivePrefix(env: Env): string {
  const name = V.ARCHIVE_PREFIX.name;
  const raw = env[name];
  if (raw === undefined) return V.ARCHIVE_PREFIX.default;
  const value = raw.trim();
  const problem = archivePrefixProblem(value);
  if (problem !== undefined) throw new ConfigError(name, problem);
  return value;
}

/** An SQS queue URL: https, or any http(s) URL when the SQS endpoint is overridden (local runs). */
function queueUrl(env: Env, local: boolean): string {
  const name = V.QUEUE_URL.name;
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
