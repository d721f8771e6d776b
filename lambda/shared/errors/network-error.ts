import { type RequestDetails, TokensApiError } from './tokens-api-error.ts';

/**
 * No reply came (the connection was refused, reset or closed), or a body broke off before its end.
 * Inconclusive: the request may or may not have been acted on.
 */
export class NetworkError extends TokensApiError {
  override readonly name = 'NetworkError';
  constructor(message: string, details: Omit<RequestDetails, 'retryable'>, options?: { cause?: unknown }) {
    super(message, { ...details, retryable: true }, options);
  }
}
