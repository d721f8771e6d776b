import type { Duration } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { ScheduleQueues } from '../constructs/schedule.ts';

/** What the monitoring watches; shared by the alarms and the dashboard, so neither imports the other's file for it. */
export interface HousekeepingMonitoringProps {
  /** The scheduled function: the pass, or in fan-out mode the planner. */
  readonly fn: lambda.IFunction;
  /** The function timeout, drawn on the duration graph and used for the duration alarm. */
  readonly timeout: Duration;
  /** The schedule expression, shown in the dashboard header. */
  readonly scheduleExpression: string;
  /** The schedule's dead-letter and failure queues: alarmed on when not empty. */
  readonly scheduleQueues: ScheduleQueues;
  /** Every alarm notifies this topic (on ALARM and on OK). */
  readonly alarmTopic: sns.ITopic;
  /** Prefix for alarm and dashboard names, usually the stack name. */
  readonly namePrefix: string;
  /** Fan-out mode: `fn` is the planner, and these workers do the lines. @default - single mode */
  readonly fanout?: FanoutMonitoring;
  /** The restore drills: their findings and errors are alarmed on, and drawn. @default - none */
  readonly drill?: DrillMonitoring;
}

/** What the restore drills add to watch. */
export interface DrillMonitoring {
  /** Its errors are alarmed on; its invocations are drawn. */
  readonly fn: lambda.IFunction;
  /** The drill schedule expression, shown on the dashboard. */
  readonly scheduleExpression: string;
}

/** What fan-out mode adds to watch. */
export interface FanoutMonitoring {
  /** Its errors are alarmed on; invocations, concurrency and duration are drawn. */
  readonly worker: lambda.IFunction;
  /** Drawn on the worker duration graph. */
  readonly workerTimeout: Duration;
  /** Its depth and oldest message are drawn. */
  readonly workQueue: sqs.IQueue;
  /** Alarmed on when not empty, like the schedule's queues. */
  readonly workerDeadLetterQueue: sqs.IQueue;
  /** The event source mapping's maximum concurrency, drawn on the concurrency graph. */
  readonly maxConcurrency: number;
}

/** A queue that should stay empty: anything in it is a lost or failed invocation. */
export interface WatchedQueue {
  /** Short label used in alarm names and the dashboard, e.g. `schedule-dlq`. */
  readonly label: string;
  /** Alarmed on, and drawn, by its messages visible. */
  readonly queue: sqs.IQueue;
  /** What a message in this queue means, for the alarm description. */
  readonly meaning: string;
}
