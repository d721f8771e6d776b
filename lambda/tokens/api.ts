import { performance } from 'node:perf_hooks';
import { pipeline, type Readable, Transform } from 'node:stream';
import { type Dispatcher, request } from 'undici';
import type { SessionKeySource } from '../secrets/session-key.ts';
import { TokensApiError, UnsafeReferenceError } from '../shared/errors.ts';
import { type LineFile, safeId } from '../shared/ids.ts';
import { type RetryListener, type RetryPolicy, withRetry } from '../shared/retry.ts';
import { parseJsonLimited } from './json.ts';

const JSON_API = 'application/vnd.api+json';
/** A JSON document larger than this is refused rather than buffered. */
const MAX_JSON_BYTES = 64 * 1024 * 1024;

/** Resolves when the next request may be sent; rejects when `signal` aborts first. */
export type RequestGate = (signal?: AbortSignal) => Promise<void>;

/** A JSON document from the service: its text as received (to archive) and its parsed value. */
export interface JsonReply {
  /** The body exactly as received. */
  readonly bytes: Buffer;
  /** The body decoded as UTF-8 (a byte-order mark dropped). */
  readonly text: string;
  /** Parsed with {@link parseJsonLimited}: deep values are not materialized. */
  readonly value: unknown;
}

/** The service's answer to a DELETE, as received; whether the line is gone is judged by the caller. */
export interface DeleteReply {
  /** 200, 202 or 204 (the DELETE was taken), or 404 / 410 (the line was gone already). */
  readonly status: number;
  readonly contentType: string;
  /** The body as received, `''` when there is none. */
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
}

/** The tokens service over undici: list, get, open a file stream, delete. */
export class TokensApi {
  readonly #options: TokensApiOptions;

  constructor(options: TokensApiOptions) {
    this.#options = options;
  }

  /** `GET /api/tokens` (or a `links.next` page of it, which must be under TOKENS_API_URL), parsed JSON. */
  async listPage(next?: string): Promise<unknown> {
    const url = next === undefined ? this.#url('/api/tokens') : this.#resolve(next, 'links.next of the list');
    return this.#retrying(() => this.#json('GET', url));
  }

  /**
   * `GET /api/tokens/{id}`: the document as received, and parsed. A 404 or 410 throws with that
   * status. `signal` replaces the run's deadline: the check that follows a DELETE already sent must
   * still be made when the run's deadline has passed (it has its own, short one).
   */
  getLine(id: string, options: { readonly signal?: AbortSignal } = {}): Promise<JsonReply> {
    const signal = options.signal ?? this.#options.signal;
    return this.#retrying(() => this.#jsonReply('GET', this.#lineUrl(id), signal), signal);
  }

  /**
   * `DELETE /api/tokens/{id}`, retried on 5xx and network failures. Any 2xx reply is returned as
   * received (200 with its JSON document; 202 and 204 often with no body), and so are 404 and 410
   * (typically on a retry after a lost reply): the caller confirms what they mean. A 200 that is
   * not JSON (a proxy's page) was never acted on and is retried.
   */
  /** `{base}/api/tokens/{id}`, for messages. */
  lineUrl(id: string): URL {
    return this.#lineUrl(id);
  }

