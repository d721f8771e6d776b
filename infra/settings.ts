import { Duration, type StackProps } from 'aws-cdk-lib';
import { DEFAULT_ARCHIVE_PREFIX, DEFAULT_LINE_CONCURRENCY } from '../lambda/shared/contract.ts';
import { DEFAULT_MEMORY_SIZE } from './function-runtime.ts';

/**
 * The stack's props, their defaults, and what they resolve to ({@link Settings}); the props are
 * checked and defaulted in `resolve-settings.ts`.
 */

/** Default of {@link HousekeepingStackProps.scheduleExpression}. */
export const DEFAULT_SCHEDULE = 'rate(1 hour)';
/** Default of {@link HousekeepingStackProps.timeout}: the most Lambda allows. */
export const DEFAULT_TIMEOUT = Duration.minutes(15);
/** Default of {@link HousekeepingStackProps.mode}. */
export const DEFAULT_MODE = 'single';
/** Fan-out: worker invocations at once (the event source mapping's maximum concurrency). */
export const DEFAULT_WORKER_MAX_CONCURRENCY = 8;
/** Fan-out: messages, so lines, per worker invocation; as many as a worker handles at once by default. */
export const DEFAULT_WORKER_BATCH_SIZE = 4;
/** Fan-out: receives of a work message before SQS moves it to the worker dead-letter queue. */
export const WORK_MAX_RECEIVE_COUNT = 3;
/** Default of {@link HousekeepingStackProps.restoreDrillSchedule}: a restore drill a day. */
export const DEFAULT_DRILL_SCHEDULE = 'rate(1 day)';
/** AWS's guidance for SQS event sources: a visibility timeout of at least six function timeouts. */
export const VISIBILITY_TIMEOUTS_PER_WORKER_TIMEOUT = 6;

/** The other defaults, which the function shares: kept where both sides read them, listed here too. */
export { DEFAULT_ARCHIVE_PREFIX, DEFAULT_LINE_CONCURRENCY, DEFAULT_MEMORY_SIZE };

/** What the stack is told: where the service and its key are, and how to archive. */
export interface HousekeepingStackProps extends StackProps {
  /** Base URL of the tokens service; must be https. Required. */
  readonly tokensApiUrl: string;
  /**
   * Secrets Manager secret holding the session key: a name (`tokens/session-key`) or an ARN.
   * A complete ARN ends with the 6-character suffix Secrets Manager adds (`-AbC123`); an ARN
   * without it is treated as a partial ARN. Required.
   */
  readonly sessionKeySecret: string;
  /** EventBridge Scheduler expression: `rate(...)`, `cron(...)` or `at(...)`. @default rate(1 hour) */
  readonly scheduleExpression?: string;
  /**
   * Archive into this existing bucket instead of creating one. The stack then manages neither its
   * configuration (versioning, lifecycle, logging, Object Lock) nor its lifetime.
   * @default - a bucket is created and retained
   */
  readonly bucketName?: string;
  /**
   * Key prefix of all archived objects; ends with `/`. Unlike the function, the stack refuses an
   * empty prefix and a `*`: its IAM grant is scoped to `{prefix}*`. @default tokens/
   */
  readonly archivePrefix?: string;
  /** Subscribe this address to the alarm topic. @default - no subscription */
  readonly alarmEmail?: string;
  /** Function memory in MB. @default 1024 */
  readonly memorySize?: number;
  /** Function timeout, at most 15 minutes. @default 15 minutes */
  readonly timeout?: Duration;
  /** Lines handled in parallel within one pass. @default 16 (DEFAULT_LINE_CONCURRENCY) */
  readonly lineConcurrency?: number;
  /**
   * A grace period (`MIN_AGE`): a line finished more recently waits for a later run. Whole seconds.
   * @default - none: every finished line is taken
   */
  readonly minAge?: Duration;
  /**
   * A cap on the requests each function process sends to the tokens service
   * (`MAX_REQUESTS_PER_SECOND`), retries included; in fan-out mode the service sees up to
   * `workerMaxConcurrency` times this.
   * @default - no cap
   */
  readonly maxRequestsPerSecond?: number;
  /**
   * The dismantle guard (`MAX_DISMANTLES_PER_RUN`): at most this many lines dismantled in one run;
   * the rest are archived and held for the next. Suggested: about twice the lines a run usually
   * dismantles. In fan-out mode the planner gives the leave for the whole run.
   * @default - no cap
   */
  readonly maxDismantlesPerRun?: number;
  /**
   * The dismantle guard (`MAX_DISMANTLE_SHARE`): a run whose listing shows more than this share
   * (above 0, at most 1) of its lines finished at once dismantles nothing, as after a service bug or
   * with the wrong account. @default - no check
   */
  readonly maxDismantleShare?: number;
  /** The share is judged on listings of at least this many lines (`MAX_DISMANTLE_SHARE_MIN_LINES`). @default 20 */
  readonly maxDismantleShareMinLines?: number;
  /**
   * A cap on the bytes each function process reads from the tokens service, every file and JSON
   * reply together, over any one-second window (`MAX_BYTES_PER_SECOND`), 1024 to 10 GiB and at
   * least 256 KiB per line at once plus one (`lineConcurrency`; 4.25 MiB for sixteen); in fan-out
   * mode the service sees up to `workerMaxConcurrency` times this.
   * @default - no cap
   */
  readonly maxBytesPerSecond?: number;
  /** Move archived objects to Glacier Instant Retrieval after this many days. @default - no transition */
  readonly archiveTransitionDays?: number;
  /**
   * Enable S3 Object Lock on the created bucket with this default retention in governance mode.
   * Only possible when the stack creates the bucket, and only at creation.
   * @default - no Object Lock
   */
  readonly objectLockRetentionDays?: number;
  /**
   * How the archive is encrypted at rest: `s3` (S3-managed keys) or `kms` (SSE-KMS with S3 Bucket
   * Keys, with a customer managed key the stack creates, with rotation, unless
   * `archiveKmsKeyArn` names one). The functions are granted `kms:GenerateDataKey` and
   * `kms:Decrypt` on that key, nothing else. @default s3, or kms when `archiveKmsKeyArn` is set
   */
  readonly archiveEncryption?: 's3' | 'kms';
  /**
   * An existing KMS key (its key ARN, not an alias) to encrypt the archive with. With
   * `bucketName`, the key the existing bucket already encrypts with: the stack only grants it.
   * @default - a key created by the stack when `archiveEncryption` is kms
   */
  readonly archiveKmsKeyArn?: string;
  /**
   * `single`: the scheduled function runs the whole pass. `fanout`: it is a planner that sends one
   * SQS message per finished line, and a worker function archives and dismantles each line.
   * @default single
   */
  readonly mode?: 'single' | 'fanout';
  /** Fan-out only: at most this many worker invocations at once (2 to 1000). @default 8 */
  readonly workerMaxConcurrency?: number;
  /** Fan-out only: messages (lines) per worker invocation (1 to 10). @default 4 */
  readonly workerBatchSize?: number;
  /** Fan-out only: the worker's timeout, at most 15 minutes. @default - the function timeout */
  readonly workerTimeout?: Duration;
  /**
   * Scheduled restore drills: a function of their own, on a schedule of their own, re-reads a
   * sample of archived lines and the lines archived since the last drill, and reports under
   * `{prefix}_drills/`, in the `DrillFindings` metric and its alarm. `false` creates none of it.
   * @default true
   */
  readonly restoreDrills?: boolean;
  /** The drills' EventBridge Scheduler expression. @default rate(1 day) */
  readonly restoreDrillSchedule?: string;
  /** Archived lines a drill draws at random (0 to 10,000; 0: only recent lines). @default 20 */
  readonly restoreDrillSampleSize?: number;
  /** The most lines one drill audits, recent and sampled together (1 to 10,000). @default 200 */
  readonly restoreDrillMaxLines?: number;
  /** Whether a drill also audits every line archived since the last drill. @default true */
  readonly restoreDrillRecentLines?: boolean;
}

