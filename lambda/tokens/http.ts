/** HTTP below the tokens API: one request, redirects, the base path rule, body limits, Retry-After. */
import { performance } from 'node:perf_hooks';
import { finished, type Readable, Transform } from 'node:stream';
import { type Dispatcher, request } from 'undici';
import { JSON_API } from '../shared/contract.ts';
import {
  describeError,
  HousekeepingError,
  HttpStatusError,
  NetworkError,
  TokensTimeoutError,
  UnsafeReferenceError,
} from '../shared/errors.ts';
import { shownWhole } from '../shared/redact.ts';
import { type ByteGate, passThroughGate } from './bandwidth.ts';
import { parseJsonLimited } from './json.ts';

/** An IMF-fixdate, the HTTP-date form servers send (RFC 9110), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`. */
const HTTP_DATE =
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date; anything else is ignored. */
export function parseRetryAfter(header: string | string[] | undefined, now = Date.now()): number | undefined {
  const value = (Array.isArray(header) ? header[0] : header)?.trim();
  if (value === undefined || value === '') return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  if (!HTTP_DATE.test(value)) return undefined;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** A body's way through the process's {@link ByteGate}, stopped by `signal`. */
export interface Pace {
  readonly gate: ByteGate;
  readonly signal?: AbortSignal | undefined;
  /** The body of a request around a DELETE: ahead of the others waiting (see {@link ByteGate.take}). */
  readonly urgent?: boolean;
}

/**
 * The whole body, refused past `limit` bytes. With `pace`, each chunk waits for the gate before
 * the next is read, so the body is pulled no faster than the gate allows.
 */
export async function readBytes(
  body: Readable,
  limit: number,
  onTooLarge: () => never,
  pace?: Pace,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  const keep = (piece: Buffer) => chunks.push(piece);
  try {
    for await (const chunk of body) {
      length += (chunk as Buffer).length;
      if (length > limit) onTooLarge();
      if (pace === undefined) keep(chunk as Buffer);
      else await passThroughGate(pace.gate, chunk as Buffer, pace.signal, keep, pace.urgent);
    }
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks);
}

/**
 * One request, with the `Session-Key` header only when a key is given (a URL under TOKENS_API_URL).
 * `paced`: its reply is read through the byte cap. undici then holds one chunk of it at a time for
 * the gate, not 64 KiB more, and the request asks for the connection to be closed after the reply
 * (`Connection: close`): a reply read slowly may outlast the service's keep-alive timeout, and
 * undici fails a kept-alive reply whose connection closes while its last chunk waits for its
 * reader ("other side closed", every byte received), where it completes a closing one.
 */
export function sendOnce(
  dispatcher: Dispatcher,
  method: string,
  url: URL,
  key: string | undefined,
  signal: AbortSignal | undefined,
  paced = false,
): Promise<Dispatcher.ResponseData> {
  return request(url, {
    method: method as Dispatcher.HttpMethod,
    dispatcher,
    ...(paced ? { highWaterMark: 0, reset: true } : {}),
    headers: {
      accept: JSON_API,
      'content-type': JSON_API,
      ...(key === undefined ? {} : { 'session-key': key }),
    },
    signal,
  });
}

/** The path of TOKENS_API_URL without a trailing slash: `''` for a service at the root. */
export function basePath(base: URL): string {
  return base.pathname.replace(/\/+$/, '');
}

/**
 * Whether `url` is under TOKENS_API_URL: the same origin, no credentials, and a path that is the
 * base path itself or below it (`/svc`, `/svc/...`, never `/svcx`). Only such URLs get the key.
 */
export function isUnderBase(url: URL, base: URL): boolean {
  if (url.origin !== base.origin || url.username !== '' || url.password !== '') return false;
  // An encoded slash or backslash may be decoded by a server into a path outside the base.
  if (/%2f|%5c/i.test(url.pathname)) return false;
  const prefix = basePath(base);
  return prefix === '' || url.pathname === prefix || url.pathname.startsWith(`${prefix}/`);
}

/** How many redirects one request follows, as `curl -L --max-redirs 5` would. */
export const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/** A URL for messages: origin and path, never the query (a presigned URL's signature). */
function shown(url: URL): string {
  return shownWhole(`${url.origin}${url.pathname}`, 300);
}

/**
 * Where a reply sends the request next: `undefined` when it is not a redirect (not 301, 302, 303,
 * 307 or 308, or no `Location`), else the `Location` resolved against the last URL of `chain`
 * (the URLs requested so far, first to last). Throws when the redirect must not be followed: a
 * method other than GET (a DELETE is never redirected), more than {@link MAX_REDIRECTS} hops, a
 * `Location` that is not an http(s) URL or carries credentials, or a step from https to http.
 */
export function redirectTarget(
  method: string,
  chain: readonly URL[],
  status: number,
  location: string | string[] | undefined,
): URL | undefined {
  const raw = (Array.isArray(location) ? location[0] : location)?.trim();
  if (!REDIRECT_STATUSES.has(status) || raw === undefined || raw === '') return undefined;
  const first = chain[0];
  const from = chain[chain.length - 1];
  if (first === undefined || from === undefined) throw new TypeError('a redirect chain starts with a URL');
  if (method !== 'GET' || chain.length > MAX_REDIRECTS) {
    const problem =
      method !== 'GET'
        ? `a ${method} is never redirected`
        : `more than ${MAX_REDIRECTS} redirects (a chain of ${chain.length + 1} URLs)`;
    throw new HttpStatusError(`answered ${status} from ${shown(from)}: ${problem}`, {
      method,
      url: first.href,
      status,
      retryable: false,
    });
  }
  const refused = (problem: string) =>
    new UnsafeReferenceError(`${method} ${shown(first)}: redirect ${status} refused: ${problem}`);
  let to: URL;
  try {
    to = new URL(raw, from);
  } catch {
    throw refused(`Location is not a URL: ${JSON.stringify(shownWhole(raw, 200))}`);
  }
  if (to.protocol !== 'https:' && to.protocol !== 'http:') {
    throw refused(`Location has the scheme ${to.protocol.slice(0, 20)}`);
  }
  if (to.username !== '' || to.password !== '') throw refused(`Location to ${to.host} carries credentials`);
  if (to.protocol === 'http:' && chain.some((url) => url.protocol === 'https:')) {
    throw refused(`from https down to http (${shown(to)})`);
  }
  to.hash = '';
  return to;
}

/** `Config['download']`: the floor on file download speed. */
export interface SpeedFloor {
  /** Bytes per second; 0 disables the floor. */
  readonly minSpeedBytesPerSecond: number;
  /** The window the speed is averaged over. */
  readonly speedWindowMs: number;
}

/** How a file download is watched: its speed floor, and the errors its failures become. */
export interface DownloadWatch {
  /** The floor on speed; none when undefined or 0 bytes per second. */
  readonly floor?: SpeedFloor | undefined;
  /** The error of a window below the floor. */
  readonly tooSlow: (measured: { readonly bytes: number; readonly ms: number }) => Error;
  /** The error a body that broke off (closed, reset, timed out) becomes, given the bytes it delivered. */
  readonly brokeOff: (error: unknown, received: number) => Error;
  /** The process's byte cap, when there is one: each chunk is handed on once the gate grants it. */
  readonly pace?: Pace | undefined;
}

/**
 * `body` through a byte counter, as its reader gets it. An error of the body itself (the service
 * closed or reset the connection, undici's body timeout) reaches the reader as `brokeOff`, so it
 * names the download; the reader destroying the stream (its upload failed) only stops the body.
 * With a floor, the counter is checked once per window: a window in which the body delivered less
 * than `minSpeedBytesPerSecond` on average, over the time the reader let it flow (not the time the
 * pipe held it paused), destroys both streams with `tooSlow`. A window in which the body was held
 * back for more than three quarters of it, or ends with bytes waiting for the reader, does not
 * count: the reader was the holdup, not the body. The timer is unref'd and cleared when the stream
 * closes.
 *
 * With `pace` (`MAX_BYTES_PER_SECOND`), the counter hands each chunk on only as the gate grants it;
 * while it waits, its buffer fills and the pipe holds the body back, so the floor counts that time
 * as held, like a slow reader's, never as the body's: a download waiting for the cap is not a slow
 * peer. A wait for the gate ends when `pace.signal` aborts or the stream closes.
 */
export function watchedBody(body: Readable, watch: DownloadWatch): Readable {
  let received = 0;
  let windowBytes = 0;
  let windowStart = performance.now();
  const pace = watch.pace;
  // Only a paced download waits for anything its close must end: no controller (and no abort,
  // which builds a DOMException) for the others.
  const closed = pace === undefined ? undefined : new AbortController();
  const stop =
    closed === undefined
      ? undefined
      : pace?.signal === undefined
        ? closed.signal
        : AbortSignal.any([pace.signal, closed.signal]);
  const counter = new Transform({
    // Paced, it takes one chunk at a time: the body is held back while that chunk waits for the
    // gate, so little is read from the socket ahead of the cap.
    ...(pace === undefined ? {} : { writableHighWaterMark: 0 }),
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.length;
      windowBytes += chunk.length;
      if (pace === undefined) return callback(null, chunk);
      passThroughGate(pace.gate, chunk, stop, (piece) => this.push(piece)).then(() => callback(), callback);
    },
  });
  // Every error of the body (undici may add one as it is destroyed) is handled here; so is a
  // close before its end without one (ERR_STREAM_PREMATURE_CLOSE): both become `brokeOff`.
  body.on('error', () => undefined);
  finished(body, (error) => {
    if (error !== undefined && error !== null) counter.destroy(watch.brokeOff(error, received));
  });
  // An error before the reader attaches stays on the counter for it (as pipeline() kept it).
  counter.on('error', () => undefined);
  const floor = watch.floor;
  // How long the reader held the body back (the pipe paused it) in the current window: the floor
  // judges the body only on the time it was free to flow.
  let heldMs = 0;
  let heldSince: number | undefined;
  body.on('pause', () => {
    heldSince ??= performance.now();
  });
  body.on('resume', () => {
    if (heldSince === undefined) return;
    heldMs += performance.now() - heldSince;
    heldSince = undefined;
  });
  const timer =
    floor === undefined || floor.minSpeedBytesPerSecond <= 0
      ? undefined
      : setInterval(() => {
          const now = performance.now();
          const ms = now - windowStart;
          if (heldSince !== undefined) {
            heldMs += now - heldSince;
            heldSince = now;
          }
          const free = ms - heldMs;
          const delivered = windowBytes;
          windowBytes = 0;
          heldMs = 0;
          windowStart = now;
          // Too little free time to judge, or bytes waiting for the reader: the reader was the holdup.
          if (free < ms / 4 || counter.readableLength > 0 || counter.writableNeedDrain) return;
          if (delivered * 1000 < floor.minSpeedBytesPerSecond * free)
            counter.destroy(watch.tooSlow({ bytes: delivered, ms: free }));
        }, floor.speedWindowMs);
  timer?.unref();
  counter.once('close', () => {
    clearInterval(timer);
    closed?.abort();
    if (!body.destroyed) body.destroy();
  });
  body.pipe(counter);
  return counter;
}

