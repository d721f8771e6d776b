import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type { Construct } from 'constructs';
import { ARCHIVE_FOLDERS } from '../../lambda/shared/contract.ts';
import { VARIABLES as V } from '../../lambda/shared/environment.ts';
import type { RestoreDrillSettings, Settings } from '../settings.ts';
import { grantDrillAccess } from './function-grants.ts';
import { FUNCTION_BASE, LAMBDA_ENTRIES, PROJECT_ROOT, runtimeEnvironment } from './housekeeper-function.ts';
import { createSchedule, type ScheduleQueues } from './schedule.ts';

/** The restore drills: their function and their schedule. */
export interface RestoreDrillResources {
  /** Re-reads a sample of the archive; may read the archive and write under `{prefix}_drills/` only. */
  readonly fn: NodejsFunction;
  /** Invokes {@link fn} on the drill schedule. */
  readonly schedule: scheduler.Schedule;
}

/**
 * The restore drill function (`DrillFunction`, its own log group and role) and its schedule
 * (`DrillSchedule`, with `DrillSchedulerRole`). The function gets neither the tokens service's
 * address nor the session key, nor any grant on them: it cannot DELETE a line. Its failures go
 * where the pass's go: the schedule dead-letter queue and the failure queue, both alarmed on.
 */
export function createRestoreDrills(
  scope: Construct,
  settings: Settings,
  drills: RestoreDrillSettings,
  bucket: s3.IBucket,
  queues: ScheduleQueues,
): RestoreDrillResources {
  const logGroup = new logs.LogGroup(scope, 'DrillFunctionLogs', {
    retention: logs.RetentionDays.THREE_MONTHS,
    removalPolicy: RemovalPolicy.RETAIN,
  });
  const role = new iam.Role(scope, 'DrillFunctionRole', {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: 'tokens-housekeeper restore drill: read the archive, write drill reports, write its logs',
  });
  logGroup.grantWrite(role);
  const fn = new NodejsFunction(scope, 'DrillFunction', {
    ...FUNCTION_BASE,
    entry: `${PROJECT_ROOT}lambda/entries/${LAMBDA_ENTRIES.drill}.ts`,
    description: `Restore drill: re-reads archived tokens lines in full against their manifests and receipts, reports under ${ARCHIVE_FOLDERS.drills}`,
    memorySize: settings.memorySize,
    // The drill keeps DEADLINE_RESERVE_MS of it to write its report: lines it does not reach are reported.
    timeout: settings.timeout,
    role,
    logGroup,
    // One drill at a time; like the pass, a failed drill is not retried (the next one runs as planned).
    reservedConcurrentExecutions: 1,
    retryAttempts: 0,
    maxEventAge: Duration.hours(1),
    onFailure: new destinations.SqsDestination(queues.failureQueue),
    environment: {
      [V.ARCHIVE_BUCKET.name]: bucket.bucketName,
      [V.ARCHIVE_PREFIX.name]: settings.archivePrefix,
      [V.DRILL_SAMPLE_SIZE.name]: String(drills.sampleSize),
      [V.DRILL_MAX_LINES.name]: String(drills.maxLines),
      [V.DRILL_RECENT_LINES.name]: String(drills.recentLines),
      ...runtimeEnvironment(),
    },
  });
  grantDrillAccess(role, bucket, settings.archivePrefix);
  const schedule = createSchedule(scope, {
    fn,
    scheduleExpression: drills.scheduleExpression,
    deadLetterQueue: queues.scheduleDeadLetterQueue,
    id: 'DrillSchedule',
    roleId: 'DrillSchedulerRole',
    description: 'Restore drill of tokens-housekeeper: re-reads a sample of the archive',
  });
  return { fn, schedule };
}
