/**
 * The configuration contracts: everything the housekeeper reads from its environment, parsed
 * (`Config`), and the parts the restore drill and the fan-out planner read. A leaf: it imports
 * nothing.
 */

/** Everything the housekeeper reads from its environment, parsed once at cold start. */
export interface Config {
  /** Origin and base path of the tokens service, without a trailing slash. */
  readonly tokensApiUrl: URL;
  readonly sessionKeySecretId: string;
  readonly archiveBucket: string;
  /** Key prefix of the archive, `''` or ending in `/`. */
  readonly archivePrefix: string;
  readonly lineConcurrency: number;
  readonly fileConcurrency: number;
  readonly http: {
    readonly connectTimeoutMs: number;
    readonly headersTimeoutMs: number;
    /** A body that sends nothing for this long is a failed attempt (a stall). */
    readonly bodyTimeoutMs: number;
  };
  readonly retry: {
    /** Attempts in all, the first included. */
    readonly attempts: number;
    readonly baseDelayMs: number;
    readonly maxDelayMs: number;
  };
  readonly upload: {
    /** Files larger than this go up as a multipart upload. */
    readonly multipartThresholdBytes: number;
    readonly partSizeBytes: number;
    /**
     * `full` re-reads every uploaded object and hashes it; `head` checks size and stored checksum.
     * Defaults to `head` on AWS S3 and to `full` with an endpoint override.
     */
    readonly readback: 'head' | 'full';
    /**
     * `enforced`: the store refuses a write whose condition fails (AWS S3), so a line's first round
     * may assume an empty archive and let its conditional writes say otherwise; `ignored`: every
     * round lists the line's folder first (`S3_CONDITIONAL_WRITES`).
     */
    readonly conditionalWrites: 'enforced' | 'ignored';
    /**
     * Bytes of multipart part buffers the whole process may hold (`UPLOAD_BUFFER_BYTES`): a part
     * waits for room, so memory does not grow with line concurrency or file size.
     */
    readonly uploadBufferBytes: number;
    /** Parts of one file uploaded at once (`UPLOAD_PARTS_IN_FLIGHT`). */
    readonly partsInFlight: number;
  };
  readonly sessionKeyTtlMs: number;
  /** In Lambda, no new line is started when less than this remains of the invocation. */
  readonly timeReserveMs: number;
  /**
   * In Lambda, in-flight work is aborted when less than this remains, so the run report and
   * metrics are still written (`DEADLINE_RESERVE_MS`).
   */
  readonly deadlineReserveMs: number;
  /**
   * `MIN_AGE`: a grace period; a line finished more recently than this waits for a later run.
   * Undefined: none (every finished line is taken).
   */
  readonly minAgeMs: number | undefined;
  /**
   * `MAX_REQUESTS_PER_SECOND`: a cap on the requests this process sends to the tokens service
   * (every line and file, retries included; S3 is not limited). Undefined: no cap.
   */
  readonly maxRequestsPerSecond: number | undefined;
  /**
   * The dismantle guard (`MAX_DISMANTLES_PER_RUN`, `MAX_DISMANTLE_SHARE`,
   * `MAX_DISMANTLE_SHARE_MIN_LINES`); an event's `maxDismantles` / `maxDismantleShare` replace them for its run.
   */
  readonly dismantleGuard: DismantleLimits;
  /**
   * `MAX_BYTES_PER_SECOND`: a cap on the bytes this process reads from the tokens service (every
   * file and JSON body, across lines), over any one-second window. Undefined: no cap.
   */
  readonly maxBytesPerSecond: number | undefined;
  /** When set, S3 is a local or third-party endpoint: use path-style addressing. */
  readonly s3EndpointOverride: string | undefined;
  readonly secretsEndpointOverride: string | undefined;
  /** Bounds of the list of lines: a list that goes on past them fails the run. */
  readonly listing: {
    /** `LIST_MAX_PAGES`: most pages one listing may take. */
    readonly maxPages: number;
    /** `LIST_MAX_EMPTY_PAGES`: most pages without items in a row. */
    readonly maxEmptyPages: number;
  };
  /** A floor on download speed, like curl's `--speed-limit`/`--speed-time`. */
  readonly download: {
    /** `DOWNLOAD_MIN_SPEED_BYTES`: a body slower than this (bytes/s) over a window fails the attempt; 0 disables. */
    readonly minSpeedBytesPerSecond: number;
    /** `DOWNLOAD_SPEED_WINDOW_SECONDS`, as ms: the window the speed is averaged over. */
    readonly speedWindowMs: number;
  };
}

/** The guard's settings for one run (the environment's, or an operator's event). */
export interface DismantleLimits {
  /** Most lines one run may dismantle; undefined: no cap. */
  readonly maxPerRun: number | undefined;
  /** Largest share of finished lines in a listing that may be dismantled from; undefined: no check. */
  readonly maxShare: number | undefined;
  /** The share is judged only for listings of at least this many lines. */
  readonly shareMinLines: number;
}

/** The part of the configuration that only concerns the archive (audit and restore need no more). */
export type ArchiveConfig = Pick<
  Config,
  'archiveBucket' | 'archivePrefix' | 's3EndpointOverride' | 'http' | 'upload'
>;

/** What a restore drill audits (see docs/operations.md, "Restore drills"). */
export interface DrillSettings {
  /** `DRILL_SAMPLE_SIZE`: archived lines drawn at random besides the recent ones; 0: none. */
  readonly sampleSize: number;
  /** `DRILL_MAX_LINES`: the most lines one drill audits, recent and sampled together. */
  readonly maxLines: number;
  /** `DRILL_RECENT_LINES`: also every line archived since the last drill, oldest first. */
  readonly recentLines: boolean;
}

/** The restore drill function's configuration: the archive's, its settings, and its deadline reserve. */
export interface DrillConfig extends ArchiveConfig, Pick<Config, 'deadlineReserveMs'> {
  readonly drill: DrillSettings;
}

/** What the fan-out planner needs besides the {@link Config}: where to send work, and when not to. */
export interface FanoutConfig {
  /** URL of the work queue (`QUEUE_URL`). */
  readonly queueUrl: string;
  /** A line whose queued marker is younger than this is not enqueued again. */
  readonly queueMarkerTtlMs: number;
  /** When set, SQS is a local endpoint (tests): requests go there whatever the queue URL's host. */
  readonly sqsEndpointOverride: string | undefined;
}

/** The fan-out planner's configuration: the pass's, plus the work queue. */
export interface PlannerConfig extends Config {
  readonly fanout: FanoutConfig;
}
