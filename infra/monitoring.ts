import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** CloudWatch namespace of the EMF metrics the function emits (`POWERTOOLS_METRICS_NAMESPACE`). */
export const METRICS_NAMESPACE = 'TokensHousekeeper';
/** Service name, the one dimension on every EMF metric (`POWERTOOLS_SERVICE_NAME`). */
export const SERVICE_NAME = 'tokens-housekeeper';

/** EMF metrics emitted once per pass by the function. */
export type PassMetricName =
  | 'LinesArchived'
  | 'LinesDismantled'
  | 'LinesFailed'
  | 'LinesDeferred'
  | 'LinesSkipped'
  | 'FilesArchived'
  | 'BytesArchived'
  | 'HashMismatches'
  | 'Conflicts'
  | 'Retries'
  | 'RunDuration'
  | 'LinesEnqueued'
  | 'LinesAlreadyQueued';

/** A queue that should stay empty: anything in it is a lost or failed invocation. */
export interface WatchedQueue {
  /** Short label used in alarm names and the dashboard, e.g. `schedule-dlq`. */
  readonly label: string;
  readonly queue: sqs.IQueue;
  /** What a message in this queue means, for the alarm description. */
  readonly meaning: string;
}

export interface HousekeepingMonitoringProps {
  readonly fn: lambda.IFunction;
  /** The function timeout, drawn on the duration graph and used for the duration alarm. */
  readonly timeout: Duration;
  /** The schedule expression, shown in the dashboard header. */
  readonly scheduleExpression: string;
  readonly queues: readonly WatchedQueue[];
  /** Every alarm notifies this topic (on ALARM and on OK). */
  readonly alarmTopic: sns.ITopic;
  /** Prefix for alarm and dashboard names, usually the stack name. */
  readonly namePrefix: string;
  /** Fan-out mode: `fn` is the planner, and these workers do the lines. */
  readonly fanout?: FanoutMonitoring;
}

/** What fan-out mode adds to watch. */
export interface FanoutMonitoring {
  readonly worker: lambda.IFunction;
  readonly workerTimeout: Duration;
  readonly workQueue: sqs.IQueue;
  /** The event source mapping's maximum concurrency, drawn on the concurrency graph. */
  readonly maxConcurrency: number;
}

/** The pass metric with our namespace and service dimension. */
export function passMetric(
  metricName: PassMetricName,
  options: cloudwatch.MetricOptions = {},
): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName,
    dimensionsMap: { service: SERVICE_NAME },
    statistic: cloudwatch.Stats.SUM,
    period: Duration.hours(1),
    ...options,
  });
}

/** Fraction of the timeout at which the duration alarm fires. */
const DURATION_ALARM_FRACTION = 0.8;
/** Alarm evaluation period: short, so a failed hourly pass is reported minutes after it ends. */
const ALARM_PERIOD = Duration.minutes(5);

/**
 * Alarms and a dashboard for the housekeeper, built with plain `aws-cloudwatch`: a handful of
 * specific alarms (three on EMF metrics) and one compact dashboard, where every widget and
 * threshold is visible here and asserted in the stack tests.
 */
