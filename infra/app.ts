import { App, Duration, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { parseDuration } from '../lambda/shared/duration.ts';
import { parseTokensApiUrl } from '../lambda/shared/tokens-api-url.ts';
import { HousekeepingStack, type HousekeepingStackProps } from './housekeeping-stack.ts';

/**
 * The CDK app: reads the deployment's parameters from context (`-c key=value`), creates the
 * stack and runs the AWS Solutions checks of cdk-nag on every synth.
 */

const REQUIRED = ['tokensApiUrl', 'sessionKeySecret'] as const;
const USAGE =
  'usage: npx cdk deploy -c tokensApiUrl=https://tokens.example.com -c sessionKeySecret=<secret name or ARN> ' +
  '[-c schedule="rate(1 hour)"] [-c bucketName=<existing bucket>] [-c archivePrefix=tokens/] ' +
  '[-c alarmEmail=ops@example.com] [-c memorySize=1024] [-c timeoutMinutes=15] [-c lineConcurrency=8] ' +
  '[-c minAge=24h] [-c maxRequestsPerSecond=10] [-c maxBytesPerSecond=8388608] ' +
  '[-c maxDismantlesPerRun=<lines>] [-c maxDismantleShare=0.5] [-c maxDismantleShareMinLines=20] ' +
  '[-c archiveTransitionDays=<days>] [-c objectLockRetentionDays=<days>] [-c stackName=TokensHousekeeper] ' +
  '[-c archiveEncryption=s3|kms] [-c archiveKmsKeyArn=<key ARN>] ' +
  '[-c mode=single|fanout] [-c workerMaxConcurrency=8] [-c workerBatchSize=4] [-c workerTimeoutMinutes=15] ' +
  '[-c restoreDrills=on|off] [-c restoreDrillSchedule="rate(1 day)"] [-c restoreDrillSampleSize=20] ' +
  '[-c restoreDrillMaxLines=200] [-c restoreDrillRecentLines=on|off]';

class ContextError extends Error {
  override readonly name = 'ContextError';
}

const app = new App();

function text(key: string): string | undefined {
  const value: unknown = app.node.tryGetContext(key);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' && typeof value !== 'number') {
    throw new ContextError(`context "${key}" must be a string, got ${JSON.stringify(value)}`);
  }
  const trimmed = String(value).trim();
  return trimmed === '' ? undefined : trimmed;
}

function wholeNumber(key: string): number | undefined {
  const raw = text(key);
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw new ContextError(`context "${key}" must be a whole number, got "${raw}"`);
  return Number(raw);
}

/** A share such as `0.5`; the stack checks its range. */
function decimal(key: string): number | undefined {
  const raw = text(key);
  if (raw === undefined) return undefined;
  // The function's own form of a share (MAX_DISMANTLE_SHARE): `01` is refused, not read as 1.
  if (!/^(0|1)?(\.\d+)?$/.test(raw) || raw === '.') {
    throw new ContextError(`context "${key}" must be a number such as 0.5, got "${raw}"`);
  }
  return Number(raw);
}

/** A switch: `on`/`true` or `off`/`false`. */
function onOff(key: string): boolean | undefined {
  const raw = text(key);
  if (raw === undefined) return undefined;
  const value = raw.toLowerCase();
  if (value === 'on' || value === 'true') return true;
  if (value === 'off' || value === 'false') return false;
  throw new ContextError(`context "${key}" must be on or off, got "${raw}"`);
}

function propsFromContext(): HousekeepingStackProps {
  const missing = REQUIRED.filter((key) => text(key) === undefined);
  if (missing.length > 0) {
    throw new ContextError(
      `missing required context ${missing.map((key) => `"${key}"`).join(' and ')}.\n${USAGE}`,
    );
  }
  const tokensApiUrl = text('tokensApiUrl') ?? '';
  const verdict = parseTokensApiUrl(tokensApiUrl);
  if ('problem' in verdict) throw new ContextError(`context "tokensApiUrl" ${verdict.problem}`);
  const timeoutMinutes = wholeNumber('timeoutMinutes');
  const minAgeText = text('minAge');
  const minAgeSeconds = minAgeText === undefined ? undefined : parseDuration(minAgeText);
  if (minAgeText !== undefined && minAgeSeconds === undefined) {
    throw new ContextError(
      `context "minAge" must be a duration such as 30m, 24h, 7d or seconds, got "${minAgeText}"`,
    );
  }
  const workerTimeoutMinutes = wholeNumber('workerTimeoutMinutes');
  const mode = text('mode');
  if (mode !== undefined && mode !== 'single' && mode !== 'fanout') {
    throw new ContextError(`context "mode" must be "single" or "fanout", got "${mode}"`);
  }
  return {
    tokensApiUrl,
    sessionKeySecret: text('sessionKeySecret') ?? '',
    scheduleExpression: text('schedule'),
    bucketName: text('bucketName'),
    archivePrefix: text('archivePrefix'),
    alarmEmail: text('alarmEmail'),
    memorySize: wholeNumber('memorySize'),
    timeout: timeoutMinutes === undefined ? undefined : Duration.minutes(timeoutMinutes),
    lineConcurrency: wholeNumber('lineConcurrency'),
    minAge: minAgeSeconds === undefined ? undefined : Duration.seconds(minAgeSeconds),
    maxRequestsPerSecond: wholeNumber('maxRequestsPerSecond'),
    maxDismantlesPerRun: wholeNumber('maxDismantlesPerRun'),
    maxDismantleShare: decimal('maxDismantleShare'),
    maxDismantleShareMinLines: wholeNumber('maxDismantleShareMinLines'),
    maxBytesPerSecond: wholeNumber('maxBytesPerSecond'),
    archiveTransitionDays: wholeNumber('archiveTransitionDays'),
    objectLockRetentionDays: wholeNumber('objectLockRetentionDays'),
    // Checked by the stack (infra/settings.ts), which names what is wrong.
    archiveEncryption: text('archiveEncryption') as HousekeepingStackProps['archiveEncryption'],
    archiveKmsKeyArn: text('archiveKmsKeyArn'),
    mode,
    workerMaxConcurrency: wholeNumber('workerMaxConcurrency'),
    workerBatchSize: wholeNumber('workerBatchSize'),
    workerTimeout: workerTimeoutMinutes === undefined ? undefined : Duration.minutes(workerTimeoutMinutes),
    restoreDrills: onOff('restoreDrills'),
    restoreDrillSchedule: text('restoreDrillSchedule'),
    restoreDrillSampleSize: wholeNumber('restoreDrillSampleSize'),
    restoreDrillMaxLines: wholeNumber('restoreDrillMaxLines'),
    restoreDrillRecentLines: onOff('restoreDrillRecentLines'),
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
    description: 'tokens-housekeeper: scheduled archive-then-dismantle of finished tokens lines',
  };
}

let props: HousekeepingStackProps;
try {
  props = propsFromContext();
} catch (error) {
  if (error instanceof ContextError) {
    console.error(`infra/app.ts: ${error.message}`);
    process.exit(1);
  }
  throw error;
}

new HousekeepingStack(app, text('stackName') ?? 'TokensHousekeeper', props);
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
app.synth();
