import { type RequestDetails, TokensApiError } from './tokens-api-error.ts';

/**
 * A reply came whole, but its body could not be read as what was asked for (not JSON, not UTF-8,
 * too large, another media type). Inconclusive: it says nothing of what the service did.
 */
export class UnreadableReplyError extends TokensApiError {
  override readonly name = 'UnreadableReplyError';
  constructor(message: string, details: RequestDetails) {
    super(message, details);
  }
}