export class HousekeepingMonitoring extends Construct {
  /** All alarms, each wired to the alarm topic. */
  public readonly alarms: readonly cloudwatch.Alarm[];
  public readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: HousekeepingMonitoringProps) {
    super(scope, id);
    const { fn, timeout, namePrefix } = props;
    const timeoutMs = timeout.toMilliseconds();
    const alarms: cloudwatch.Alarm[] = [];
    const action = new cloudwatchActions.SnsAction(props.alarmTopic);
    const addAlarm = (alarmId: string, alarmProps: cloudwatch.AlarmProps): void => {
      const alarm = new cloudwatch.Alarm(this, alarmId, alarmProps);
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
      alarms.push(alarm);
    };

    addAlarm('FunctionErrors', {
      alarmName: `${namePrefix}-function-errors`,
      alarmDescription:
        'The housekeeping function ended with an error (crash, timeout, bad config or event). ' +
        'The next scheduled pass retries; see README.md#alarms.',
      metric: fn.metricErrors({ period: ALARM_PERIOD, statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    addAlarm('LinesFailed', {
      alarmName: `${namePrefix}-lines-failed`,
      alarmDescription:
        'A pass could not archive or dismantle at least one tokens line (LinesFailed >= 1). ' +
        'The line was left on the service; search the logs for the line id.',
      metric: passMetric('LinesFailed', { period: ALARM_PERIOD }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    addAlarm('HashMismatches', {
      alarmName: `${namePrefix}-hash-mismatches`,
      alarmDescription:
        'A file read from the tokens service did not match its declared SHA-256 or size. The line was ' +
        'not dismantled. Investigate the service before anything else.',
      metric: passMetric('HashMismatches', { period: ALARM_PERIOD }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    addAlarm('Conflicts', {
      alarmName: `${namePrefix}-conflicts`,
      alarmDescription:
        'The tokens service states a file of a line other than the one already archived and verified ' +
        '(another size or SHA-256). The archive was not overwritten and the line was not dismantled: it ' +
        'fails on every run until an operator resolves it. Also raised when a DELETE reply differs from ' +
        'the manifest (the line changed at the last moment; the reply is kept). See README.md#alarms.',
      metric: passMetric('Conflicts', { period: ALARM_PERIOD }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    addAlarm('FunctionThrottles', {
      alarmName: `${namePrefix}-function-throttles`,
      alarmDescription:
        'An invocation was throttled by the reserved concurrency of 1: a pass was still running when ' +
        'another started (a manual invoke, or a pass longer than the schedule interval).',
      metric: fn.metricThrottles({ period: ALARM_PERIOD, statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const durationThresholdMs = Math.round(timeoutMs * DURATION_ALARM_FRACTION);
    addAlarm('DurationNearTimeout', {
      alarmName: `${namePrefix}-duration-near-timeout`,
      alarmDescription:
        `A pass ran longer than ${DURATION_ALARM_FRACTION * 100}% of the ${timeout.toHumanString()} ` +
        'timeout. Lines that do not fit in the time budget are deferred (LinesDeferred); if this persists, ' +
        'raise the memory or the timeout.',
      metric: fn.metricDuration({ period: ALARM_PERIOD, statistic: cloudwatch.Stats.MAXIMUM }),
      threshold: durationThresholdMs,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    if (props.fanout !== undefined) {
      addAlarm('WorkerErrors', {
        alarmName: `${namePrefix}-worker-errors`,
        alarmDescription:
          'A fan-out worker invocation ended in an error (crash, timeout, bad config): its whole batch went back ' +
          'to the work queue and is retried, then dead-lettered. Failed lines alone do not count here.',
        metric: props.fanout.worker.metricErrors({ period: ALARM_PERIOD, statistic: cloudwatch.Stats.SUM }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }

    for (const { label, queue, meaning } of props.queues) {
      addAlarm(`QueueDepth-${label}`, {
        alarmName: `${namePrefix}-${label}-not-empty`,
        alarmDescription: `${meaning} Read the message, fix the cause, then purge the queue.`,
        metric: queue.metricApproximateNumberOfMessagesVisible({
          period: ALARM_PERIOD,
          statistic: cloudwatch.Stats.MAXIMUM,
        }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }
    this.alarms = alarms;

    const hourly = { period: Duration.hours(1) };
    const linesMetrics = (
      [
        'LinesArchived',
        'LinesDismantled',
        'LinesFailed',
        'LinesDeferred',
        'LinesSkipped',
        'Conflicts',
      ] as const
    ).map((name) => passMetric(name, { ...hourly, label: name }));

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `${namePrefix}-dashboard`,
      defaultInterval: Duration.days(7),
    });
    this.dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown:
          props.fanout === undefined
            ? `# Tokens housekeeper\nSchedule \`${props.scheduleExpression}\`, one pass at a time ` +
              `(reserved concurrency 1), timeout ${timeout.toHumanString()}. Graphs are hourly sums; ` +
              'runbook in README.md.'
            : `# Tokens housekeeper (fan-out)\nSchedule \`${props.scheduleExpression}\`: one planner at a time ` +
              `(timeout ${timeout.toHumanString()}) sends one message per finished line; at most ` +
              `${props.fanout.maxConcurrency} workers (timeout ${props.fanout.workerTimeout.toHumanString()}) ` +
              'archive them. Graphs are hourly sums; runbook in README.md.',
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.SingleValueWidget({
        title: 'Lines in the selected range',
        metrics: linesMetrics,
        setPeriodToTimeRange: true,
        width: 24,
        height: 4,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Runs',
        left: [
          fn.metricInvocations({ ...hourly, statistic: cloudwatch.Stats.SUM, label: 'Invocations' }),
          fn.metricErrors({ ...hourly, statistic: cloudwatch.Stats.SUM, label: 'Errors' }),
          fn.metricThrottles({ ...hourly, statistic: cloudwatch.Stats.SUM, label: 'Throttles' }),
        ],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Duration against the timeout',
        left: [
          fn.metricDuration({ ...hourly, statistic: cloudwatch.Stats.MAXIMUM, label: 'Max duration' }),
          passMetric('RunDuration', {
            ...hourly,
            statistic: cloudwatch.Stats.MAXIMUM,
            label: 'RunDuration (EMF)',
          }),
        ],
        leftYAxis: { min: 0, max: timeoutMs, label: 'ms', showUnits: false },
        leftAnnotations: [
          { value: timeoutMs, label: 'Timeout', color: cloudwatch.Color.RED },
          { value: durationThresholdMs, label: 'Alarm', color: cloudwatch.Color.ORANGE },
        ],
        width: 12,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Lines per hour',
        left: linesMetrics,
        stacked: false,
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Archived volume',
        left: [passMetric('BytesArchived', { ...hourly, label: 'BytesArchived' })],
        right: [passMetric('FilesArchived', { ...hourly, label: 'FilesArchived' })],
        width: 12,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Integrity and retries',
        left: [
          passMetric('HashMismatches', { ...hourly, label: 'HashMismatches' }),
          passMetric('Retries', { ...hourly, label: 'Retries' }),
        ],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Dead-letter and failure queues (messages visible)',
        left: props.queues.map(({ label, queue }) =>
          queue.metricApproximateNumberOfMessagesVisible({ statistic: cloudwatch.Stats.MAXIMUM, label }),
        ),
        width: 12,
      }),
    );
    if (props.fanout !== undefined) this.addFanoutWidgets(props.fanout, hourly);
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({
        title: 'Alarms',
        alarms,
        width: 24,
        height: 3,
      }),
    );
  }

  /** The work queue's depth and age, the workers, and what the planners sent. */
  private addFanoutWidgets(fanout: FanoutMonitoring, hourly: { period: Duration }): void {
    const { worker, workQueue } = fanout;
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Work queue',
        left: [
          workQueue.metricApproximateNumberOfMessagesVisible({
            statistic: cloudwatch.Stats.MAXIMUM,
            label: 'Waiting',
          }),
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
        left: [
          passMetric('LinesEnqueued', { ...hourly, label: 'LinesEnqueued' }),
          passMetric('LinesAlreadyQueued', { ...hourly, label: 'LinesAlreadyQueued' }),
        ],
        width: 12,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Workers',
        left: [
          worker.metricInvocations({ ...hourly, statistic: cloudwatch.Stats.SUM, label: 'Invocations' }),
          worker.metricErrors({ ...hourly, statistic: cloudwatch.Stats.SUM, label: 'Errors' }),
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
          worker.metricDuration({ ...hourly, statistic: cloudwatch.Stats.MAXIMUM, label: 'Max duration' }),
        ],
        leftYAxis: { min: 0, max: fanout.workerTimeout.toMilliseconds(), label: 'ms', showUnits: false },
        leftAnnotations: [
          { value: fanout.workerTimeout.toMilliseconds(), label: 'Timeout', color: cloudwatch.Color.RED },
        ],
        width: 12,
      }),
    );
  }
}
