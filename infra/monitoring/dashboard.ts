import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type { Construct } from 'constructs';
import { durationAlarmThresholdMs } from './alarms.ts';
import { emfMetric, HOURLY, hourlyEmfMetric, messagesVisible } from './metrics.ts';
import type {
  DrillMonitoring,
  FanoutMonitoring,
  HousekeepingMonitoringProps,
  WatchedQueue,
} from './types.ts';

/** The line counts of a pass, as the summary and the lines graph show them. */
const LINE_METRICS = [
  'LinesArchived',
  'LinesDismantled',
  'LinesFailed',
  'LinesDeferred',
  'LinesSkipped',
  'LinesHeld',
  'Conflicts',
] as const;

/**
 * One compact dashboard (id `Dashboard`, in `scope`): a header, the line counts of the selected
 * range, runs and duration against the timeout, lines and volume per hour, integrity and retries,
 * the queues that should stay empty, in fan-out mode the work queue and the workers, the restore
 * drills, and the alarms.
 */
export function createDashboard(
  scope: Construct,
  props: HousekeepingMonitoringProps,
  queues: readonly WatchedQueue[],
  alarms: readonly cloudwatch.IAlarm[],
): cloudwatch.Dashboard {
  const { fanout } = props;
  const linesMetrics = LINE_METRICS.map(hourlyEmfMetric);

  const dashboard = new cloudwatch.Dashboard(scope, 'Dashboard', {
    dashboardName: `${props.namePrefix}-dashboard`,
    defaultInterval: Duration.days(7),
  });
  dashboard.addWidgets(headerWidget(props));
  dashboard.addWidgets(
    new cloudwatch.SingleValueWidget({
      title: 'Lines in the selected range',
      metrics: linesMetrics,
      setPeriodToTimeRange: true,
      width: 24,
      height: 4,
    }),
  );
  dashboard.addWidgets(...runRow(props));
  dashboard.addWidgets(
    new cloudwatch.GraphWidget({
      title: 'Lines per hour',
      left: linesMetrics,
      stacked: false,
      width: 12,
    }),
    new cloudwatch.GraphWidget({
      title: 'Archived volume',
      left: [hourlyEmfMetric('BytesArchived')],
      right: [hourlyEmfMetric('FilesArchived')],
      width: 12,
    }),
  );
  dashboard.addWidgets(
    new cloudwatch.GraphWidget({
      title: 'Integrity and retries',
      left: [hourlyEmfMetric('HashMismatches'), hourlyEmfMetric('Retries')],
      width: 12,
    }),
    new cloudwatch.GraphWidget({
      title: 'Dead-letter and failure queues (messages visible)',
      left: queues.map(({ label, queue }) => messagesVisible(queue, { label })),
      width: 12,
    }),
  );
  if (fanout !== undefined) {
    for (const row of fanoutRows(fanout)) dashboard.addWidgets(...row);
  }
  if (props.drill !== undefined) dashboard.addWidgets(...drillRow(props.drill));
  dashboard.addWidgets(
    new cloudwatch.AlarmStatusWidget({
      title: 'Alarms',
      alarms: [...alarms],
      width: 24,
      height: 3,
    }),
  );
  return dashboard;
}

/** The header: the schedule, the mode and its timeouts, where the runbook is. */
function headerWidget(props: HousekeepingMonitoringProps): cloudwatch.TextWidget {
  const { timeout, fanout } = props;
  return new cloudwatch.TextWidget({
    markdown:
      fanout === undefined
        ? `# Tokens housekeeper\nSchedule \`${props.scheduleExpression}\`, one pass at a time ` +
          `(reserved concurrency 1), timeout ${timeout.toHumanString()}. Graphs are hourly sums; ` +
          'runbook in docs/operations.md.'
        : `# Tokens housekeeper (fan-out)\nSchedule \`${props.scheduleExpression}\`: one planner at a time ` +
          `(timeout ${timeout.toHumanString()}) sends one message per finished line; at most ` +
          `${fanout.maxConcurrency} workers (timeout ${fanout.workerTimeout.toHumanString()}) ` +
          'archive them. Graphs are hourly sums; runbook in docs/operations.md.',
    width: 24,
    height: 2,
  });
}

