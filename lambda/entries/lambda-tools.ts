import type { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { serviceLogger } from '../app/logging.ts';
import { METRICS_NAMESPACE, SERVICE_NAME } from '../shared/contract.ts';
import { nodeRuntimeFacts } from './node-runtime.ts';

/**
 * The logger and metrics of a Lambda entry (pass, planner, worker), made at cold start. All
 * share one namespace and service dimension, so the alarms on LinesFailed and HashMismatches see
 * the pass and the fan-out worker alike. Logs once the Node flags the function really runs with
 * (infra/function-runtime.ts).
 */
export function lambdaEntryTools(): { logger: Logger; metrics: Metrics } {
  const logger = serviceLogger();
  logger.info('node runtime', { ...nodeRuntimeFacts() });
  // Metrics' own notices (`No application metrics to publish…` on a run that emits none) go
  // through the logger: every line the function writes is JSON in the stack's log format.
  const metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE_NAME, logger });
  return { logger, metrics };
}
