import type { Logger } from '@aws-lambda-powertools/logger';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import type { AuditReport } from '../core/audit.ts';
import { remainingOf } from '../core/deadline.ts';
import { planFanout } from '../core/fanout-planner.ts';
import type { FanoutPlan, Summary } from '../core/types.ts';
import { sqsWorkQueue } from '../queue/work-queue.ts';
import { describeError, EventError } from '../shared/errors.ts';
import { loadConfig, loadPlannerConfig } from './config.ts';
import { createDeps, createSqsClient } from './deps.ts';
import { type Invocation, parseInvocation } from './event.ts';
import { asRun, handlerFor, type LambdaContext, logInvocation, type PublishingMetrics } from './invoke.ts';
import { workBatch } from './work-batch.ts';

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Builds the planner's invocation function (fan-out mode): config, dependencies and the SQS
 * client once (cold start), then per event: a pass is planned and sent to the work queue. An
 * audit, a dry run and an invalid payload are exactly what they are in single mode.
 */
export function createPlannerHandler(
  env: Env,
  options: { logger?: Logger; metrics?: PublishingMetrics } = {},
): (event: unknown, context?: LambdaContext) => Promise<FanoutPlan | Summary | AuditReport> {
  const config = loadPlannerConfig(env);
  const deps = createDeps(config, options);
  const queue = sqsWorkQueue(createSqsClient(config, deps.logger), config.fanout.queueUrl);
  // Audits and dry runs read and plan only: the single-mode handler does them, logging included.
  const single = handlerFor(config, deps, options);

  return async (event, context) => {
    let invocation: Invocation | undefined;
    try {
      invocation = parseInvocation(event);
    } catch {
      // The single-mode handler reports the same EventError, logged and with metrics flushed.
      invocation = undefined;
    }
    if (invocation === undefined || invocation.kind === 'audit' || invocation.request.dryRun) {
      return single(event, context);
    }
    const request = invocation.request;
    return asRun(deps, options.metrics, context, (runId) =>
      planFanout(deps, config, queue, request, { runId, ...remainingOf(context) }),
    );
  };
}

/**
 * Builds the worker's invocation function (fan-out mode): config and dependencies once, then per
 * SQS batch the same per-line work as a pass, answered with a partial batch response.
 */
export function createWorkerHandler(
  env: Env,
  options: { logger?: Logger; metrics?: PublishingMetrics } = {},
): (event: SQSEvent, context?: LambdaContext) => Promise<SQSBatchResponse> {
  const config = loadConfig(env);
  const deps = createDeps(config, options);

  return async (event, context) => {
    logInvocation(deps.logger, context, options.metrics);
    try {
      const report = await workBatch(deps, config, sqsBatchOf(event), remainingOf(context));
      return report.response;
    } catch (error) {
      // Not a batch (nothing was done), or not expected (lines and messages never throw): a
      // batch goes back to the queue whole.
      deps.logger.error('batch failed', {
        errorName: error instanceof Error ? error.name : 'unknown',
        reason: describeError(error),
      });
      throw error;
    } finally {
      options.metrics?.publishStoredMetrics();
    }
  };
}

/**
 * The event as the SQS batch the worker takes. Anything else (a manual payload sent to the worker
 * by mistake) is refused by name: read as a batch of no records, it would answer "done" for a
 * request nobody carried out.
 */
function sqsBatchOf(event: unknown): SQSEvent {
  const expected = 'worker event: expected an SQS batch (Records)';
  if (typeof event !== 'object' || event === null || Array.isArray(event)) {
    const got = Array.isArray(event) ? 'an array' : event === null ? 'null' : typeof event;
    throw new EventError(`${expected}, got ${got}`);
  }
  if (Array.isArray((event as { Records?: unknown }).Records)) return event as SQSEvent;
  const fields = Object.keys(event);
  const got = fields.length === 0 ? 'no fields' : `fields ${fields.slice(0, 10).join(', ')}`;
  throw new EventError(`${expected}, got ${got}: send a manual request to the planner`);
}