  deleteLine(id: string): Promise<DeleteReply> {
    const url = this.#lineUrl(id);
    return this.#retrying(async () => {
      const response = await this.#send('DELETE', url, this.#requestSignal());
      const status = response.statusCode;
      const contentType = String(response.headers['content-type'] ?? '');
      if (status === 404 || status === 410) {
        await response.body.dump().catch(() => undefined);
        return { status, contentType, text: '', bytes: Buffer.alloc(0), document: undefined };
      }
      if (status === 200) {
        const { text, bytes, value } = await this.#parseJson('DELETE', url, response);
        return { status, contentType, text, bytes, document: value };
      }
      if (status === 202 || status === 204) {
        const bytes = await this.#readBody('DELETE', url, response.body);
        const text = new TextDecoder().decode(bytes);
        let document: unknown;
        try {
          document = text === '' ? undefined : parseJsonLimited(text);
        } catch {
          document = undefined;
        }
        return { status, contentType, text, bytes, document };
      }
      throw await this.#statusError('DELETE', url, response);
    });
  }

  /**
   * Where a file of a line is downloaded from: the reply's link when it gives one, else
   * `/api/tokens/{id}/{name}`. A link outside TOKENS_API_URL (another origin, or the same origin
   * outside its base path) is refused.
   */
  fileUrl(lineId: string, file: LineFile): URL {
    if (file.link !== undefined)
      return this.#resolve(file.link, `link of file ${file.name} of line ${lineId}`);
    return this.#url(`/api/tokens/${safeId(lineId)}/${encodeURIComponent(file.name)}`);
  }

  /**
   * Opens the download of one file, following redirects. The caller owns the returned body: it
   * must consume or destroy it. No retry here: a failed download is retried whole, from the first
   * byte. A body slower than the speed floor fails with a retryable {@link TokensApiError}.
   */
  async openFile(url: URL, signal?: AbortSignal): Promise<Readable> {
    const response = await this.#send('GET', url, signal);
    if (response.statusCode !== 200) {
      throw await this.#statusError('GET', url, response);
    }
    const floor = this.#options.download;
    if (floor === undefined || floor.minSpeedBytesPerSecond <= 0) return response.body;
    return withSpeedFloor(response.body, floor, ({ bytes, ms }) => {
      const rate = Math.floor((bytes * 1000) / ms);
      return new TokensApiError(
        `body delivered ${bytes} bytes in ${(ms / 1000).toFixed(1)} s (${rate} B/s), below the floor of ${floor.minSpeedBytesPerSecond} B/s`,
        { method: 'GET', url: url.href, status: response.statusCode, retryable: true },
      );
    });
  }

  #retrying<T>(operation: () => Promise<T>, signal = this.#options.signal): Promise<T> {
    return withRetry(this.#options.retry, operation, this.#options.onRetry, signal);
  }

  /** The signal of one JSON request: its own deadline, and the run's (or the one given). */
  #requestSignal(run = this.#options.signal): AbortSignal {
    const timeout = AbortSignal.timeout(this.#options.jsonDeadlineMs ?? 300_000);
    return run === undefined ? timeout : AbortSignal.any([timeout, run]);
  }

  #lineUrl(id: string): URL {
    return this.#url(`/api/tokens/${safeId(id)}`);
  }

  #url(path: string): URL {
    const base = this.#options.baseUrl;
    // The base path never ends in "/" here: "//api" would read as another host.
    return new URL(`${base.pathname.replace(/\/+$/, '')}${path}`, base.origin);
  }

  /**
   * Resolves a link from a reply against TOKENS_API_URL (as a directory: `api/x` is `{base}/api/x`,
   * `/svc/api/x` stays as is). It must stay under TOKENS_API_URL: same origin and base path.
   */
  #resolve(link: string, what: string): URL {
    const base = this.#options.baseUrl;
    let url: URL;
    try {
      url = new URL(link, `${base.href.replace(/\/+$/, '')}/`);
    } catch {
      throw new UnsafeReferenceError(`${what} is not a URL: ${JSON.stringify(link.slice(0, 200))}`);
    }
    if (url.origin !== base.origin) {
      throw new UnsafeReferenceError(
        `${what} points to another origin (${url.origin}); the session key is only sent to ${base.origin}`,
      );
    }
    if (url.username || url.password) throw new UnsafeReferenceError(`${what} carries credentials`);
    if (!isUnderBase(url, base)) {
      throw new UnsafeReferenceError(
        `${what} points outside the base path of TOKENS_API_URL (${url.pathname.slice(0, 200)} is not under ${basePath(base) || '/'}); the session key is only sent under it`,
      );
    }
    return url;
  }

  /**
   * Sends one request and follows the redirects of a GET like `curl -L` (see {@link redirectTarget}).
   * The session key goes only to URLs under TOKENS_API_URL; a 401 from one re-reads it, once.
   * Returns the last response; the body of each redirect is drained.
   */
  async #send(method: string, url: URL, signal?: AbortSignal): Promise<Dispatcher.ResponseData> {
    const { dispatcher, sessionKey, baseUrl } = this.#options;
    const chain: URL[] = [url];
    let keyReread = false;
    for (;;) {
      const current = chain[chain.length - 1] ?? url;
      const send = async () => {
        // Requests to the service count against the cap; a redirect to a CDN does not.
        if (current.origin === baseUrl.origin) await this.#options.gate?.(signal);
        return sendOnce(
          dispatcher,
          method,
          current,
          isUnderBase(current, baseUrl) ? await sessionKey.get() : undefined,
          signal,
        );
      };
      let response = await send();
      if (response.statusCode === 401 && isUnderBase(current, baseUrl) && !keyReread) {
        // The key may have been rotated since we cached it: read it again, once.
        keyReread = true;
        await response.body.dump();
        sessionKey.invalidate();
        response = await send();
      }
      let next: URL | undefined;
      try {
        next = redirectTarget(method, chain, response.statusCode, response.headers.location);
      } catch (error) {
        await response.body.dump().catch(() => undefined);
        throw error;
      }
      if (next === undefined) return response;
      // A redirect's body is not read: drain it, so the connection can be reused.
      await response.body.dump().catch(() => undefined);
      chain.push(next);
    }
  }

  async #json(method: string, url: URL): Promise<unknown> {
    return (await this.#jsonReply(method, url)).value;
  }

  async #jsonReply(method: string, url: URL, run?: AbortSignal): Promise<JsonReply> {
    const response = await this.#send(method, url, this.#requestSignal(run));
    if (response.statusCode !== 200) throw await this.#statusError(method, url, response);
    return this.#parseJson(method, url, response);
  }

  /** The JSON body of a 200 reply, as text and parsed; anything else is a retryable failure. */
  async #parseJson(method: string, url: URL, response: Dispatcher.ResponseData): Promise<JsonReply> {
    const contentType = String(response.headers['content-type'] ?? '');
    if (!/^application\/(vnd\.api\+)?json\b/i.test(contentType)) {
      await response.body.dump().catch(() => undefined);
      // A proxy's HTML error page is usually passing: worth another attempt.
      throw new TokensApiError(`expected JSON, got Content-Type "${contentType.slice(0, 100)}"`, {
        method,
        url: url.href,
        status: response.statusCode,
        retryable: true,
      });
    }
    const bytes = await this.#readBody(method, url, response.body);
    let text: string;
    try {
      // JSON is UTF-8 (RFC 8259): other bytes would not survive as text, nor be archived as received.
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new TokensApiError('body is not UTF-8', {
        method,
        url: url.href,
        status: response.statusCode,
        retryable: false,
      });
    }
    try {
      return { bytes, text, value: parseJsonLimited(text) };
    } catch {
      throw new TokensApiError('body is not valid JSON', {
        method,
        url: url.href,
        status: response.statusCode,
        retryable: true,
      });
    }
  }

  #readBody(method: string, url: URL, body: Readable): Promise<Buffer> {
    return readBytes(body, MAX_JSON_BYTES, () => {
      throw new TokensApiError(`JSON body larger than ${MAX_JSON_BYTES} bytes`, {
        method,
        url: url.href,
        retryable: false,
      });
    });
  }

  async #statusError(method: string, url: URL, response: Dispatcher.ResponseData): Promise<TokensApiError> {
    await response.body.dump().catch(() => undefined);
    const status = response.statusCode;
    const retryable = status === 408 || status === 429 || status >= 500;
    const retryAfterMs = parseRetryAfter(response.headers['retry-after']);
    const hint = status === 401 ? ' (the session key was refused, also after re-reading it)' : '';
    return new TokensApiError(`answered ${status}${hint}`, {
      method,
      url: url.href,
      status,
      retryable,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }
}

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