/** The props with every default applied and every value checked; each field is the prop of the same name. */
export interface Settings {
  readonly tokensApiUrl: string;
  readonly sessionKeySecret: string;
  readonly scheduleExpression: string;
  /** An existing bucket to archive into, or undefined to create one. */
  readonly bucketName: string | undefined;
  readonly archivePrefix: string;
  readonly alarmEmail: string | undefined;
  readonly memorySize: number;
  readonly timeout: Duration;
  readonly lineConcurrency: number;
  readonly minAge: Duration | undefined;
  readonly maxRequestsPerSecond: number | undefined;
  /** The dismantle guard's variables, only those the props set. */
  readonly dismantleGuard: Readonly<Record<string, string>>;
  readonly maxBytesPerSecond: number | undefined;
  readonly archiveTransitionDays: number | undefined;
  readonly objectLockRetentionDays: number | undefined;
  /** `s3`; or `kms`, with the existing key's ARN (`keyArn`), or none: the stack creates one. */
  readonly archiveEncryption: { readonly kind: 's3' } | { readonly kind: 'kms'; readonly keyArn?: string };
  /** Only in mode `fanout`: what `mode` and the `worker...` props resolve to. */
  readonly fanout: FanoutSettings | undefined;
  /** Unless `restoreDrills` is false: what the `restoreDrill...` props resolve to. */
  readonly restoreDrills: RestoreDrillSettings | undefined;
}

/** The restore drill part of {@link Settings}, each field the prop `restoreDrill{Field}`. */
export interface RestoreDrillSettings {
  readonly scheduleExpression: string;
  readonly sampleSize: number;
  readonly maxLines: number;
  readonly recentLines: boolean;
}

/** The fan-out part of {@link Settings}. */
export interface FanoutSettings {
  /** `workerBatchSize`. */
  readonly batchSize: number;
  /** `workerMaxConcurrency`. */
  readonly maxConcurrency: number;
  /** `workerTimeout`, or the function timeout. */
  readonly workerTimeout: Duration;
  /** {@link VISIBILITY_TIMEOUTS_PER_WORKER_TIMEOUT} worker timeouts. */
  readonly visibilityTimeout: Duration;
  /**
   * How long the planner treats a line as queued: as long as its message can be in the queue
   * between deliveries, `maxReceiveCount` visibility timeouts; after that it is done or dead-lettered.
   */
  readonly markerTtl: Duration;
}
