import {
  DEFAULT_ARCHIVE_PREFIX,
  DEFAULT_DEADLINE_RESERVE_MS,
  DEFAULT_DISMANTLE_SHARE_MIN_LINES,
  DEFAULT_DRILL_MAX_LINES,
  DEFAULT_DRILL_SAMPLE_SIZE,
  DEFAULT_LINE_CONCURRENCY,
  DEFAULT_TIME_RESERVE_MS,
  DRILL_MAX_LINES_RANGE,
  DRILL_SAMPLE_SIZE_RANGE,
  LINE_CONCURRENCY_RANGE,
  MAX_BYTES_PER_SECOND_RANGE,
  MAX_DISMANTLES_RANGE,
  MAX_REQUESTS_PER_SECOND_RANGE,
  METRICS_NAMESPACE,
  SERVICE_NAME,
} from './contract.ts';

/**
 * The functions' environment variables, written once: each one's name, its default, the values it
 * takes and one line of what it does. `lambda/app/config.ts` reads them by this table, the stack
 * (`infra/`) writes them by it, and a test holds `docs/configuration.md` to it (the docs' Default
 * column says the same default; the docs name no variable this table lacks).
 */

const MIB = 1024 * 1024;

/** The smallest and largest value a whole-number variable takes. */
export interface Range {
  readonly min: number;
  readonly max: number;
}

/** One variable of the table, without its name (the table's key). */
export interface VariableSpec {
  /** What it does, in one line. */
  readonly doc: string;
  /** Unset is refused (a `ConfigError` naming it). */
  readonly required?: true;
  /** The value when unset. Neither this nor {@link unset}: unset is none (the feature is off). */
  readonly default?: number | string;
  /** What unset means when no one value says it (the docs' Default column, word for word). */
  readonly unset?: string;
  /** A whole number from `min` to `max`. */
  readonly range?: Range;
  /** One of these values. */
  readonly allowed?: readonly string[];
  /** Read by the AWS SDK (the endpoints also by the config): the docs give these one row. */
  readonly sdk?: true;
  /** Set by the stack, for Powertools or Node.js; the function's code does not read it. */
  readonly setByStack?: true;
}

/** A variable of the table, with its name. */
export type Variable<Name extends string = string, Spec extends VariableSpec = VariableSpec> = Spec & {
  readonly name: Name;
};

