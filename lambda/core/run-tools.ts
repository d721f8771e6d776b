import type { Logger } from '@aws-lambda-powertools/logger';
import { describeError } from '../shared/errors.ts';
import { type RetryListener, withRetry } from '../shared/retry.ts';
import type { Config, Deps, RunTools, Tally } from './types.ts';

/**
 * What every part of one run uses: the tokens service client and the archive, the run's retry
 * policy, and the tally of its retries, each logged. The line worker and the fan-out planner both
 * start from these.
 */
export function createRunTools(
  deps: Deps,
  config: Pick<Config, 'retry'>,
  options: {
    readonly logger: Logger;
    /** The run's deadline: requests and retries stop when it fires. */
    readonly signal?: AbortSignal | undefined;
  },
): RunTools {
  const tally: Tally = { retries: 0, hashMismatches: 0, hashMismatchAttempts: 0 };
  const onRetry: RetryListener = (error, attempt) => {
    tally.retries += 1;
    options.logger.warn('retrying', { attempt, error: describeError(error) });
  };
  return {
    api: deps.tokens({ onRetry, ...(options.signal === undefined ? {} : { signal: options.signal }) }),
    archive: deps.archive,
    tally,
    retry: (operation, signal = options.signal) => withRetry(config.retry, operation, onRetry, signal),
  };
}
