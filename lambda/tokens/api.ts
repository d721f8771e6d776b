import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import {
  describeError,
  HttpStatusError,
  NetworkError,
  TokensTimeoutError,
  UnreadableReplyError,
  UnsafeReferenceError,
} from '../shared/errors.ts';
import { type LineFile, safeId } from '../shared/ids.ts';
import type {
  DeleteReply,
  FilesStatement,
  LineRead,
  ListPage,
  TokensApi as TokensPort,
} from '../shared/ports/tokens.ts';
import { shownWhole } from '../shared/redact.ts';
import { withRetry } from '../shared/retry.ts';
import { goneStatus, type JsonReply, type TokensApiOptions, type WireDeleteReply } from './api-types.ts';
import { readDeleteReply, readKeptReply, readLine, readListPage } from './document.ts';
import {
  basePath,
  isUnderBase,
  parseRetryAfter,
  readableJson,
  readBytes,
  redirectTarget,
  sendOnce,
  transportFailure,
  watchedBody,
} from './http.ts';
import { parseJsonLimited } from './json.ts';

// The client's options and replies live in api-types.ts; named here for every caller.
export type { JsonReply, RequestGate, TokensApiOptions, WireDeleteReply } from './api-types.ts';
export { goneStatus };

/** The media types of a JSON reply: JSON:API's, or plain JSON. */
const JSON_TYPE = /^application\/(vnd\.api\+)?json\b/i;

/** A JSON document larger than this is refused rather than buffered. */
const MAX_JSON_BYTES = 64 * 1024 * 1024;

/**
 * The tokens port ({@link TokensPort}) over undici: list, get, open a file stream, delete. The
 * service's JSON:API documents are read here (`document.ts`): the core gets lines, pages and
 * statements.
 */
export class TokensApi implements TokensPort {
  readonly #options: TokensApiOptions;

  constructor(options: TokensApiOptions) {
    this.#options = options;
  }

