import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { WORK_MAX_RECEIVE_COUNT } from '../settings.ts';
import { createAlarms } from './alarms.ts';
import { createDashboard } from './dashboard.ts';
import type { HousekeepingMonitoringProps, WatchedQueue } from './types.ts';

export type {
  DrillMonitoring,
  FanoutMonitoring,
  HousekeepingMonitoringProps,
  WatchedQueue,
} from './types.ts';

/**
 * Alarms and a dashboard for the housekeeper, built with plain `aws-cloudwatch`: metrics from
 * `metrics.ts`, alarms from one factory in `alarms.ts`, the dashboard in `dashboard.ts`. Every
 * widget and threshold is visible there and asserted in the stack tests.
 */
export class HousekeepingMonitoring extends Construct {
  /** All alarms, each wired to the alarm topic. */
  public readonly alarms: readonly cloudwatch.Alarm[];
  public readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: HousekeepingMonitoringProps) {
    super(scope, id);
    const queues = watchedQueues(props);
    this.alarms = createAlarms(this, props, queues);
    this.dashboard = createDashboard(this, props, queues, this.alarms);
  }
}

/** The queues that should stay empty, with what a message in each means for whoever reads the alarm. */
function watchedQueues(props: HousekeepingMonitoringProps): WatchedQueue[] {
  const { scheduleQueues, fanout, drill } = props;
  // The restore drill's schedule and function use the same two queues.
  const orDrill = drill === undefined ? '' : ' (or the restore drill)';
  return [
    {
      label: 'schedule-dlq',
      queue: scheduleQueues.scheduleDeadLetterQueue,
      meaning: `EventBridge Scheduler could not invoke the function${orDrill} (permissions, function missing, throttled API).`,
    },
    {
      label: 'failure-queue',
      queue: scheduleQueues.failureQueue,
      meaning: `A scheduled pass${orDrill} failed or expired before it could run; the message holds the error.`,
    },
    ...(fanout === undefined
      ? []
      : [
          {
            label: 'worker-dlq',
            queue: fanout.workerDeadLetterQueue,
            meaning:
              `A work message failed ${WORK_MAX_RECEIVE_COUNT} times: its line could not be archived or ` +
              'dismantled (the line stays on the service), or the message is not a work message.',
          },
        ]),
  ];
}