/** The body parsed, when it is UTF-8 JSON; undefined otherwise (empty, not UTF-8, not JSON). */
export function readableJson(bytes: Buffer): unknown {
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return text === '' ? undefined : parseJsonLimited(text);
  } catch {
    return undefined;
  }
}

/**
 * What a failure below a reply becomes: ours pass as they are, and so does the run's deadline
 * (the caller names it); the request's own time limit is a {@link TokensTimeoutError}; anything
 * else (refused, reset, closed, a body cut short) a {@link NetworkError}.
 */
export function transportFailure(
  method: string,
  url: URL,
  error: unknown,
  signal: AbortSignal | undefined,
  what: string,
): unknown {
  if (error instanceof HousekeepingError) return error;
  const details = { method, url: url.href };
  if (signal?.aborted === true) {
    const reason: unknown = signal.reason;
    const timedOut = reason instanceof Error && reason.name === 'TimeoutError';
    return timedOut ? new TokensTimeoutError(`${what}: timed out`, details, { cause: error }) : error;
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && UNDICI_TIMEOUTS.has(code)) {
    return new TokensTimeoutError(`timed out: ${describeError(error)}`, details, { cause: error });
  }
  return new NetworkError(`${what}: ${describeError(error)}`, details, { cause: error });
}

/** undici's own time limits (connect, headers, body): a timeout, not a broken connection. */
const UNDICI_TIMEOUTS: ReadonlySet<string> = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);