  /**
   * `GET /api/tokens` (or a `links.next` page of it, which must be under TOKENS_API_URL), read
   * ({@link readListPage}; a page that is not a list throws a `DocumentError`, not retried).
   */
  async listPage(next?: string): Promise<ListPage> {
    const url = next === undefined ? this.#url('/api/tokens') : this.#resolve(next, 'links.next of the list');
    return readListPage(await this.#retrying(() => this.#json('GET', url)));
  }

  /**
   * `GET /api/tokens/{id}`: the line read ({@link readLine}; an invalid document throws a
   * `DocumentError`, not retried), with its document as received; `gone` on a 404 or 410
   * ({@link goneStatus}). `signal` replaces the run's deadline: the check that follows a DELETE
   * already sent must still be made when the run's deadline has passed (it has its own, short one).
   * `urgent`: the read goes before the requests waiting for the cap (see {@link RequestGate}).
   */
  async getLine(
    id: string,
    options: { readonly signal?: AbortSignal; readonly urgent?: boolean } = {},
  ): Promise<LineRead> {
    const signal = options.signal ?? this.#options.signal;
    const urgent = options.urgent === true;
    let reply: JsonReply;
    try {
      reply = await this.#retrying(() => this.#jsonReply('GET', this.#lineUrl(id), signal, urgent), signal);
    } catch (error) {
      const status = goneStatus(error);
      if (status !== undefined) return { kind: 'gone', status };
      throw error;
    }
    return { kind: 'read', ...readLine(reply.value, id, reply.bytes) };
  }

  /** What a reply kept in the archive states of line `id`, deleted ({@link readKeptReply}). */
  readKeptReply(id: string, body: string): FilesStatement | undefined {
    return readKeptReply(id, body);
  }

  /**
   * `DELETE /api/tokens/{id}`, retried on 5xx and network failures. Any 2xx reply is returned as
   * received, with its document when the body is UTF-8 JSON (200 usually; 202 and 204 often have no
   * body), and so are 404 and 410 (typically on a retry after a lost reply): the caller confirms
   * what they mean. A 200 whose body is unreadable is not retried: it may have acted.
   */
  async deleteLine(id: string): Promise<DeleteReply> {
    return readDeleteReply(id, await this.#deleteReply(id));
  }

  /** The DELETE and its reply as received (see {@link deleteLine}). */
  #deleteReply(id: string): Promise<WireDeleteReply> {
    const url = this.#lineUrl(id);
    return this.#retrying(async () => {
      const signal = this.#requestSignal();
      const response = await this.#send('DELETE', url, signal, true);
      const status = response.statusCode;
      const contentType = String(response.headers['content-type'] ?? '');
      if (status === 404 || status === 410) {
        await response.body.dump().catch(() => undefined);
        return { status, contentType, text: '', bytes: Buffer.alloc(0), document: undefined };
      }
      if (status === 200 && !JSON_TYPE.test(contentType)) {
        // Another media type on a 200: a page put in front of the service (a proxy's, a login's),
        // which did not take the DELETE. Sent again; if it stays, a GET says what happened.
        await response.body.dump().catch(() => undefined);
        throw new UnreadableReplyError(`expected JSON, got Content-Type "${shownWhole(contentType, 100)}"`, {
          method: 'DELETE',
          url: url.href,
          status,
          retryable: true,
        });
      }
      if (status === 200 || status === 202 || status === 204) {
        // The service took the DELETE: whatever its body, the line is confirmed by what it says
        // or, when it says nothing readable (not UTF-8, not JSON), by a GET.
        const bytes = await this.#readBody('DELETE', url, response.body, signal, true);
        return {
          status,
          contentType,
          text: new TextDecoder().decode(bytes),
          bytes,
          document: readableJson(bytes),
        };
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
   * byte. A body slower than the speed floor fails with a {@link TokensTimeoutError}, one that
   * breaks off with a {@link NetworkError}.
   */
  async openFile(url: URL, signal?: AbortSignal): Promise<Readable> {
    const response = await this.#send('GET', url, signal);
    if (response.statusCode !== 200) {
      throw await this.#statusError('GET', url, response);
    }
    const { download: floor, bandwidth: gate } = this.#options;
    const details = { method: 'GET', url: url.href, status: response.statusCode };
    return watchedBody(response.body, {
      floor,
      pace: gate === undefined ? undefined : { gate, signal },
      tooSlow: ({ bytes, ms }) =>
        new TokensTimeoutError(
          `body delivered ${bytes} bytes in ${(ms / 1000).toFixed(1)} s (${Math.floor((bytes * 1000) / ms)} B/s), below the floor of ${floor?.minSpeedBytesPerSecond} B/s`,
          details,
        ),
      brokeOff: (error, received) =>
        new NetworkError(`body broke off after ${received} bytes: ${describeError(error)}`, details, {
          cause: error,
        }),
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
      throw new UnsafeReferenceError(`${what} is not a URL: ${JSON.stringify(shownWhole(link, 200))}`);
    }
    if (url.origin !== base.origin) {
      throw new UnsafeReferenceError(
        `${what} points to another origin (${url.origin}); the session key is only sent to ${base.origin}`,
      );
    }
    if (url.username || url.password) throw new UnsafeReferenceError(`${what} carries credentials`);
    if (!isUnderBase(url, base)) {
      throw new UnsafeReferenceError(
        `${what} points outside the base path of TOKENS_API_URL (${shownWhole(url.pathname, 200)} is not under ${basePath(base) || '/'}); the session key is only sent under it`,
      );
    }
    return url;
  }

  /**
   * Sends one request and follows the redirects of a GET like `curl -L` (see {@link redirectTarget}).
   * The session key goes only to URLs under TOKENS_API_URL; a 401 from one re-reads it, once.
   * Returns the last response; the body of each redirect is drained.
   */
  async #send(
    method: string,
    url: URL,
    signal?: AbortSignal,
    urgent = false,
  ): Promise<Dispatcher.ResponseData> {
    const { dispatcher, sessionKey, baseUrl } = this.#options;
    // Under a byte cap, undici holds one chunk at a time for the gate, not 64 KiB more: what is
    // read from the socket ahead of the cap stays small (see watchedBody and sendOnce).
    const paced = this.#options.bandwidth !== undefined;
    const chain: URL[] = [url];
    let keyReread = false;
    for (;;) {
      const current = chain[chain.length - 1] ?? url;
      const send = async () => {
        // Requests to the service count against the cap; a redirect to a CDN does not.
        if (current.origin === baseUrl.origin) await this.#options.gate?.(signal, urgent);
        const key = isUnderBase(current, baseUrl) ? await sessionKey.get() : undefined;
        return sendOnce(dispatcher, method, current, key, signal, paced).catch((error: unknown) => {
          throw transportFailure(method, url, error, signal, 'no reply');
        });
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
      if (next === undefined) {
        // Where the reply came from, when a redirect led there: its status speaks for that URL.
        if (chain.length > 1) redirectedTo.set(response, current);
        return response;
      }
      // A redirect's body is not read: drain it, so the connection can be reused.
      await response.body.dump().catch(() => undefined);
      chain.push(next);
    }
  }

  async #json(method: string, url: URL): Promise<unknown> {
    return (await this.#jsonReply(method, url)).value;
  }

  async #jsonReply(method: string, url: URL, run?: AbortSignal, urgent = false): Promise<JsonReply> {
    const signal = this.#requestSignal(run);
    const response = await this.#send(method, url, signal, urgent);
    if (response.statusCode !== 200) throw await this.#statusError(method, url, response);
    return this.#parseJson(method, url, response, signal, urgent);
  }

  /** The JSON body of a 200 reply, as text and parsed; anything else is a retryable failure. */
  async #parseJson(
    method: string,
    url: URL,
    response: Dispatcher.ResponseData,
    signal?: AbortSignal,
    urgent = false,
  ): Promise<JsonReply> {
    const refused = (problem: string, retryable: boolean) =>
      new UnreadableReplyError(problem, { method, url: url.href, status: response.statusCode, retryable });
    const contentType = String(response.headers['content-type'] ?? '');
    if (!JSON_TYPE.test(contentType)) {
      await response.body.dump().catch(() => undefined);
      // A proxy's HTML error page is usually passing: worth another attempt.
      throw refused(`expected JSON, got Content-Type "${shownWhole(contentType, 100)}"`, true);
    }
    const bytes = await this.#readBody(method, url, response.body, signal, urgent);
    let text: string;
    try {
      // JSON is UTF-8 (RFC 8259): other bytes would not survive as text, nor be archived as received.
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw refused('body is not UTF-8', false);
    }
    try {
      return { bytes, text, value: parseJsonLimited(text) };
    } catch {
      throw refused('body is not valid JSON', true);
    }
  }

  async #readBody(
    method: string,
    url: URL,
    body: Readable,
    signal?: AbortSignal,
    urgent = false,
  ): Promise<Buffer> {
    try {
      const gate = this.#options.bandwidth;
      return await readBytes(
        body,
        MAX_JSON_BYTES,
        () => {
          // Built only when it happens: an error's stack is captured as it is made, for every reply.
          throw new UnreadableReplyError(`JSON body larger than ${MAX_JSON_BYTES} bytes`, {
            method,
            url: url.href,
            retryable: false,
          });
        },
        gate === undefined ? undefined : { gate, signal, urgent },
      );
    } catch (error) {
      throw transportFailure(method, url, error, signal, 'body broke off');
    }
  }

  async #statusError(method: string, url: URL, response: Dispatcher.ResponseData): Promise<HttpStatusError> {
    const at = redirectedTo.get(response);
    await response.body.dump().catch(() => undefined);
    const status = response.statusCode;
    const retryable = status === 408 || status === 429 || status >= 500;
    const retryAfterMs = parseRetryAfter(response.headers['retry-after']);
    const shownAt = at === undefined ? undefined : shownWhole(`${at.origin}${at.pathname}`, 300);
    const hint =
      (status === 401 ? ' (the session key was refused, also after re-reading it)' : '') +
      (shownAt === undefined ? '' : ` (at ${shownAt}, where redirects led)`);
    return new HttpStatusError(`answered ${status}${hint}`, {
      method,
      url: url.href,
      status,
      retryable,
      ...(shownAt === undefined ? {} : { redirectedTo: shownAt }),
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }
}

/** The URL a reply came from, when redirects led there from the URL asked for. */
const redirectedTo = new WeakMap<Dispatcher.ResponseData, URL>();
