import { HousekeepingError } from './base.ts';

/** Where a request to the tokens service went, and what its failure allows. */
export interface RequestDetails {
  readonly method: string;
  readonly url: string;
  /** The reply's status, when a reply came. */
  readonly status?: number;
  readonly retryable: boolean;
  readonly retryAfterMs?: number;
  /** The URL (origin and path) that answered `status`, when redirects led there from `url`. */
  readonly redirectedTo?: string;
}

/**
 * A request to the tokens service failed. Never thrown as such: its kinds say what happened, as
 * ky's errors do, so a caller decides by kind and never by a status range:
 * {@link HttpStatusError} (a reply came, with a status not accepted), `NetworkError` (no reply, or a
 * body that broke off), `UnreadableReplyError` (a body that could not be read or parsed) and
 * `TokensTimeoutError` (a deadline or the speed floor). Only a reply with a status says what the
 * service did; the other three are inconclusive.
 */
export abstract class TokensApiError extends HousekeepingError {
  override readonly name: string = 'TokensApiError';
  override readonly retryable: boolean;
  constructor(
    message: string,
    readonly details: RequestDetails,
    options?: { cause?: unknown },
  ) {
    super(`${details.method} ${details.url}: ${message}`, options);
    this.retryable = details.retryable;
  }

  get status(): number | undefined {
    return this.details.status;
  }
}
