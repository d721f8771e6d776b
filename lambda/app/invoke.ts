import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';

import { type AuditReport, auditArchive } from '../core/audit.ts';
import { remainingOf } from '../core/deadline.ts';
import { runHousekeeping } from '../core/pass.ts';
import type { Config, Deps, MetricsSink, RunContext, Summary } from '../core/types.ts';
import { describeError } from '../shared/errors.ts';
import { redactText } from '../shared/redact.ts';
import { loadConfig } from './config.ts';
import { createDeps, readKeptReply } from './deps.ts';
import { parseInvocation } from './event.ts';

/** A metrics sink that also knows how to flush (Powertools `Metrics`). */
export interface PublishingMetrics extends MetricsSink {
  publishStoredMetrics(): void;
  /** A property of the metrics published next (not a dimension): Powertools clears it on publish. */
  addMetadata?(key: string, value: string): void;
}

/** What a handler reads of the Lambda context: the time left, and the invocation it is. */
export type LambdaContext = Pick<Context, 'getRemainingTimeInMillis'> & Partial<Context>;

/**
 * Names the invocation on every log line of `logger` from now on (`function_request_id`, as
 * Powertools Logger's `addContext` does), and on the metrics line it publishes, so Logs Insights
 * joins them with the runtime's own `START`, `REPORT` and error lines. Outside Lambda (no request
 * id) it does nothing.
 */
export function logInvocation(
  logger: Logger,
  context: LambdaContext | undefined,
  metrics?: PublishingMetrics,
): void {
  if (typeof context?.awsRequestId !== 'string') return;
  logger.addContext(context as Context);
  // The metrics line too (EMF): the same key, a property CloudWatch does not turn into a dimension.
  metrics?.addMetadata?.('function_request_id', context.awsRequestId);
}

/** The invocation function: `{"audit": true}` audits the archive; anything else is a pass. */
export interface Handler {
  (
    event: { readonly audit: true; readonly ids?: readonly string[] },
    context?: LambdaContext,
  ): Promise<AuditReport>;
  (event: unknown, context?: LambdaContext): Promise<Summary>;
}

/**
 * Builds the invocation function: config and dependencies once (cold start), then per event:
 * parse it, run the pass (or the audit), publish metrics, return the summary (or the report).
 */
export function createHandler(
  env: Readonly<Record<string, string | undefined>>,
  options: HandlerOptions = {},
): Handler {
  const config = loadConfig(env);
  return handlerFor(config, createDeps(config, options), options);
}

export interface HandlerOptions {
  readonly logger?: Logger;
  readonly metrics?: PublishingMetrics;
  readonly onProgress?: RunContext['onProgress'];
}

/** The invocation function over configuration and dependencies built elsewhere (the planner's). */
export function handlerFor(config: Config, deps: Deps, options: HandlerOptions = {}): Handler {
  const archive = deps.archive;
  const invoke = (event: unknown, context?: LambdaContext): Promise<Summary | AuditReport> =>
    asRun(deps, options.metrics, context, async (runId) => {
      const invocation = parseInvocation(event);
      if (invocation.kind === 'audit') {
        const report = await auditArchive({
          archive,
          readKeptReply,
          ...(invocation.ids === undefined ? {} : { ids: invocation.ids }),
          now: deps.now,
        });
        deps.logger.info('audit report', { report });
        return report;
      }
      const started = new Date(deps.now());
      const summary = await runHousekeeping(deps, config, invocation.request, {
        runId,
        ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
        ...remainingOf(context),
      });
      // A Lambda reply is bounded (6 MB); a terminal shows the whole plan.
      return context === undefined ? summary : await boundedPlan(deps, summary, started);
    });
  return invoke as Handler;
}

/** How long writing a large dry run's whole plan may take. */
const PLAN_WRITE_MS = 5_000;

/** The most lines of a dry run's plan a Lambda reply carries. */
export const PLAN_LINES_IN_REPLY = 100;

/**
 * The summary with at most {@link PLAN_LINES_IN_REPLY} lines of its plan, and, when it had more,
 * how many and where the whole plan is written (`planLines`, `planKey`). A plan that cannot be
 * written is logged, and the reply still says how many lines it left out.
 */
async function boundedPlan(deps: Deps, summary: Summary, started: Date): Promise<Summary> {
  const plan = summary.plan;
  if (plan === undefined || plan.length <= PLAN_LINES_IN_REPLY) return summary;
  let planKey: string | undefined;
  try {
    // Bounded, as the writes after a DELETE are: the reply must still go out within the invocation.
    planKey = await deps.archive.writePlan(
      summary.runId,
      started,
      { schemaVersion: 1, runId: summary.runId, plan },
      AbortSignal.timeout(PLAN_WRITE_MS),
    );
    deps.logger.info('plan written', { key: planKey, lines: plan.length });
  } catch (error) {
    deps.logger.error('plan could not be written', { reason: describeError(error) });
  }
  return {
    ...summary,
    plan: plan.slice(0, PLAN_LINES_IN_REPLY),
    planLines: plan.length,
    ...(planKey === undefined ? {} : { planKey }),
  };
}

/**
 * Runs one invocation's work under a fresh run id: every log line of it carries the id and the
 * Lambda request id (the SDK's and the failure's included), a failure is logged before it is rethrown, and metrics are
 * flushed whatever happens.
 */
export async function asRun<T>(
  deps: Pick<Deps, 'logger'>,
  metrics: PublishingMetrics | undefined,
  context: LambdaContext | undefined,
  work: (runId: string) => Promise<T>,
): Promise<T> {
  const runId = randomUUID();
  logInvocation(deps.logger, context, metrics);
  deps.logger.appendPersistentKeys({ runId });
  try {
    return await work(runId);
  } catch (error) {
    deps.logger.error('run failed', {
      errorName: error instanceof Error ? error.name : 'unknown',
      reason: describeError(error),
    });
    throw redactedError(error);
  } finally {
    metrics?.publishStoredMetrics();
  }
}

/**
 * The error as it leaves the process (the Lambda runtime logs and returns it, outside our logger):
 * its message and stack with the session key cut out. Its class and fields are kept.
 */
function redactedError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const message = redactText(error.message);
  const stack = error.stack === undefined ? undefined : redactText(error.stack);
  if (message === error.message && stack === error.stack) return error;
  Object.defineProperty(error, 'message', { value: message, configurable: true, writable: true });
  if (stack !== undefined)
    Object.defineProperty(error, 'stack', { value: stack, configurable: true, writable: true });
  return error;
}
