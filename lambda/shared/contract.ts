/**
 * What the function and the stack must agree on, written once: read by `lambda/` and by `infra/`.
 * Nothing here imports anything: a leaf both sides can take.
 */

/** The service name on every log line, and the one dimension of every metric (`POWERTOOLS_SERVICE_NAME`). */
export const SERVICE_NAME = 'tokens-housekeeper';

/** The CloudWatch namespace of the EMF metrics (`POWERTOOLS_METRICS_NAMESPACE`). */
export const METRICS_NAMESPACE = 'TokensHousekeeper';

/** Metrics of a pass (and of a fan-out worker's batch), in the order they are emitted. */
export const PASS_METRIC_NAMES = [
  'LinesArchived',
  'LinesDismantled',
  'LinesFailed',
  'LinesDeferred',
  'LinesWaiting',
  'LinesSkipped',
  'LinesPending',
  'LinesHeld',
  'FilesArchived',
  'BytesArchived',
  'HashMismatches',
  'Conflicts',
  'Retries',
] as const;

/** Metrics of the fan-out planner besides the ones it shares with a pass. */
export const PLANNER_METRIC_NAMES = ['LinesEnqueued', 'LinesAlreadyQueued'] as const;

/**
 * Metrics of a restore drill: findings (damaged or missing objects, receipts recording a
 * discrepancy or disagreeing with their manifest, lines that could not be read back; 0 when
 * clean), lines audited, and lines chosen but not reached before the drill's deadline.
 */
export const DRILL_METRIC_NAMES = ['DrillFindings', 'DrillLinesAudited', 'DrillLinesNotReached'] as const;

export type PassMetricName = (typeof PASS_METRIC_NAMES)[number];
export type PlannerMetricName = (typeof PLANNER_METRIC_NAMES)[number];
export type DrillMetricName = (typeof DRILL_METRIC_NAMES)[number];
/** Every metric the functions emit. */
export type MetricName = PassMetricName | PlannerMetricName | DrillMetricName | 'RunDuration';

/** Lines handled in parallel within one pass, unless `LINE_CONCURRENCY` says otherwise. */
export const DEFAULT_LINE_CONCURRENCY = 16;
/** The range of `LINE_CONCURRENCY` the function accepts (and so the stack's `lineConcurrency`). */
export const LINE_CONCURRENCY_RANGE = { min: 1, max: 64 } as const;
/** The range of `MAX_REQUESTS_PER_SECOND` the function accepts (and so the stack's prop). */
export const MAX_REQUESTS_PER_SECOND_RANGE = { min: 1, max: 100_000 } as const;
/** The range of `MAX_BYTES_PER_SECOND` the function accepts (and so the stack's prop): 1 KiB/s to 10 GiB/s. */
export const MAX_BYTES_PER_SECOND_RANGE = { min: 1024, max: 10 * 1024 ** 3 } as const;
/**
 * What one open download may take off its socket before `MAX_BYTES_PER_SECOND` grants it: a
 * socket read of up to 64 KiB waiting for the cap, and one more held by the reply's parser.
 */
export const BYTES_READ_AHEAD_PER_DOWNLOAD = 128 * 1024;
/**
 * The most bodies of the tokens service one process reads at once: `LINE_CONCURRENCY` lines of
 * `FILE_CONCURRENCY` files, and one more (a listing) for margin.
 */
export function downloadsAtOnce(lineConcurrency: number, fileConcurrency: number): number {
  return lineConcurrency * fileConcurrency + 1;
}
/**
 * The smallest `MAX_BYTES_PER_SECOND` for `downloads` bodies read at once ({@link downloadsAtOnce}):
 * what they read ahead of the cap is kept free of it, and must leave at least half of it.
 */
export function smallestByteCap(downloads: number): number {
  return 2 * downloads * BYTES_READ_AHEAD_PER_DOWNLOAD;
}

