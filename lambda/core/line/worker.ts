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
        if (outcome.kind === 'planned')
          return { id, durationMs: took(), outcome: 'planned', plan: outcome.plan };
        if (outcome.kind === 'waiting') {
          logger.info('line waiting', { until: outcome.until });
          return { id, durationMs: took(), outcome: 'waiting', until: outcome.until };
        }
        if (outcome.kind === 'failed') {
          logger.error('line failed', { reason: outcome.reason, conflict: true, dismantled: true });
          const { kind: _failed, ...rest } = outcome;
          return {
            id,
            durationMs: took(),
            ...rest,
            outcome: 'failed',
            errorName: 'ConflictError',
            conflict: true,
            dismantled: true,
          };
        }
        logger.info(`line ${outcome.kind}`, { ...outcome });
        const { kind, ...rest } = outcome;
        if (kind === 'pending' || kind === 'held')
          return { id, durationMs: took(), ...rest, reason: outcome.reason, outcome: kind };
        return { id, durationMs: took(), ...rest, outcome: kind };
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
