import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { emfMetric, messagesVisible } from './metrics.ts';
import type { DrillMonitoring, HousekeepingMonitoringProps, WatchedQueue } from './types.ts';

/** Alarm evaluation period: short, so a failed hourly pass is reported minutes after it ends. */
const ALARM_PERIOD = Duration.minutes(5);
/** Fraction of the timeout at which the duration alarm fires. */
const DURATION_ALARM_FRACTION = 0.8;

/** One alarm, as {@link AlarmFactory.addAlarm} takes it. */
export interface AlarmSpec {
  /** The alarm name after the prefix, e.g. `function-errors`. */
  readonly name: string;
  /** What happened and what to do, for whoever is notified. */
  readonly description: string;
  /** What is compared to the threshold, with its period and statistic (see metrics.ts). */
  readonly metric: cloudwatch.IMetric;
  /** @default 1 */
  readonly threshold?: number;
  /** @default GREATER_THAN_OR_EQUAL_TO_THRESHOLD: with the threshold 1, a single occurrence */
  readonly comparisonOperator?: cloudwatch.ComparisonOperator;
}

/**
 * Makes every alarm the same way: named `{prefix}-{name}`, judged on one period with missing data
 * as not breaching (no run, nothing wrong), notifying the topic on ALARM and on OK.
 */
export class AlarmFactory {
  /** Every alarm made so far, in order. */
  public readonly alarms: cloudwatch.Alarm[] = [];
  private readonly scope: Construct;
  private readonly namePrefix: string;
  private readonly action: cloudwatchActions.SnsAction;

  constructor(scope: Construct, namePrefix: string, topic: sns.ITopic) {
    this.scope = scope;
    this.namePrefix = namePrefix;
    this.action = new cloudwatchActions.SnsAction(topic);
  }

  /** An alarm with construct id `id` in the factory's scope. */
  addAlarm(id: string, spec: AlarmSpec): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this.scope, id, {
      alarmName: `${this.namePrefix}-${spec.name}`,
      alarmDescription: spec.description,
      metric: spec.metric,
      threshold: spec.threshold ?? 1,
      comparisonOperator:
        spec.comparisonOperator ?? cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(this.action);
    alarm.addOkAction(this.action);
    this.alarms.push(alarm);
    return alarm;
  }
}

/** The duration alarm's threshold in ms: {@link DURATION_ALARM_FRACTION} of the timeout. */
export function durationAlarmThresholdMs(timeout: Duration): number {
  return Math.round(timeout.toMilliseconds() * DURATION_ALARM_FRACTION);
}

/**
 * The housekeeper's alarms, created in `scope`: the function's errors, throttles and duration, four
 * on EMF metrics (failed lines, hash mismatches, conflicts, lines held by the dismantle guard), the
 * fan-out worker's errors, the restore drill's findings, lines not reached and errors, and one per
 * queue that should stay empty.
 */
export function createAlarms(
  scope: Construct,
  props: HousekeepingMonitoringProps,
  queues: readonly WatchedQueue[],
): cloudwatch.Alarm[] {
  const { fn, timeout } = props;
  const factory = new AlarmFactory(scope, props.namePrefix, props.alarmTopic);
  const sum = { period: ALARM_PERIOD, statistic: cloudwatch.Stats.SUM };

  factory.addAlarm('FunctionErrors', {
    name: 'function-errors',
    description:
      'The housekeeping function ended with an error (crash, timeout, bad config or event). ' +
      'The next scheduled pass retries; see docs/operations.md#alarms.',
    metric: fn.metricErrors(sum),
  });
  addLineAlarms(factory);
  factory.addAlarm('FunctionThrottles', {
    name: 'function-throttles',
    description:
      'An invocation was throttled by the reserved concurrency of 1: a pass was still running when ' +
      'another started (a manual invoke, or a pass longer than the schedule interval).',
    metric: fn.metricThrottles(sum),
  });
  factory.addAlarm('DurationNearTimeout', {
    name: 'duration-near-timeout',
    description:
      `A pass ran longer than ${DURATION_ALARM_FRACTION * 100}% of the ${timeout.toHumanString()} ` +
      'timeout. Lines that do not fit in the time budget are deferred (LinesDeferred); if this persists, ' +
      'raise the memory or the timeout.',
    metric: fn.metricDuration({ period: ALARM_PERIOD, statistic: cloudwatch.Stats.MAXIMUM }),
    threshold: durationAlarmThresholdMs(timeout),
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
  });
  if (props.fanout !== undefined) {
    factory.addAlarm('WorkerErrors', {
      name: 'worker-errors',
      description:
        'A fan-out worker invocation ended in an error (crash, timeout, bad config): its whole batch went back ' +
        'to the work queue and is retried, then dead-lettered. Failed lines alone do not count here.',
      metric: props.fanout.worker.metricErrors(sum),
    });
  }
  if (props.drill !== undefined) addDrillAlarms(factory, props.drill);
  for (const { label, queue, meaning } of queues) {
    factory.addAlarm(`QueueDepth-${label}`, {
      name: `${label}-not-empty`,
      description: `${meaning} Read the message, fix the cause, then purge the queue.`,
      metric: messagesVisible(queue, { period: ALARM_PERIOD }),
    });
  }
  return factory.alarms;
}

