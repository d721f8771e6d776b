import { Duration } from 'aws-cdk-lib';
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
  DEFAULT_DRILL_SCHEDULE,
  DEFAULT_MODE,
  DEFAULT_SCHEDULE,
  DEFAULT_TIMEOUT,
  DEFAULT_WORKER_BATCH_SIZE,
  DEFAULT_WORKER_MAX_CONCURRENCY,
  type FanoutSettings,
  type HousekeepingStackProps,
  type RestoreDrillSettings,
  type Settings,
  VISIBILITY_TIMEOUTS_PER_WORKER_TIMEOUT,
  WORK_MAX_RECEIVE_COUNT,
} from './settings.ts';
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
 * {@link resolveSettings}: the one place a prop is checked and defaulted, so the constructs below
 * only ever see complete, valid {@link Settings}.
 */

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
