import { Match, type Template } from 'aws-cdk-lib/assertions';
import { expect } from 'vitest';
import type { StackFunction, Synthesized } from './synth.ts';

/** What the stack tests expect of the alarms and the dashboard (infra/monitoring/). */

/**
 * What every count alarm of the stack shares (infra/monitoring/alarms.ts): the sum over one period
 * of 5 minutes, one or more alarms, no data does not.
 */
export const COUNT_ALARM = {
  Statistic: 'Sum',
  Period: 300,
  EvaluationPeriods: 1,
  Threshold: 1,
  ComparisonOperator: 'GreaterThanOrEqualToThreshold',
  TreatMissingData: 'notBreaching',
} as const;

/** A metric the housekeeper emits itself: its namespace and its one dimension, the service. */
export const SERVICE_METRIC = {
  Namespace: 'TokensHousekeeper',
  Dimensions: [{ Name: 'service', Value: 'tokens-housekeeper' }],
} as const;

/**
 * Expects a count alarm (see {@link COUNT_ALARM}) on `metricName`, a metric the housekeeper emits
 * itself, that notifies the alarm topic when it fires and when it clears (infra/monitoring/alarms.ts
 * gives every alarm both actions), with `props` (its name, description) besides.
 */
export function expectCountAlarm(
  { stack, template }: Synthesized,
  metricName: string,
  props: Record<string, unknown> = {},
): void {
  template.hasResourceProperties(
    'AWS::CloudWatch::Alarm',
    Match.objectLike({
      ...SERVICE_METRIC,
      MetricName: metricName,
      ...COUNT_ALARM,
      AlarmActions: [stack.resolve(stack.alarmTopic.topicArn)],
      OKActions: [stack.resolve(stack.alarmTopic.topicArn)],
      ...props,
    }),
  );
}

/**
 * Expects an alarm on the Lambda metric `metricName` of `fn` (one or more), that notifies the alarm
 * topic when it fires and when it clears, with `props` (its name) besides.
 */
export function expectFunctionAlarm(
  { stack, template }: Synthesized,
  fn: StackFunction | undefined,
  metricName: string,
  props: Record<string, unknown> = {},
): void {
  template.hasResourceProperties('AWS::CloudWatch::Alarm', {
    Namespace: 'AWS/Lambda',
    MetricName: metricName,
    Dimensions: [{ Name: 'FunctionName', Value: stack.resolve(fn?.functionName) }],
    Threshold: 1,
    ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    AlarmActions: [stack.resolve(stack.alarmTopic.topicArn)],
    OKActions: [stack.resolve(stack.alarmTopic.topicArn)],
    ...props,
  });
}

/** The body of the template's first dashboard, as a string to look for names in. */
export function dashboardBody(template: Template): string {
  const dashboards = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
  return JSON.stringify(dashboards[0]?.Properties.DashboardBody);
}

/** Expects the template's first dashboard to name each of `needles` (a widget title, a metric). */
export function expectDashboardShows(template: Template, needles: readonly string[]): void {
  const body = dashboardBody(template);
  for (const needle of needles) expect(body).toContain(needle);
}