/** The four alarms on the EMF line metrics: failed lines, hash mismatches, conflicts, lines held. */
function addLineAlarms(factory: AlarmFactory): void {
  factory.addAlarm('LinesFailed', {
    name: 'lines-failed',
    description:
      'A pass could not archive or dismantle at least one tokens line (LinesFailed >= 1). ' +
      'The line was left on the service; search the logs for the line id.',
    metric: emfMetric('LinesFailed', { period: ALARM_PERIOD }),
  });
  factory.addAlarm('HashMismatches', {
    name: 'hash-mismatches',
    description:
      'A file read from the tokens service did not match its declared SHA-256 or size. The line was ' +
      'not dismantled. Investigate the service before anything else.',
    metric: emfMetric('HashMismatches', { period: ALARM_PERIOD }),
  });
  factory.addAlarm('Conflicts', {
    name: 'conflicts',
    description:
      'The tokens service states a file of a line other than the one already archived and verified ' +
      '(another size or SHA-256). The archive was not overwritten and the line was not dismantled: it ' +
      'fails on every run until an operator resolves it. Also raised when a DELETE reply differs from ' +
      'the manifest (the line changed at the last moment; the reply is kept). See docs/operations.md#alarms.',
    metric: emfMetric('Conflicts', { period: ALARM_PERIOD }),
  });
  factory.addAlarm('LinesHeld', {
    name: 'dismantle-guard',
    description:
      'The dismantle guard held lines (LinesHeld >= 1): a run reached MAX_DISMANTLES_PER_RUN, or its listing ' +
      'showed more than MAX_DISMANTLE_SHARE of its lines finished at once. The lines are archived and verified, ' +
      'and kept on the service. Check the listing before raising the guard; see docs/operations.md#alarms.',
    metric: emfMetric('LinesHeld', { period: ALARM_PERIOD }),
  });
}

/** The restore drill's alarms: its findings, and its function's errors. */
function addDrillAlarms(factory: AlarmFactory, drill: DrillMonitoring): void {
  const sum = { period: ALARM_PERIOD, statistic: cloudwatch.Stats.SUM };
  factory.addAlarm('DrillFindings', {
    name: 'drill-findings',
    description:
      'A restore drill found archived lines that are not as recorded (DrillFindings >= 1): an object missing ' +
      'or damaged, a receipt recording a discrepancy or disagreeing with its manifest, or a line that could ' +
      'not be read back. Read its report under {prefix}_drills/; see docs/operations.md#restore-drills.',
    metric: emfMetric('DrillFindings', { period: ALARM_PERIOD }),
  });
  factory.addAlarm('DrillLinesNotReached', {
    name: 'drill-lines-not-reached',
    description:
      'A restore drill did not audit every line it chose before its deadline (DrillLinesNotReached >= 1): ' +
      'recent ones are taken again by the next drill, but a line too large for one drill holds the drills ' +
      'back. Read notReached in its report; see docs/operations.md#restore-drills.',
    metric: emfMetric('DrillLinesNotReached', { period: ALARM_PERIOD }),
  });
  factory.addAlarm('DrillErrors', {
    name: 'drill-errors',
    description:
      'A restore drill ended in an error (bad config, the archive could not be listed, its report could not ' +
      'be written, a timeout): no drill result for this run. See docs/operations.md#restore-drills.',
    metric: drill.fn.metricErrors(sum),
  });
}
