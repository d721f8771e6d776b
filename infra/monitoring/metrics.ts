import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { METRICS_NAMESPACE, type MetricName, SERVICE_NAME } from '../../lambda/shared/contract.ts';

/**
 * The metric factory: every metric the alarms and the dashboard draw is made here, so namespace,
 * dimension, statistic and period are chosen once.
 */

/** The dashboard's period: graphs are hourly, like the schedule. */
export const HOURLY = { period: Duration.hours(1) } as const;

/** One of the functions' EMF metrics: our namespace and service dimension, an hourly sum unless `options` say otherwise. */
export function emfMetric(metricName: MetricName, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName,
    dimensionsMap: { service: SERVICE_NAME },
    statistic: cloudwatch.Stats.SUM,
    period: Duration.hours(1),
    ...options,
  });
}

/** An EMF metric as the dashboard draws it: an hourly sum, labelled with its name. */
export function hourlyEmfMetric(metricName: MetricName): cloudwatch.Metric {
  return emfMetric(metricName, { ...HOURLY, label: metricName });
}

/** The most messages visible in a queue over the period: above 0 means something waits there. */
export function messagesVisible(
  queue: sqs.IQueue,
  options: cloudwatch.MetricOptions = {},
): cloudwatch.Metric {
  return queue.metricApproximateNumberOfMessagesVisible({ statistic: cloudwatch.Stats.MAXIMUM, ...options });
}