const SPECS = {
  TOKENS_API_URL: {
    required: true,
    doc: 'Base URL of the tokens service; https, plain http only for loopback (parseTokensApiUrl).',
  },
  SESSION_KEY_SECRET_ID: {
    required: true,
    doc: 'Name or ARN of the Secrets Manager secret holding the session key.',
  },
  ARCHIVE_BUCKET: { required: true, doc: 'The archive bucket.' },
  ARCHIVE_PREFIX: {
    default: DEFAULT_ARCHIVE_PREFIX,
    doc: 'Key prefix of the archive: empty, or ending in "/" (archivePrefixProblem).',
  },
  LINE_CONCURRENCY: {
    default: DEFAULT_LINE_CONCURRENCY,
    range: LINE_CONCURRENCY_RANGE,
    doc: 'Lines processed at once.',
  },
  FILE_CONCURRENCY: { default: 1, range: { min: 1, max: 16 }, doc: 'Files of one line processed at once.' },
  HTTP_CONNECT_TIMEOUT_MS: {
    default: 10_000,
    range: { min: 1, max: 120_000 },
    doc: 'Connect timeout towards the tokens service.',
  },
  HTTP_HEADERS_TIMEOUT_MS: {
    default: 30_000,
    range: { min: 1, max: 600_000 },
    doc: 'Time allowed for response headers.',
  },
  HTTP_BODY_TIMEOUT_MS: {
    default: 30_000,
    range: { min: 1, max: 600_000 },
    doc: 'A body that sends nothing for this long is a failed attempt.',
  },
  RETRY_ATTEMPTS: {
    default: 5,
    range: { min: 1, max: 20 },
    doc: 'Attempts in all for each request and file.',
  },
  RETRY_BASE_DELAY_MS: {
    default: 500,
    range: { min: 0, max: 60_000 },
    doc: 'First backoff delay; doubles per attempt, with jitter.',
  },
  RETRY_MAX_DELAY_MS: {
    default: 20_000,
    range: { min: 0, max: 300_000 },
    doc: 'Cap of one backoff delay, and the longest Retry-After waited for.',
  },
  MULTIPART_THRESHOLD_BYTES: {
    default: 8 * MIB,
    range: { min: 5 * MIB, max: 5 * 1024 * MIB },
    doc: 'Files larger than this are uploaded as multipart.',
  },
  MULTIPART_PART_SIZE_BYTES: {
    default: 8 * MIB,
    range: { min: 5 * MIB, max: 5 * 1024 * MIB },
    doc: 'Minimum part size of multipart uploads.',
  },
  UPLOAD_BUFFER_BYTES: {
    default: 96 * MIB,
    range: { min: 5 * MIB, max: 8 * 1024 * MIB },
    doc: 'Bytes of part buffers the whole process may hold; at least one part.',
  },
  UPLOAD_PARTS_IN_FLIGHT: {
    // As lib-storage's default queue size.
    default: 4,
    range: { min: 1, max: 32 },
    doc: 'Parts of one file uploaded at once.',
  },
  VERIFY_READBACK: {
    allowed: ['head', 'full'],
    unset: '`head` on AWS S3; `full` with an S3 endpoint override',
    doc: 'How an upload is proven: by its reply or a HEAD (head), or also by re-reading it (full).',
  },
  S3_CONDITIONAL_WRITES: {
    allowed: ['enforced', 'ignored'],
    unset: '`enforced` on AWS S3; `ignored` with an S3 endpoint override',
    doc: "Whether the store refuses a PutObject whose If-None-Match / If-Match fails (a line's first round then skips its listing).",
  },
  SESSION_KEY_TTL_SECONDS: {
    default: 300,
    range: { min: 0, max: 86_400 },
    doc: 'How long a warm container reuses the session key.',
  },
  TIME_RESERVE_MS: {
    default: DEFAULT_TIME_RESERVE_MS,
    range: { min: 0, max: 900_000 },
    doc: 'In Lambda, no line is started with less than this left.',
  },
  MIN_AGE: { doc: 'A finished line younger than this (30m, 24h, 7d, seconds) waits for a later run.' },
  MAX_REQUESTS_PER_SECOND: {
    range: MAX_REQUESTS_PER_SECOND_RANGE,
    doc: 'A cap on the requests the process sends to the tokens service.',
  },
  MAX_DISMANTLES_PER_RUN: {
    range: MAX_DISMANTLES_RANGE,
    doc: 'The dismantle guard: at most this many lines dismantled in one run.',
  },
  MAX_DISMANTLE_SHARE: {
    doc: 'The dismantle guard: a listing with more than this share (above 0, at most 1) finished dismantles nothing.',
  },
  MAX_DISMANTLE_SHARE_MIN_LINES: {
    default: DEFAULT_DISMANTLE_SHARE_MIN_LINES,
    range: { min: 1, max: 1_000_000 },
    doc: 'The shortest listing the share is judged on.',
  },
  MAX_BYTES_PER_SECOND: {
    range: MAX_BYTES_PER_SECOND_RANGE,
    doc: 'A cap on the bytes the process reads from the tokens service (smallestByteCap).',
  },
  DEADLINE_RESERVE_MS: {
    default: DEFAULT_DEADLINE_RESERVE_MS,
    range: { min: 0, max: 900_000 },
    doc: "In Lambda, the run's hard deadline falls this long before the invocation's end.",
  },
  LIST_MAX_PAGES: {
    default: 10_000,
    range: { min: 1, max: 1_000_000 },
    doc: 'Most pages one listing may take.',
  },
  LIST_MAX_EMPTY_PAGES: {
    default: 20,
    range: { min: 1, max: 1_000_000 },
    doc: 'Most pages without items in a row.',
  },
  DOWNLOAD_MIN_SPEED_BYTES: {
    default: 1024,
    range: { min: 0, max: 1024 * MIB },
    doc: 'A download slower than this (bytes/s) over the window is a failed attempt; 0 is off.',
  },
  DOWNLOAD_SPEED_WINDOW_SECONDS: {
    default: 30,
    range: { min: 1, max: 3600 },
    doc: 'The window the download speed is averaged over.',
  },
  QUEUE_URL: {
    required: true,
    doc: 'Fan-out planner only: the work queue, https (http with a local SQS endpoint).',
  },
  QUEUE_MARKER_TTL_SECONDS: {
    // Markers expire from the bucket after a day (lifecycle rule): a longer TTL could not hold.
    default: 7200,
    range: { min: 0, max: 86_400 },
    doc: 'Fan-out planner only: a line whose queued marker is younger than this is not sent again.',
  },
  DRILL_SAMPLE_SIZE: {
    default: DEFAULT_DRILL_SAMPLE_SIZE,
    range: DRILL_SAMPLE_SIZE_RANGE,
    doc: 'Restore drill: archived lines drawn at random, besides the recent ones.',
  },
  DRILL_MAX_LINES: {
    default: DEFAULT_DRILL_MAX_LINES,
    range: DRILL_MAX_LINES_RANGE,
    doc: 'Restore drill: the most lines one drill audits.',
  },
  DRILL_RECENT_LINES: {
    default: 'true',
    allowed: ['true', 'false'],
    doc: 'Restore drill: also every line archived or dismantled since the last drill report.',
  },
  AWS_REGION: { sdk: true, unset: 'SDK defaults', doc: 'The region of the AWS clients.' },
  AWS_ENDPOINT_URL: { sdk: true, unset: 'SDK defaults', doc: 'An endpoint override for every AWS client.' },
  AWS_ENDPOINT_URL_S3: {
    sdk: true,
    unset: 'SDK defaults',
    doc: 'An S3 endpoint override: path-style addressing, and VERIFY_READBACK full by default.',
  },
  AWS_ENDPOINT_URL_SECRETS_MANAGER: {
    sdk: true,
    unset: 'SDK defaults',
    doc: 'A Secrets Manager endpoint override.',
  },
  AWS_ENDPOINT_URL_SQS: {
    sdk: true,
    unset: 'SDK defaults',
    doc: 'An SQS endpoint override (fan-out planner).',
  },
  POWERTOOLS_LOG_LEVEL: { default: 'INFO', doc: 'Log level of the logs (Powertools Logger).' },
  LOG_FORMAT: {
    allowed: ['json', 'text'],
    unset: 'by terminal',
    doc: 'Terminal commands only: json or text logs; unset, text on a terminal and JSON elsewhere.',
  },
  POWERTOOLS_SERVICE_NAME: {
    setByStack: true,
    default: SERVICE_NAME,
    doc: 'The service of every log line and metric; the code names it itself (SERVICE_NAME).',
  },
  POWERTOOLS_METRICS_NAMESPACE: {
    setByStack: true,
    default: METRICS_NAMESPACE,
    doc: 'The namespace of the metrics; the code names it itself (METRICS_NAMESPACE).',
  },
  NODE_OPTIONS: {
    setByStack: true,
    doc: "Node.js flags on top of the runtime's: the stack sets --enable-source-maps.",
  },
} as const satisfies Record<string, VariableSpec>;

/** The name of a variable of the table. */
export type VariableName = keyof typeof SPECS;

/** The table: each variable by its name, the name included (`VARIABLES.LINE_CONCURRENCY.name`). */
export const VARIABLES = Object.freeze(
  Object.fromEntries(Object.entries(SPECS).map(([name, spec]) => [name, Object.freeze({ ...spec, name })])),
) as { readonly [Name in VariableName]: Variable<Name, (typeof SPECS)[Name]> };
