import type { Readable } from 'node:stream';
import { type Dispatcher, request } from 'undici';
import { TokensApiError, UnsafeReferenceError } from './errors.ts';
import { type RetryListener, type RetryPolicy, withRetry } from './retry.ts';
import type { SessionKeySource } from './session-key.ts';
import { type LineFile, safeId } from './tokens-line.ts';

const JSON_API = 'application/vnd.api+json';
/** A JSON document larger than this is refused rather than buffered. */
const MAX_JSON_BYTES = 64 * 1024 * 1024;

/** What a DELETE achieved: the reply document, or a line that was already gone. */
export type DeleteOutcome =
  | { readonly kind: 'deleted'; readonly document: unknown }
  | { readonly kind: 'already-gone'; readonly confirmation: string };

export interface TokensApiOptions {
  /** `TOKENS_API_URL`: the session key is only ever sent to this origin. */
  readonly baseUrl: URL;
  readonly dispatcher: Dispatcher;
  readonly sessionKey: SessionKeySource;
  readonly retry: RetryPolicy;
  readonly onRetry?: RetryListener;
  /** Upper bound of one JSON request, body included (a reply that never ends). */
  readonly jsonDeadlineMs?: number;
}

/** The tokens service over undici: list, get, open a file stream, delete. */
export class TokensApi {
  readonly #options: TokensApiOptions;

  constructor(options: TokensApiOptions) {
    this.#options = options;
  }

  /** `GET /api/tokens` (or a `links.next` page of it), parsed JSON. */
  listPage(next?: string): Promise<unknown> {
    const url = next === undefined ? this.#url('/api/tokens') : this.#resolve(next, 'links.next of the list');
    return this.#retrying(() => this.#json('GET', url));
  }

  /** `GET /api/tokens/{id}`, parsed JSON. */
  getLine(id: string): Promise<unknown> {
    return this.#retrying(() => this.#json('GET', this.#lineUrl(id)));
  }

  /**
   * `DELETE /api/tokens/{id}`. A 404 (typically on a retry after a lost reply) is confirmed
   * with a GET before the line counts as already gone.
   */
  async deleteLine(id: string): Promise<DeleteOutcome> {
    const url = this.#lineUrl(id);
    try {
      const document = await this.#retrying(() => this.#json('DELETE', url));
      return { kind: 'deleted', document };
    } catch (error) {
      if (!(error instanceof TokensApiError && error.status === 404)) throw error;
    }
    try {
      const document = await this.getLine(id);
      const status = (document as { data?: { attributes?: { status?: unknown } } })?.data?.attributes?.status;
      if (status === 'deleted') return { kind: 'already-gone', confirmation: 'GET shows status deleted' };
      throw new TokensApiError(
        `DELETE answered 404 but GET still shows the line (status ${String(status)})`,
        {
          method: 'DELETE',
          url: url.href,
          status: 404,
          retryable: false,
        },
      );
    } catch (error) {
      if (error instanceof TokensApiError && error.status === 404 && error.details.method === 'GET') {
        return { kind: 'already-gone', confirmation: 'GET answered 404' };
      }
      throw error;
    }
  }

  /**
   * Where a file of a line is downloaded from: the reply's link when it gives one, else
   * `/api/tokens/{id}/{name}`. A link to another origin is refused.
   */
  fileUrl(lineId: string, file: LineFile): URL {
    if (file.link !== undefined)
      return this.#resolve(file.link, `link of file ${file.name} of line ${lineId}`);
    return this.#url(`/api/tokens/${safeId(lineId)}/${encodeURIComponent(file.name)}`);
  }

  /**
   * Opens the download of one file. The caller owns the returned body: it must consume or
   * destroy it. No retry here: a failed download is retried whole, from the first byte.
   */
  async openFile(url: URL, signal?: AbortSignal): Promise<Readable> {
    const response = await this.#send('GET', url, signal);
    if (response.statusCode !== 200) {
      throw await this.#statusError('GET', url, response);
    }
    return response.body;
  }

  #retrying<T>(operation: () => Promise<T>): Promise<T> {
    return withRetry(this.#options.retry, operation, this.#options.onRetry);
  }

  #lineUrl(id: string): URL {
    return this.#url(`/api/tokens/${safeId(id)}`);
  }

  #url(path: string): URL {
    const base = this.#options.baseUrl;
    // The base path never ends in "/" here: "//api" would read as another host.
    return new URL(`${base.pathname.replace(/\/+$/, '')}${path}`, base.origin);
  }

  /** Resolves a link from a reply; it must stay on the origin of TOKENS_API_URL. */
  #resolve(link: string, what: string): URL {
    let url: URL;
    try {
      url = new URL(link, this.#options.baseUrl.origin);
    } catch {
      throw new UnsafeReferenceError(`${what} is not a URL: ${JSON.stringify(link.slice(0, 200))}`);
    }
    if (url.origin !== this.#options.baseUrl.origin) {
      throw new UnsafeReferenceError(
        `${what} points to another origin (${url.origin}); the session key is only sent to ${this.#options.baseUrl.origin}`,
      );
    }
    if (url.username || url.password) throw new UnsafeReferenceError(`${what} carries credentials`);
    return url;
  }

  async #send(method: string, url: URL, signal?: AbortSignal): Promise<Dispatcher.ResponseData> {
    const send = async (key: string) =>
      request(url, {
        method: method as Dispatcher.HttpMethod,
        dispatcher: this.#options.dispatcher,
        headers: { accept: JSON_API, 'content-type': JSON_API, 'session-key': key },
        signal,
      });
    let response = await send(await this.#options.sessionKey.get());
    if (response.statusCode === 401) {
      // The key may have been rotated since we cached it: read it again, once.
      await response.body.dump();
      this.#options.sessionKey.invalidate();
      response = await send(await this.#options.sessionKey.get());
    }
    return response;
  }

  async #json(method: string, url: URL): Promise<unknown> {
    const signal = AbortSignal.timeout(this.#options.jsonDeadlineMs ?? 300_000);
    const response = await this.#send(method, url, signal);
    if (response.statusCode !== 200) throw await this.#statusError(method, url, response);
    const contentType = String(response.headers['content-type'] ?? '');
    if (!/^application\/(vnd\.api\+)?json\b/i.test(contentType)) {
      await response.body.dump();
      // A proxy's HTML error page is usually passing: worth another attempt.
      throw new TokensApiError(`expected JSON, got Content-Type "${contentType.slice(0, 100)}"`, {
        method,
        url: url.href,
        status: response.statusCode,
        retryable: true,
      });
    }
    const text = await readText(response.body, MAX_JSON_BYTES, () => {
      throw new TokensApiError(`JSON body larger than ${MAX_JSON_BYTES} bytes`, {
        method,
        url: url.href,
        retryable: false,
      });
    });
    try {
      return JSON.parse(text);
    } catch {
      throw new TokensApiError('body is not valid JSON', {
        method,
        url: url.href,
        status: response.statusCode,
        retryable: true,
      });
    }
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

async function readText(body: Readable, limit: number, onTooLarge: () => never): Promise<string> {
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
  return Buffer.concat(chunks).toString('utf8');
}
