import type { Dispatcher } from 'undici';
import { HttpStatusError } from '../shared/errors.ts';
import type { RetryListener, RetryPolicy } from '../shared/retry.ts';
import type { SessionKeySource } from '../shared/session-key-source.ts';
import type { ByteGate } from './bandwidth.ts';
import type { SpeedFloor } from './http.ts';

/**
 * What the tokens client is given ({@link TokensApiOptions}), and its replies as received, before
 * `document.ts` reads them; {@link goneStatus} reads the one failure that says the line is gone.
 */

/**
 * Resolves when the next request may be sent; rejects when `signal` aborts first. An `urgent`
 * request (the read a DELETE rests on, the DELETE, the read that confirms it) goes before every
 * waiting request that is not: the line's state is read as close to its DELETE as the cap allows.
 */
export type RequestGate = (signal?: AbortSignal, urgent?: boolean) => Promise<void>;

/** A JSON document from the service: its text as received (to archive) and its parsed value. */
export interface JsonReply {
  /** The body exactly as received. */
  readonly bytes: Buffer;
  /** The body decoded as UTF-8 (a byte-order mark dropped). */
  readonly text: string;
  /** Parsed with {@link parseJsonLimited}: deep values are not materialized. */
  readonly value: unknown;
}

/** The service's answer to a DELETE, as received, before it is read (see {@link readDeleteReply}). */
export interface WireDeleteReply {
  /** 200, 202 or 204 (the DELETE was taken), or 404 / 410 (the line was gone already). */
  readonly status: number;
  readonly contentType: string;
  /** The body decoded leniently (invalid bytes replaced), `''` when there is none: for reading, not keeping. */
  readonly text: string;
  /** The body exactly as received. */
  readonly bytes: Buffer;
  /** The body parsed, when it is JSON; undefined otherwise. */
  readonly document: unknown;
}

export interface TokensApiOptions {
  /** `TOKENS_API_URL`: the session key is only ever sent to this origin. */
  readonly baseUrl: URL;
  readonly dispatcher: Dispatcher;
  readonly sessionKey: SessionKeySource;
  readonly retry: RetryPolicy;
  readonly onRetry?: RetryListener;
  /** Upper bound of one JSON request, body included (a reply that never ends). */
  readonly jsonDeadlineMs?: number;
  /** The run's deadline: aborts every request and retry of this client when it fires. */
  readonly signal?: AbortSignal;
  /**
   * Waited for before each request to the service (`MAX_REQUESTS_PER_SECOND`): shared by every
   * client of the process, so the cap holds across lines, files and retries.
   */
  readonly gate?: RequestGate;
  /** A floor on the speed of file bodies (`Config['download']`); absent or 0 B/s: no floor. */
  readonly download?: SpeedFloor;
  /**
   * Every body read from a reply, files and JSON alike, goes through this (`MAX_BYTES_PER_SECOND`):
   * shared by every client of the process, so the cap holds across lines and files.
   */
  readonly bandwidth?: ByteGate;
}

/**
 * A reply to a GET of a line that says the line is gone: its status, 404 or 410, for the line's
 * own URL (a redirect that ends in a 404 says nothing of the line); undefined for any other
 * failure, which proves nothing.
 */
export function goneStatus(error: unknown): 404 | 410 | undefined {
  if (!(error instanceof HttpStatusError) || error.details.redirectedTo !== undefined) return undefined;
  return error.status === 404 || error.status === 410 ? error.status : undefined;
}
