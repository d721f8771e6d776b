import { Duration } from 'aws-cdk-lib';
import { describe, expect, it } from 'vitest';
import type { HousekeepingStackProps } from '../../infra/housekeeping-stack.ts';
import { synthesizer } from './synth.ts';

/**
 * The whole template of representative stacks, compared with a committed snapshot, so a change to
 * infra/ that changes what is deployed shows in review as a diff of the template. Values that change
 * from one build or machine to another (asset hashes, the S3 keys and paths of assets) are masked.
 * To accept a change: `npx vitest run test/infra/templates.test.ts -u`, and commit the snapshots.
 */

const synth = synthesizer();
const KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6';

/** The stacks whose templates are kept, by snapshot name: each option group of infra/settings.ts once. */
const STACKS: Record<string, Partial<HousekeepingStackProps>> = {
  // Single mode with every default: S3-managed keys, restore drills on.
  default: {},
  // The planner, the work queue and the worker, with its own concurrency and batch size.
  fanout: {
    mode: 'fanout',
    workerMaxConcurrency: 20,
    workerBatchSize: 2,
    workerTimeout: Duration.minutes(5),
  },
  // No restore drills: the pass alone.
  'no-restore-drills': { restoreDrills: false },
  // A created KMS key, Object Lock, a transition, an alarm address, the guards and caps, drills tuned.
  'kms-and-options': {
    archiveEncryption: 'kms',
    objectLockRetentionDays: 365,
    archiveTransitionDays: 30,
    alarmEmail: 'ops@example.com',
    scheduleExpression: 'cron(15 2 * * ? *)',
    memorySize: 2048,
    timeout: Duration.minutes(10),
    lineConcurrency: 4,
    minAge: Duration.hours(24),
    maxRequestsPerSecond: 5,
    maxBytesPerSecond: 8 * 1024 * 1024,
    maxDismantlesPerRun: 50,
    maxDismantleShare: 0.5,
    maxDismantleShareMinLines: 40,
    restoreDrillSchedule: 'cron(30 3 * * ? *)',
    restoreDrillSampleSize: 5,
    restoreDrillMaxLines: 50,
    restoreDrillRecentLines: false,
  },
  // An existing bucket encrypted with a named key, another prefix, in fan-out mode.
  'existing-bucket-fanout': {
    bucketName: 'existing-archive',
    archivePrefix: 'archive/',
    archiveKmsKeyArn: KEY_ARN,
    mode: 'fanout',
  },
};

/** An asset's content hash: 64 hex digits, in an S3 key (`{hash}.zip`) or an asset path. */
const ASSET_HASH = /\b[0-9a-f]{64}\b/g;

/** The template as JSON text, with what depends on the build (the assets' hashes) masked. */
function stableTemplate(template: unknown): string {
  return `${JSON.stringify(template, null, 2).replace(ASSET_HASH, '<asset-hash>')}\n`;
}

describe('the synthesized templates', () => {
  it.each(Object.entries(STACKS))('match the committed snapshot of the %s stack', async (name, props) => {
    const { template } = synth(props);

    await expect(stableTemplate(template.toJSON())).toMatchFileSnapshot(
      `./__snapshots__/templates/${name}.template.json`,
    );
  });
});
