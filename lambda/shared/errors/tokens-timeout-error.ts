import { type RequestDetails, TokensApiError } from './tokens-api-error.ts';

/**
 * A request or its body took too long: its own time limit, or a body below the speed floor.
 * Inconclusive, and retryable.
 */
export class TokensTimeoutError extends TokensApiError {
  override readonly name = 'TokensTimeoutError';
  constructor(message: string, details: Omit<RequestDetails, 'retryable'>, options?: { cause?: unknown }) {
    super(message, { ...details, retryable: true }, options);
  }
}