/** The range of `MAX_DISMANTLES_PER_RUN` (and the event's `maxDismantles`): 0 holds every line. */
export const MAX_DISMANTLES_RANGE = { min: 0, max: 1_000_000 } as const;
/** `MAX_DISMANTLE_SHARE_MIN_LINES` unless set: a shorter listing is not judged by its share of finished lines. */
export const DEFAULT_DISMANTLE_SHARE_MIN_LINES = 20;

/** `TIME_RESERVE_MS` unless set: in Lambda, no line (or batch) is started with less than this left. */
export const DEFAULT_TIME_RESERVE_MS = 90_000;
/** `DEADLINE_RESERVE_MS` unless set: the run's hard deadline falls this long before the invocation's end. */
export const DEFAULT_DEADLINE_RESERVE_MS = 20_000;
/**
 * The least working time a function's timeout must leave after the time reserve (the time in
 * which lines are started): the stack refuses a shorter timeout, with which every run would defer
 * every line, or end in a `DeadlineError`, and archive nothing.
 */
export const MIN_WORKING_MS = 60_000;

/** The archive's key prefix when none is configured. */
export const DEFAULT_ARCHIVE_PREFIX = 'tokens/';

/**
 * What is wrong with an archive key prefix, or undefined when nothing is: it is empty (the whole
 * bucket), or a relative prefix of `[A-Za-z0-9!_.*'()/-]` ending in `/`, with no `..` segment.
 * With `iam` (the stack's rule), it must also be non-empty and hold no `*`: the function's IAM
 * grant is scoped to `{prefix}*`, where an empty prefix is the whole bucket and `*` a wildcard.
 */
export function archivePrefixProblem(
  prefix: string,
  options: { readonly iam?: boolean } = {},
): string | undefined {
  if (options.iam === true && (prefix === '' || prefix.includes('*'))) {
    return `must be a non-empty key prefix ending in "/", not starting with "/", without wildcards, got "${prefix}"`;
  }
  if (prefix === '') return undefined;
  if (!/^[A-Za-z0-9!_.*'()-][A-Za-z0-9!_.*'()/-]*\/$/.test(prefix) || prefix.split('/').includes('..')) {
    return `must be empty or a relative key prefix of [A-Za-z0-9!_.*'()/-] ending in "/", got "${prefix}"`;
  }
  return undefined;
}

/** `DRILL_SAMPLE_SIZE` unless set: archived lines a restore drill draws at random (besides the recent ones). */
export const DEFAULT_DRILL_SAMPLE_SIZE = 20;
/** The range of `DRILL_SAMPLE_SIZE` (and so the stack's `restoreDrillSampleSize`); 0: recent lines only. */
export const DRILL_SAMPLE_SIZE_RANGE = { min: 0, max: 10_000 } as const;
/** `DRILL_MAX_LINES` unless set: the most lines one drill audits, recent and sampled together. */
export const DEFAULT_DRILL_MAX_LINES = 200;
/** The range of `DRILL_MAX_LINES` (and so the stack's `restoreDrillMaxLines`). */
export const DRILL_MAX_LINES_RANGE = { min: 1, max: 10_000 } as const;

/**
 * The archive's folders beside the lines, each under the prefix (`{prefix}_runs/`): the key layout
 * (lambda/archive/keys.ts) writes into them, and the bucket's lifecycle rules and the drill's grant
 * (infra/) name them. A line id never starts with `_`, so no line folder is one of them.
 */
export const ARCHIVE_FOLDERS = {
  /** Run reports, and in fan-out mode the workers' line records. */
  runs: '_runs/',
  /** Fan-out: the planner's queued markers (expired by a lifecycle rule). */
  queued: '_queued/',
  /** DELETEs taken but not yet seen done (expired by a lifecycle rule). */
  pending: '_pending/',
  /** A Lambda dry run's whole plan (expired by a lifecycle rule). */
  plans: '_plans/',
  /** Restore drill reports. */
  drills: '_drills/',
} as const;

/** The media type of the tokens service's documents (JSON:API): its requests and replies, and the line documents archived as received. */
export const JSON_API = 'application/vnd.api+json';
