import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import { loadConfig } from './config.ts';
import { createDeps } from './deps.ts';
import { describeError } from './errors.ts';
import { parseEvent } from './event.ts';
import { type MetricsSink, runHousekeeping, type Summary } from './housekeeping.ts';

/** A metrics sink that also knows how to flush (Powertools `Metrics`). */
export interface PublishingMetrics extends MetricsSink {
  publishStoredMetrics(): void;
}

export type Handler = (
  event: unknown,
  context?: Pick<Context, 'getRemainingTimeInMillis'>,
) => Promise<Summary>;

/**
 * Builds the invocation function: config and dependencies once (cold start), then per event:
 * parse it, run the pass, publish metrics, return the summary.
 */
export function createHandler(
  env: Readonly<Record<string, string | undefined>>,
  options: { logger?: Logger; metrics?: PublishingMetrics } = {},
): Handler {
  const config = loadConfig(env);
  const deps = createDeps(config, options);
  return async (event, context) => {
    const runId = randomUUID();
    // Every log line of this invocation, the SDK's and the failure's included, carries the run id.
    deps.logger.appendPersistentKeys({ runId });
    try {
      const request = parseEvent(event);
      return await runHousekeeping(deps, config, request, {
        runId,
        ...(context === undefined ? {} : { remainingMs: () => context.getRemainingTimeInMillis() }),
      });
    } catch (error) {
      deps.logger.error('run failed', {
        errorName: error instanceof Error ? error.name : 'unknown',
        reason: describeError(error),
      });
      throw error;
    } finally {
      options.metrics?.publishStoredMetrics();
    }
  };
}
