import { CfnOutput, Stack } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { createAlarmTopic } from './constructs/alarm-topic.ts';
import { createArchiveBucket } from './constructs/archive-bucket.ts';
import { createFanout, type FanoutResources } from './constructs/fanout.ts';
import { createScheduledFunction } from './constructs/housekeeper-function.ts';
import { createRestoreDrills, type RestoreDrillResources } from './constructs/restore-drills.ts';
import { createSchedule, createScheduleQueues } from './constructs/schedule.ts';
import { HousekeepingMonitoring } from './monitoring/housekeeping-monitoring.ts';
import { resolveSettings } from './resolve-settings.ts';
import type { HousekeepingStackProps } from './settings.ts';

export type { FanoutResources } from './constructs/fanout.ts';
export type { RestoreDrillResources } from './constructs/restore-drills.ts';
export type { HousekeepingStackProps } from './settings.ts';

/**
 * The tokens housekeeper: a scheduled Lambda that archives finished tokens lines to S3 and then
 * dismantles them, with its schedule, archive bucket, failure queues, restore drills, alarms and
 * dashboard.
 *
 * Each part is built in `constructs/` and `monitoring/` directly in this stack's scope, so the
 * construct paths, and with them the logical ids, are those of a single flat stack.
 */
export class HousekeepingStack extends Stack {
  /** The scheduled function: the whole pass, or in mode `fanout` the planner. */
  public readonly fn: NodejsFunction;
  /** The archive: created by the stack, or the existing one named by `bucketName`. */
  public readonly bucket: s3.IBucket;
  /** Invokes {@link fn} on the schedule expression. */
  public readonly schedule: scheduler.Schedule;
  /** Receives the event of an asynchronous invocation that failed or expired. */
  public readonly failureQueue: sqs.Queue;
  /** Receives the event when EventBridge Scheduler could not invoke the function. */
  public readonly scheduleDeadLetterQueue: sqs.Queue;
  /** Every alarm notifies this topic. */
  public readonly alarmTopic: sns.Topic;
  /** All alarms, each wired to {@link alarmTopic}. */
  public readonly alarms: readonly cloudwatch.Alarm[];
  /** One dashboard of runs, lines, volume, queues and alarms. */
  public readonly dashboard: cloudwatch.Dashboard;
  /** The work queue, its dead-letter queue and the worker; only in mode `fanout`. */
  public readonly fanout: FanoutResources | undefined;
  /** The restore drill function and its schedule; unless `restoreDrills` is false. */
  public readonly restoreDrills: RestoreDrillResources | undefined;

  constructor(scope: Construct, id: string, props: HousekeepingStackProps) {
    super(scope, id, props);
    const settings = resolveSettings(props);

    this.bucket = createArchiveBucket(this, settings);
    const scheduleQueues = createScheduleQueues(this);
    this.failureQueue = scheduleQueues.failureQueue;
    this.scheduleDeadLetterQueue = scheduleQueues.scheduleDeadLetterQueue;
    this.fanout =
      settings.fanout === undefined ? undefined : createFanout(this, settings, settings.fanout, this.bucket);
    this.fn = createScheduledFunction(this, settings, this.bucket, {
      failureQueue: this.failureQueue,
      workQueue: this.fanout?.workQueue,
    });
    this.schedule = createSchedule(this, {
      fn: this.fn,
      scheduleExpression: settings.scheduleExpression,
      deadLetterQueue: this.scheduleDeadLetterQueue,
    });
    this.restoreDrills =
      settings.restoreDrills === undefined
        ? undefined
        : createRestoreDrills(this, settings, settings.restoreDrills, this.bucket, scheduleQueues);

    this.alarmTopic = createAlarmTopic(this, settings.alarmEmail);
    const monitoring = new HousekeepingMonitoring(this, 'Monitoring', {
      fn: this.fn,
      timeout: settings.timeout,
      scheduleExpression: settings.scheduleExpression,
      scheduleQueues,
      alarmTopic: this.alarmTopic,
      namePrefix: this.stackName,
      ...(this.fanout === undefined || settings.fanout === undefined
        ? {}
        : {
            fanout: {
              worker: this.fanout.worker,
              workerTimeout: settings.fanout.workerTimeout,
              workQueue: this.fanout.workQueue,
              workerDeadLetterQueue: this.fanout.workerDeadLetterQueue,
              maxConcurrency: settings.fanout.maxConcurrency,
            },
          }),
      ...(this.restoreDrills === undefined || settings.restoreDrills === undefined
        ? {}
        : {
            drill: {
              fn: this.restoreDrills.fn,
              scheduleExpression: settings.restoreDrills.scheduleExpression,
            },
          }),
    });
    this.alarms = monitoring.alarms;
    this.dashboard = monitoring.dashboard;

    this.addOutputs();
  }

  /** What an operator needs after a deploy: the names and addresses of the parts. */
  private addOutputs(): void {
    new CfnOutput(this, 'FunctionName', { value: this.fn.functionName });
    new CfnOutput(this, 'ScheduleName', { value: this.schedule.scheduleName });
    new CfnOutput(this, 'ArchiveBucketName', { value: this.bucket.bucketName });
    new CfnOutput(this, 'FailureQueueUrl', { value: this.failureQueue.queueUrl });
    new CfnOutput(this, 'ScheduleDeadLetterQueueUrl', { value: this.scheduleDeadLetterQueue.queueUrl });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alarmTopic.topicArn });
    if (this.fanout !== undefined) {
      new CfnOutput(this, 'WorkerFunctionName', { value: this.fanout.worker.functionName });
      new CfnOutput(this, 'WorkQueueUrl', { value: this.fanout.workQueue.queueUrl });
      new CfnOutput(this, 'WorkerDeadLetterQueueUrl', { value: this.fanout.workerDeadLetterQueue.queueUrl });
    }
    if (this.restoreDrills !== undefined) {
      new CfnOutput(this, 'DrillFunctionName', { value: this.restoreDrills.fn.functionName });
      new CfnOutput(this, 'DrillScheduleName', { value: this.restoreDrills.schedule.scheduleName });
    }
  }
}