/** One row: the scheduled function's runs, and its duration against the timeout and the alarm. */
function runRow(props: HousekeepingMonitoringProps): cloudwatch.IWidget[] {
  const { fn, timeout } = props;
  const timeoutMs = timeout.toMilliseconds();
  const sum = { ...HOURLY, statistic: cloudwatch.Stats.SUM };
  const maximum = { ...HOURLY, statistic: cloudwatch.Stats.MAXIMUM };
  return [
    new cloudwatch.GraphWidget({
      title: 'Runs',
      left: [
        fn.metricInvocations({ ...sum, label: 'Invocations' }),
        fn.metricErrors({ ...sum, label: 'Errors' }),
        fn.metricThrottles({ ...sum, label: 'Throttles' }),
      ],
      width: 12,
    }),
    new cloudwatch.GraphWidget({
      title: 'Duration against the timeout',
      left: [
        fn.metricDuration({ ...maximum, label: 'Max duration' }),
        emfMetric('RunDuration', { ...maximum, label: 'RunDuration (EMF)' }),
      ],
      leftYAxis: { min: 0, max: timeoutMs, label: 'ms', showUnits: false },
      leftAnnotations: [
        { value: timeoutMs, label: 'Timeout', color: cloudwatch.Color.RED },
        { value: durationAlarmThresholdMs(timeout), label: 'Alarm', color: cloudwatch.Color.ORANGE },
      ],
      width: 12,
    }),
  ];
}

/** Two rows: the work queue's depth and age and what the planners sent; the workers and their duration. */
function fanoutRows(fanout: FanoutMonitoring): cloudwatch.IWidget[][] {
  const { worker, workQueue } = fanout;
  const workerTimeoutMs = fanout.workerTimeout.toMilliseconds();
  const sum = { ...HOURLY, statistic: cloudwatch.Stats.SUM };
  const queueRow = [
    new cloudwatch.GraphWidget({
      title: 'Work queue',
      left: [
        messagesVisible(workQueue, { label: 'Waiting' }),
        workQueue.metricApproximateNumberOfMessagesNotVisible({
          statistic: cloudwatch.Stats.MAXIMUM,
          label: 'In flight',
        }),
      ],
      right: [
        workQueue.metricApproximateAgeOfOldestMessage({
          statistic: cloudwatch.Stats.MAXIMUM,
          label: 'Oldest (s)',
        }),
      ],
      width: 12,
    }),
    new cloudwatch.GraphWidget({
      title: 'Planned lines',
      left: [hourlyEmfMetric('LinesEnqueued'), hourlyEmfMetric('LinesAlreadyQueued')],
      width: 12,
    }),
  ];
  const workerRow = [
    new cloudwatch.GraphWidget({
      title: 'Workers',
      left: [
        worker.metricInvocations({ ...sum, label: 'Invocations' }),
        worker.metricErrors({ ...sum, label: 'Errors' }),
      ],
      right: [
        worker.metric('ConcurrentExecutions', { statistic: cloudwatch.Stats.MAXIMUM, label: 'Concurrent' }),
      ],
      rightAnnotations: [{ value: fanout.maxConcurrency, label: 'Maximum concurrency' }],
      width: 12,
    }),
    new cloudwatch.GraphWidget({
      title: 'Worker duration against its timeout',
      left: [
        worker.metricDuration({ ...HOURLY, statistic: cloudwatch.Stats.MAXIMUM, label: 'Max duration' }),
      ],
      leftYAxis: { min: 0, max: workerTimeoutMs, label: 'ms', showUnits: false },
      leftAnnotations: [{ value: workerTimeoutMs, label: 'Timeout', color: cloudwatch.Color.RED }],
      width: 12,
    }),
  ];
  return [queueRow, workerRow];
}

/** One row: what each restore drill found and audited (daily sums), and the drill function's runs. */
function drillRow(drill: DrillMonitoring): cloudwatch.IWidget[] {
  const daily = { period: Duration.days(1), statistic: cloudwatch.Stats.SUM };
  return [
    new cloudwatch.GraphWidget({
      title: `Restore drills (${drill.scheduleExpression}): findings and lines, daily`,
      left: [emfMetric('DrillFindings', { ...daily, label: 'DrillFindings' })],
      right: [
        emfMetric('DrillLinesAudited', { ...daily, label: 'DrillLinesAudited' }),
        emfMetric('DrillLinesNotReached', { ...daily, label: 'DrillLinesNotReached' }),
      ],
      leftAnnotations: [{ value: 1, label: 'Alarm', color: cloudwatch.Color.RED }],
      width: 12,
    }),
    new cloudwatch.GraphWidget({
      title: 'Restore drill runs, daily',
      left: [
        drill.fn.metricInvocations({ ...daily, label: 'Invocations' }),
        drill.fn.metricErrors({ ...daily, label: 'Errors' }),
      ],
      width: 12,
    }),
  ];
}
