import { Duration, type StackProps } from 'aws-cdk-lib';
import {
  archivePrefixProblem,
  DEFAULT_ARCHIVE_PREFIX,
  DEFAULT_DRILL_MAX_LINES,
  DEFAULT_DRILL_SAMPLE_SIZE,
  DEFAULT_LINE_CONCURRENCY,
  DRILL_MAX_LINES_RANGE,
  DRILL_SAMPLE_SIZE_RANGE,
  downloadsAtOnce,
  LINE_CONCURRENCY_RANGE,
  MAX_BYTES_PER_SECOND_RANGE,
  MAX_DISMANTLES_RANGE,
  MAX_REQUESTS_PER_SECOND_RANGE,
  smallestByteCap,
} from '../lambda/shared/contract.ts';
import { VARIABLES as V } from '../lambda/shared/environment.ts';
import { DEFAULT_MEMORY_SIZE } from './function-runtime.ts';
import {
  fail,
  integerBetween,
  optionalIntegerIn,
  positiveDays,
  tokensApiUrl,
  upTo15Minutes,
  wholeSeconds,
} from './settings-checks.ts';

/**
 * The stack's props, their defaults, and {@link resolveSettings}: the one place a prop is checked
 * and defaulted, so the constructs below only ever see complete, valid {@link Settings}.
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
const VISIBILITY_TIMEOUTS_PER_WORKER_TIMEOUT = 6;

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
  /** Lines handled in parallel within one pass. @default 8 (DEFAULT_LINE_CONCURRENCY) */
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
   * least 256 KiB per line at once plus one (`lineConcurrency`; 2.25 MiB for eight); in fan-out
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

/** Defaults applied and every prop checked, so a mistake fails the synth and names the prop. */
export function resolveSettings(props: HousekeepingStackProps): Settings {
  tokensApiUrl('tokensApiUrl', props.tokensApiUrl);
  if (props.sessionKeySecret.trim() === '') fail('sessionKeySecret is empty');

  const scheduleExpression = props.scheduleExpression ?? DEFAULT_SCHEDULE;
  if (!/^(rate|cron|at)\(.+\)$/.test(scheduleExpression)) {
    fail(`scheduleExpression must be rate(...), cron(...) or at(...), got "${scheduleExpression}"`);
  }
  const restoreDrills = restoreDrillSettings(props, fail, integerBetween);

  // The function's rule, with the stack's on top (`iam`): no empty prefix and no `*`, because the
  // grant is scoped to `{prefix}*` (lambda/shared/contract.ts).
  const archivePrefix = props.archivePrefix ?? DEFAULT_ARCHIVE_PREFIX;
  const prefixProblem = archivePrefixProblem(archivePrefix, { iam: true });
  if (prefixProblem !== undefined) fail(`archivePrefix ${prefixProblem}`);

  const memorySize = integerBetween('memorySize', props.memorySize ?? DEFAULT_MEMORY_SIZE, 128, 10240, ' MB');
  const timeout = upTo15Minutes('timeout', props.timeout ?? DEFAULT_TIMEOUT);
  // The function's own ranges (lambda/shared/contract.ts): a value it would refuse on every run
  // fails the synth instead.
  const lineConcurrency = integerBetween(
    'lineConcurrency',
    props.lineConcurrency ?? DEFAULT_LINE_CONCURRENCY,
    LINE_CONCURRENCY_RANGE.min,
    LINE_CONCURRENCY_RANGE.max,
  );

  const minAge = wholeSeconds('minAge', props.minAge);
  const maxRequestsPerSecond = optionalIntegerIn(
    'maxRequestsPerSecond',
    props.maxRequestsPerSecond,
    MAX_REQUESTS_PER_SECOND_RANGE,
  );
  const maxBytesPerSecond = optionalIntegerIn(
    'maxBytesPerSecond',
    props.maxBytesPerSecond,
    MAX_BYTES_PER_SECOND_RANGE,
  );
  const fanout = fanoutSettings(props, timeout);
  // The function's rule for the downloads it runs at once (FILE_CONCURRENCY stays 1 in the stack):
  // a smaller cap would be refused at every cold start.
  const smallestCap = smallestByteCap(downloadsAtOnce(lineConcurrency, 1));
  if (maxBytesPerSecond !== undefined && maxBytesPerSecond < smallestCap) {
    fail(
      `maxBytesPerSecond ${maxBytesPerSecond} is too small for lineConcurrency ${lineConcurrency}: at least ${smallestCap} ` +
        '(each download reads up to 128 KiB off its socket before the cap can hold it back); raise it or lower lineConcurrency',
    );
  }

  return {
    tokensApiUrl: props.tokensApiUrl,
    sessionKeySecret: props.sessionKeySecret,
    scheduleExpression,
    bucketName: props.bucketName,
    archivePrefix,
    alarmEmail: props.alarmEmail,
    memorySize,
    timeout,
    lineConcurrency,
    minAge,
    maxRequestsPerSecond,
    dismantleGuard: dismantleGuardVariables(props, fail),
    maxBytesPerSecond,
    archiveTransitionDays: positiveDays(
      'archiveTransitionDays',
      props.archiveTransitionDays,
      props.bucketName,
    ),
    objectLockRetentionDays: positiveDays(
      'objectLockRetentionDays',
      props.objectLockRetentionDays,
      props.bucketName,
    ),
    archiveEncryption: archiveEncryption(props, fail),
    fanout,
    restoreDrills,
  };
}