async function readBytes(body: Readable, limit: number, onTooLarge: () => never): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of body) {
      length += (chunk as Buffer).length;
      if (length > limit) onTooLarge();
      chunks.push(chunk as Buffer);
    }
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks);
}

/** One request, with the `Session-Key` header only when a key is given (a URL under TOKENS_API_URL). */
function sendOnce(
  dispatcher: Dispatcher,
  method: string,
  url: URL,
  key: string | undefined,
  signal: AbortSignal | undefined,
): Promise<Dispatcher.ResponseData> {
  return request(url, {
    method: method as Dispatcher.HttpMethod,
    dispatcher,
    headers: {
      accept: JSON_API,
      'content-type': JSON_API,
      ...(key === undefined ? {} : { 'session-key': key }),
    },
    signal,
  });
}

/** The path of TOKENS_API_URL without a trailing slash: `''` for a service at the root. */
function basePath(base: URL): string {
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
  return `${url.origin}${url.pathname}`.slice(0, 300);
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
    throw new TokensApiError(`answered ${status} from ${shown(from)}: ${problem}`, {
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
    throw refused(`Location is not a URL: ${JSON.stringify(raw.slice(0, 200))}`);
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

/**
 * `body` through a byte counter that is checked once per window: a window in which the body
 * delivered less than `minSpeedBytesPerSecond` on average destroys both streams with the error
 * `tooSlow` makes. A window in which bytes were waiting for the reader (the reader was the holdup,
 * not the body) does not count. The timer is unref'd and cleared when the stream closes.
 */
export function withSpeedFloor(
  body: Readable,
  floor: SpeedFloor,
  tooSlow: (measured: { readonly bytes: number; readonly ms: number }) => Error,
): Readable {
  let bytes = 0;
  let windowStart = performance.now();
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      callback(null, chunk);
    },
  });
  const timer = setInterval(() => {
    const now = performance.now();
    const ms = now - windowStart;
    const delivered = bytes;
    bytes = 0;
    windowStart = now;
    if (counter.readableLength > 0 || counter.writableNeedDrain) return;
    if (delivered * 1000 < floor.minSpeedBytesPerSecond * ms)
      counter.destroy(tooSlow({ bytes: delivered, ms }));
  }, floor.speedWindowMs);
  timer.unref();
  counter.once('close', () => clearInterval(timer));
  // Errors reach the reader through `counter`; pipeline destroys `body` with it either way.
  pipeline(body, counter, () => undefined);
  return counter;
}
