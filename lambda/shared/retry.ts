import { setTimeout as sleep } from 'node:timers/promises';
import pRetry, { AbortError } from 'p-retry';
import { deadlineReason, HousekeepingError, HttpStatusError } from './errors.ts';

/** How often and how patiently a failed operation is tried again. */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly attempts: number;
  readonly baseDelayMs: number;
  /** Cap of one backoff delay, and the longest `Retry-After` that is waited for. */
  readonly maxDelayMs: number;
}

/** Called before each new attempt, with the error that ended the previous one. */
export type RetryListener = (error: unknown, attempt: number) => void;

const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/**
 * Whether trying again may help: our own errors say so; network failures do; an AWS SDK error
 * does unless it is a 4xx other than 408/429 (the SDK has already retried it on its own).
 */
export function isRetryable(error: unknown): boolean {
  if (error instanceof HousekeepingError) return error.retryable;
  if (typeof error !== 'object' || error === null) return false;
  const { code, $metadata, name } = error as {
    code?: unknown;
    $metadata?: { httpStatusCode?: number };
    name?: unknown;
  };
  if (typeof code === 'string' && RETRYABLE_CODES.has(code)) return true;
  if (name === 'AbortError' || name === 'TimeoutError') return true;
  const status = $metadata?.httpStatusCode;
  if (typeof status === 'number') return status >= 500 || status === 408 || status === 429;
  return $metadata !== undefined;
}

/**
 * Runs `operation` until it succeeds, a non-retryable error occurs, or the attempts are used
 * up: capped exponential backoff with jitter, and never sooner than a `Retry-After` says.
 */
export async function withRetry<T>(
  policy: RetryPolicy,
  operation: (attempt: number) => Promise<T>,
  onRetry?: RetryListener,
  signal?: AbortSignal,
): Promise<T> {
  try {
    return await retrying(policy, operation, onRetry, signal);
  } catch (error) {
    if (signal?.aborted === true) throw deadlineReason(signal);
    throw error instanceof NonErrorThrown ? error.value : error;
  }
}

/** Carries a thrown non-Error value through p-retry, which only handles Error instances. */
class NonErrorThrown extends Error {
  constructor(readonly value: unknown) {
    super('a non-Error value was thrown');
  }
}

function retrying<T>(
  policy: RetryPolicy,
  operation: (attempt: number) => Promise<T>,
  onRetry: RetryListener | undefined,
  signal: AbortSignal | undefined,
): Promise<T> {
  return pRetry(
    async (attempt) => {
      try {
        return await operation(attempt);
      } catch (error) {
        // Not retried, and rethrown unchanged by withRetry.
        if (!(error instanceof Error)) throw new AbortError(new NonErrorThrown(error));
        throw error;
      }
    },
    {
      retries: policy.attempts - 1,
      factor: 2,
      minTimeout: policy.baseDelayMs,
      maxTimeout: policy.maxDelayMs,
      randomize: true,
      // The run's deadline: no new attempt, and no wait, once it has passed.
      ...(signal === undefined ? {} : { signal }),
      shouldRetry: async ({ error, attemptNumber }) => {
        if (!isRetryable(error)) return false;
        const retryAfterMs = error instanceof HttpStatusError ? error.details.retryAfterMs : undefined;
        if (retryAfterMs !== undefined) {
          // Waiting less than the server asked would only be refused again; waiting longer
          // than our cap would stall the run, so a long Retry-After ends the retries.
          if (retryAfterMs > policy.maxDelayMs) return false;
          await sleep(retryAfterMs, undefined, signal === undefined ? {} : { signal }).catch(() => undefined);
          if (signal?.aborted === true) return false;
        }
        onRetry?.(error, attemptNumber + 1);
        return true;
      },
    },
  );
}