/**
 * {@link Settings.fanout} from `mode` and the `worker...` props, checked (the worker timeout
 * defaults to `timeout`); a `worker...` prop outside mode `fanout` fails.
 */
function fanoutSettings(props: HousekeepingStackProps, timeout: Duration): FanoutSettings | undefined {
  const mode = props.mode ?? DEFAULT_MODE;
  if (mode !== 'single' && mode !== 'fanout') {
    fail(`mode must be "single" or "fanout", got "${String(mode)}"`);
  }
  const fanoutOnly = <T>(name: string, value: T | undefined): T | undefined => {
    if (value !== undefined && mode !== 'fanout') {
      fail(`${name} applies only to mode "fanout"; remove it or set mode`);
    }
    return value;
  };
  const batchSize = integerBetween(
    'workerBatchSize',
    fanoutOnly('workerBatchSize', props.workerBatchSize) ?? DEFAULT_WORKER_BATCH_SIZE,
    1,
    10,
  );
  const maxConcurrency = integerBetween(
    'workerMaxConcurrency',
    fanoutOnly('workerMaxConcurrency', props.workerMaxConcurrency) ?? DEFAULT_WORKER_MAX_CONCURRENCY,
    2,
    1000,
  );
  const workerTimeout = upTo15Minutes(
    'workerTimeout',
    fanoutOnly('workerTimeout', props.workerTimeout) ?? timeout,
  );
  const visibilityTimeout = Duration.seconds(
    workerTimeout.toSeconds() * VISIBILITY_TIMEOUTS_PER_WORKER_TIMEOUT,
  );
  return mode === 'fanout'
    ? {
        batchSize,
        maxConcurrency,
        workerTimeout,
        visibilityTimeout,
        markerTtl: Duration.seconds(visibilityTimeout.toSeconds() * WORK_MAX_RECEIVE_COUNT),
      }
    : undefined;
}

/** The dismantle guard's environment from its props, each checked against the function's own range. */
function dismantleGuardVariables(
  props: HousekeepingStackProps,
  fail: (message: string) => never,
): Record<string, string> {
  const { maxDismantlesPerRun: cap, maxDismantleShare: share, maxDismantleShareMinLines: minLines } = props;
  const variables: Record<string, string> = {};
  if (cap !== undefined) {
    if (!Number.isInteger(cap) || cap < MAX_DISMANTLES_RANGE.min || cap > MAX_DISMANTLES_RANGE.max) {
      fail(
        `maxDismantlesPerRun must be an integer between ${MAX_DISMANTLES_RANGE.min} and ${MAX_DISMANTLES_RANGE.max}, got ${cap}`,
      );
    }
    variables[V.MAX_DISMANTLES_PER_RUN.name] = String(cap);
  }
  if (share !== undefined) {
    if (!(share > 0 && share <= 1)) fail(`maxDismantleShare must be above 0 and at most 1, got ${share}`);
    // The function reads a plain decimal; a share under 0.000001 would be written as `1e-7`.
    if (String(share).includes('e')) {
      fail(`maxDismantleShare must be at least 0.000001 (written as a decimal), got ${share}`);
    }
    variables[V.MAX_DISMANTLE_SHARE.name] = String(share);
  }
  if (minLines !== undefined) {
    if (share === undefined)
      fail('maxDismantleShareMinLines applies only with maxDismantleShare; set it or remove this');
    const { min, max } = V.MAX_DISMANTLE_SHARE_MIN_LINES.range;
    if (!Number.isInteger(minLines) || minLines < min || minLines > max) {
      fail(`maxDismantleShareMinLines must be an integer between ${min} and ${max}, got ${minLines}`);
    }
    variables[V.MAX_DISMANTLE_SHARE_MIN_LINES.name] = String(minLines);
  }
  return variables;
}

