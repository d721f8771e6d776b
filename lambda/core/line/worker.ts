import type { Logger } from '@aws-lambda-powertools/logger';
import { ConflictError, deadlineReason, describeError, LineSkippedError } from '../../shared/errors.ts';
import { type DismantleGuard, NO_GUARD } from '../dismantle-guard.ts';
import { createRunTools } from '../run-tools.ts';
import type { Config, Deps, LineWorker, LineWorkRequest } from '../types.ts';
import type { LineContext } from './context.ts';
import { processLine } from './line-work.ts';

/** Builds the {@link LineWorker} of one run from the container's dependencies. */
export function createLineWorker(
  deps: Deps,
  config: Config,
  options: {
    readonly runId: string;
    readonly request: LineWorkRequest;
    readonly logger: Logger;
    /** The run's deadline: in-flight work is aborted when it fires. */
    readonly signal?: AbortSignal;
    /** The run's dismantle guard; none: every line the gate lets go is dismantled. */
    readonly guard?: DismantleGuard;
  },
): LineWorker {
  const tools = createRunTools(deps, config, options);
  const { api, archive, tally, retry } = tools;
  const ctx: LineContext = {
    api,
    archive,
    config,
    request: options.request,
    runId: options.runId,
    now: deps.now,
    retry,
    tally,
    signal: options.signal,
    guard: options.guard ?? NO_GUARD,
  };
  return {
    ...tools,
    async processLine(id, logger) {
      const started = deps.now();
      const took = () => deps.now() - started;
      try {
        const outcome = await processLine(ctx, id.toLowerCase(), logger);
        if (outcome.outcome === 'failed') {
          logger.error('line failed', { reason: outcome.reason, conflict: true, dismantled: true });
        } else if (outcome.outcome === 'waiting') {
          logger.info('line waiting', { until: outcome.until });
        } else if (outcome.outcome !== 'planned') {
          logger.info(`line ${outcome.outcome}`, { ...outcome });
        }
        return { id, durationMs: took(), ...outcome };
      } catch (error) {
        if (error instanceof LineSkippedError) {
          logger.info('line skipped', { reason: error.message });
          return {
            id,
            durationMs: took(),
            outcome: 'skipped',
            reason: error.message,
            notFinished: error.notFinished,
          };
        }
        const failure = deadlineReason(options.signal) ?? error;
        const reason = describeError(failure);
        const errorName = failure instanceof Error ? failure.name : 'unknown';
        const conflict = failure instanceof ConflictError;
        logger.error('line failed', { reason, errorName, ...(conflict ? { conflict } : {}) });
        return {
          id,
          durationMs: took(),
          outcome: 'failed',
          reason,
          errorName,
          ...(conflict ? { conflict: true as const } : {}),
        };
      }
    },
  };
}
