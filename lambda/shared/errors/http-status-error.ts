import { type RequestDetails, TokensApiError } from './tokens-api-error.ts';

/**
 * The service replied with a status the request does not accept (a refusal, a server error, a
 * redirect that is not followed). The reply is the service's word: `status` says what it did.
 */
export class HttpStatusError extends TokensApiError {
  override readonly name = 'HttpStatusError';
  constructor(message: string, details: RequestDetails & { readonly status: number }) {
    super(message, details);
  }

  override get status(): number {
    return this.details.status ?? 0;
  }
}