/** {@link Settings.restoreDrills} from `restoreDrills` and the `restoreDrill...` props, checked. */
function restoreDrillSettings(
  props: HousekeepingStackProps,
  fail: (message: string) => never,
  integerBetween: (name: string, value: number, min: number, max: number) => number,
): RestoreDrillSettings | undefined {
  const given = (
    [
      'restoreDrillSchedule',
      'restoreDrillSampleSize',
      'restoreDrillMaxLines',
      'restoreDrillRecentLines',
    ] as const
  ).filter((name) => props[name] !== undefined);
  if (props.restoreDrills === false) {
    if (given.length > 0)
      fail(`${given.join(', ')} applies only with restoreDrills; remove it or restoreDrills: false`);
    return undefined;
  }
  const scheduleExpression = props.restoreDrillSchedule ?? DEFAULT_DRILL_SCHEDULE;
  if (!/^(rate|cron|at)\(.+\)$/.test(scheduleExpression)) {
    fail(`restoreDrillSchedule must be rate(...), cron(...) or at(...), got "${scheduleExpression}"`);
  }
  // The function's own ranges (lambda/shared/contract.ts): a value it would refuse fails the synth.
  const sampleSize = integerBetween(
    'restoreDrillSampleSize',
    props.restoreDrillSampleSize ?? DEFAULT_DRILL_SAMPLE_SIZE,
    DRILL_SAMPLE_SIZE_RANGE.min,
    DRILL_SAMPLE_SIZE_RANGE.max,
  );
  const maxLines = integerBetween(
    'restoreDrillMaxLines',
    props.restoreDrillMaxLines ?? Math.max(DEFAULT_DRILL_MAX_LINES, sampleSize),
    DRILL_MAX_LINES_RANGE.min,
    DRILL_MAX_LINES_RANGE.max,
  );
  if (sampleSize > maxLines) {
    fail(`restoreDrillSampleSize ${sampleSize} does not fit in restoreDrillMaxLines ${maxLines}`);
  }
  const recentLines = props.restoreDrillRecentLines ?? true;
  if (sampleSize === 0 && !recentLines) {
    fail(
      'restoreDrillSampleSize 0 with restoreDrillRecentLines false leaves a drill nothing to audit; use restoreDrills: false',
    );
  }
  return { scheduleExpression, sampleSize, maxLines, recentLines };
}

/** A KMS key ARN (a key, not an alias: IAM grants name the key). */
const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/;

/** {@link Settings.archiveEncryption} from `archiveEncryption` and `archiveKmsKeyArn`, checked. */
function archiveEncryption(
  props: Pick<HousekeepingStackProps, 'archiveEncryption' | 'archiveKmsKeyArn' | 'bucketName'>,
  fail: (message: string) => never,
): Settings['archiveEncryption'] {
  const { archiveKmsKeyArn: keyArn, bucketName } = props;
  const kind = props.archiveEncryption ?? (keyArn === undefined ? 's3' : 'kms');
  if (kind !== 's3' && kind !== 'kms') fail(`archiveEncryption must be "s3" or "kms", got "${String(kind)}"`);
  if (keyArn !== undefined && !KMS_KEY_ARN.test(keyArn)) {
    fail(`archiveKmsKeyArn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), got "${keyArn}"`);
  }
  if (kind === 's3') {
    if (keyArn !== undefined) fail('archiveKmsKeyArn applies only with archiveEncryption "kms"');
    return { kind };
  }
  if (keyArn === undefined && bucketName !== undefined) {
    fail(
      'archiveEncryption "kms" with an existing bucket needs archiveKmsKeyArn, the key that bucket encrypts with: ' +
        "the stack cannot change an existing bucket's encryption",
    );
  }
  return keyArn === undefined ? { kind } : { kind, keyArn };
}
