import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { Agent } from 'undici';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { TokensApiError, UnsafeReferenceError } from '../../../lambda/shared/errors.ts';
import type { LineFile } from '../../../lambda/shared/ids.ts';
import type { SessionKeySource } from '../../../lambda/shared/session-key-source.ts';
import { TokensApi } from '../../../lambda/tokens/api.ts';
import {
  isUnderBase,
  MAX_REDIRECTS,
  redirectTarget,
  type SpeedFloor,
  watchedBody,
} from '../../../lambda/tokens/http.ts';
import { closeAfterEach, type RecordingServer, startRecordingServer } from '../../reliability/harness.ts';

const track = closeAfterEach();
const agent = new Agent({ keepAliveTimeout: 1000 });
afterAll(() => agent.close());

const JSON_API = 'application/vnd.api+json';
const KEY = 'the-session-key';
const LINE_ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const SHA256 = 'f6b7af3fc7ce1a1dd7d0a327e1c87d7a51533cd1da2ec973a6283deadd695697';

/** A key source that hands out `keys` in turn, one more on each invalidate. */
function keySource(...keys: string[]): SessionKeySource & { readonly invalidated: () => number } {
  let index = 0;
  return {
    get: async () => keys[Math.min(index, keys.length - 1)] ?? KEY,
    invalidate: () => {
      index += 1;
    },
    invalidated: () => index,
  };
}

function apiFor(
  baseUrl: string,
  options: { sessionKey?: SessionKeySource; download?: SpeedFloor } = {},
): TokensApi {
  return new TokensApi({
    baseUrl: new URL(baseUrl),
    dispatcher: agent,
    sessionKey: options.sessionKey ?? keySource(KEY),
    retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 },
    ...(options.download === undefined ? {} : { download: options.download }),
  });
}

/** A server that answers each path from `routes`, 404 otherwise; requests are recorded. */
function serve(routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void>) {
  return startRecordingServer((req, res) => {
    const route = routes[req.url ?? ''];
    if (route === undefined) res.writeHead(404).end();
    else route(req, res);
  }).then(track);
}

const redirect =
  (status: number, location: string) =>
  (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(status, { location, 'content-type': 'text/html' }).end('<p>moved</p>');
  };

const bytes =
  (body: string) =>
  (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body);
  };

const json =
  (document: unknown) =>
  (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(200, { 'content-type': JSON_API }).end(JSON.stringify(document));
  };

function keysSent(server: RecordingServer): (string | string[] | undefined)[] {
  return server.requests.map((r) => r.headers['session-key']);
}

function file(name: string, link?: string): LineFile {
  return { name, size: 1, sha256: SHA256, link };
}

describe('TokensApi redirects', () => {
  it('follows a 302 within the service and sends the key on both hops', async () => {
    const service = await serve({
      '/api/files/1': redirect(302, '/api/files/1/v2'),
      '/api/files/1/v2': bytes('payload'),
    });
    const api = apiFor(service.url);

    const body = await text(await api.openFile(new URL(`${service.url}/api/files/1`)));

    expect(body).toBe('payload');
    expect(service.requests.map((r) => r.url)).toEqual(['/api/files/1', '/api/files/1/v2']);
    expect(keysSent(service)).toEqual([KEY, KEY]);
  });

  it('follows a 307 to another origin without the session key, and returns its bytes', async () => {
    const storage = await serve({ '/bucket/object?X-Signature=abc': bytes('from storage') });
    const service = await serve({
      '/api/files/1': redirect(307, `${storage.url}/bucket/object?X-Signature=abc`),
    });
    const api = apiFor(service.url);

    const body = await text(await api.openFile(new URL(`${service.url}/api/files/1`)));

    expect(body).toBe('from storage');
    expect(keysSent(service)).toEqual([KEY]);
    expect(storage.requests).toHaveLength(1);
    expect(storage.requests[0]?.headers).not.toHaveProperty('session-key');
  });

  it.each([301, 303, 308])('follows a %i of a JSON document', async (status) => {
    const service = await serve({
      '/api/tokens': redirect(status, '/api/tokens?page=1'),
      '/api/tokens?page=1': json({ data: [] }),
    });
    const api = apiFor(service.url);

    const page = await api.listPage();

    expect(page).toEqual({ lines: [], invalid: [], next: undefined });
    expect(keysSent(service)).toEqual([KEY, KEY]);
  });

  it('drops the key for a URL on the same origin outside the base path', async () => {
    const service = await serve({
      '/svc/api/files/1': redirect(302, '/elsewhere/1'),
      '/elsewhere/1': bytes('outside'),
    });
    const api = apiFor(`${service.url}/svc`);

    const body = await text(await api.openFile(new URL(`${service.url}/svc/api/files/1`)));

    expect(body).toBe('outside');
    expect(keysSent(service)).toEqual([KEY, undefined]);
  });

  it(`follows ${MAX_REDIRECTS} redirects and refuses the next, naming the chain`, async () => {
    const routes: Record<string, ReturnType<typeof redirect>> = {};
    for (let hop = 0; hop <= MAX_REDIRECTS + 1; hop++)
      routes[`/hop/${hop}`] = redirect(302, `/hop/${hop + 1}`);
    const service = await serve(routes);
    const api = apiFor(service.url);

    const attempt = api.openFile(new URL(`${service.url}/hop/0`));

    await expect(attempt).rejects.toThrow(TokensApiError);
    await expect(attempt).rejects.toMatchObject({
      retryable: false,
      status: 302,
      message: expect.stringContaining(`more than ${MAX_REDIRECTS} redirects (a chain of 7 URLs)`),
    });
    expect(service.requests).toHaveLength(MAX_REDIRECTS + 1);
  });

  it('reaches a body after exactly five redirects', async () => {
    const routes: Record<string, ReturnType<typeof redirect>> = { '/hop/5': bytes('end') };
    for (let hop = 0; hop < 5; hop++) routes[`/hop/${hop}`] = redirect(307, `/hop/${hop + 1}`);
    const service = await serve(routes);
    const api = apiFor(service.url);

    const body = await text(await api.openFile(new URL(`${service.url}/hop/0`)));

    expect(body).toBe('end');
  });

  it('never follows a redirect of a DELETE, and keeps the line', async () => {
    const target = await serve({});
    const service = await serve({ [`/api/tokens/${LINE_ID}`]: redirect(307, `${target.url}/x`) });
    const api = apiFor(service.url);

    const attempt = api.deleteLine(LINE_ID);

    await expect(attempt).rejects.toMatchObject({
      name: 'HttpStatusError',
      status: 307,
      retryable: false,
      message: expect.stringContaining('a DELETE is never redirected'),
    });
    expect(target.requests).toEqual([]);
    expect(service.requests).toHaveLength(1);
  });

  it('re-reads a refused key on the first hop, then follows the redirect', async () => {
    const service = await serve({
      '/api/files/1': (req, res) => {
        if (req.headers['session-key'] !== 'rotated') res.writeHead(401).end();
        else redirect(302, '/api/files/2')(req, res);
      },
      '/api/files/2': bytes('fresh'),
    });
    const sessionKey = keySource('stale', 'rotated');
    const api = apiFor(service.url, { sessionKey });

    const body = await text(await api.openFile(new URL(`${service.url}/api/files/1`)));

    expect(body).toBe('fresh');
    expect(sessionKey.invalidated()).toBe(1);
    expect(keysSent(service)).toEqual(['stale', 'rotated', 'rotated']);
  });

  it.each([
    ['credentials', (url: string) => `http://user:pw@${new URL(url).host}/x`],
    ['a javascript: scheme', () => 'javascript:alert(1)'],
    ['an invalid URL', () => 'http://[not-a-host/x'],
  ])('refuses a Location with %s and requests nothing more', async (_what, location) => {
    const elsewhere = await serve({});
    const service = await serve({
      '/api/files/1': (_req, res) => res.writeHead(302, { location: location(elsewhere.url) }).end(),
    });
    const api = apiFor(service.url);

    const attempt = api.openFile(new URL(`${service.url}/api/files/1`));

    await expect(attempt).rejects.toThrow(UnsafeReferenceError);
    expect(service.requests).toHaveLength(1);
    expect(elsewhere.requests).toEqual([]);
  });

  it('returns a 3xx without Location as the reply, which fails the download', async () => {
    const service = await serve({ '/api/files/1': (_req, res) => res.writeHead(302).end() });
    const api = apiFor(service.url);

    const attempt = api.openFile(new URL(`${service.url}/api/files/1`));

    await expect(attempt).rejects.toMatchObject({ name: 'HttpStatusError', status: 302 });
  });
});

describe('redirectTarget', () => {
  const chain = (...urls: string[]) => urls.map((url) => new URL(url));

  it('is undefined for a reply that is not a redirect, or has no Location', () => {
    expect(redirectTarget('GET', chain('https://a/x'), 200, '/y')).toBeUndefined();
    expect(redirectTarget('GET', chain('https://a/x'), 304, '/y')).toBeUndefined();
    expect(redirectTarget('GET', chain('https://a/x'), 302, undefined)).toBeUndefined();
    expect(redirectTarget('GET', chain('https://a/x'), 302, ' ')).toBeUndefined();
  });

  it('resolves a relative Location against the last URL of the chain, without its fragment', () => {
    const to = redirectTarget('GET', chain('https://a/x', 'https://b/dir/y'), 303, 'z?q=1#frag');

    expect(to?.href).toBe('https://b/dir/z?q=1');
  });

  it('refuses a step from https down to http, also later in the chain', () => {
    expect(() => redirectTarget('GET', chain('https://a/x'), 302, 'http://a/y')).toThrow(
      /from https down to http/,
    );
    expect(() => redirectTarget('GET', chain('https://a/x', 'https://b/y'), 302, 'http://c/z')).toThrow(
      UnsafeReferenceError,
    );
  });

  it('allows http to https, and http on a plain http chain', () => {
    expect(redirectTarget('GET', chain('http://a/x'), 302, 'https://b/y')?.href).toBe('https://b/y');
    expect(redirectTarget('GET', chain('http://a/x'), 302, 'http://b/y')?.href).toBe('http://b/y');
  });

  it('never puts a query of the Location in its message', () => {
    const attempt = () =>
      redirectTarget('GET', chain('https://a/x'), 302, 'http://b/y?X-Amz-Signature=secret');

    expect(attempt).toThrow(/from https down to http \(http:\/\/b\/y\)/);
    expect(attempt).not.toThrow(/secret/);
  });

  it.each(['DELETE', 'POST'])('refuses to redirect a %s', (method) => {
    expect(() => redirectTarget(method, chain('https://a/x'), 307, '/y')).toThrow(
      `a ${method} is never redirected`,
    );
  });
});

describe('isUnderBase', () => {
  const base = new URL('https://host/svc');

  it.each(['https://host/svc', 'https://host/svc/', 'https://host/svc/api/tokens?page=2'])(
    'accepts %s',
    (url) => {
      expect(isUnderBase(new URL(url), base)).toBe(true);
    },
  );

  it.each([
    'https://host/svcx/api',
    'https://host/api/tokens',
    'https://host/',
    'http://host/svc/api',
    'https://host:8443/svc/api',
    'https://other/svc/api',
    'https://u:p@host/svc/api',
    'https://host/svc/%2e%2e/admin',
    'https://host/svc%2Fapi',
    'https://host/svc/..%2Fadmin',
    'https://host/svc/..%5cadmin',
  ])('refuses %s', (url) => {
    expect(isUnderBase(new URL(url), base)).toBe(false);
  });

  it('accepts every path of the origin when the service is at the root', () => {
    expect(isUnderBase(new URL('https://host/anything'), new URL('https://host'))).toBe(true);
  });
});

describe('TokensApi links under the base path', () => {
  const api = apiFor('https://tokens.example.com/svc');

  it.each([
    [`/svc/api/tokens/${LINE_ID}/data`, `https://tokens.example.com/svc/api/tokens/${LINE_ID}/data`],
    [`api/tokens/${LINE_ID}/data`, `https://tokens.example.com/svc/api/tokens/${LINE_ID}/data`],
    [
      'https://tokens.example.com/svc/downloads/data?x=1',
      'https://tokens.example.com/svc/downloads/data?x=1',
    ],
  ])('accepts the link %s under the base path', (link, expected) => {
    const url = api.fileUrl(LINE_ID, file('data', link));

    expect(url.href).toBe(expected);
  });

  it.each([
    `/api/tokens/${LINE_ID}/data`,
    '/svcx/data',
    '/svc/../admin',
    '../admin',
    '/svc/%2e%2e/admin',
    'https://tokens.example.com/other/data',
  ])('refuses the link %s outside the base path', (link) => {
    const attempt = () => api.fileUrl(LINE_ID, file('data', link));

    expect(attempt).toThrow(UnsafeReferenceError);
    expect(attempt).toThrow(/outside the base path of TOKENS_API_URL/);
  });

  it('builds {base}/api/tokens/{id}/{name} when the reply links no file', () => {
    const url = api.fileUrl(LINE_ID, file('score'));

    expect(url.href).toBe(`https://tokens.example.com/svc/api/tokens/${LINE_ID}/score`);
  });

  it('refuses a links.next of the list outside the base path, without requesting it', async () => {
    const service = await serve({
      '/svc/api/tokens': json({ data: [], links: { next: '/api/tokens?page=2' } }),
    });
    const real = apiFor(`${service.url}/svc`);

    const attempt = real.listPage('/api/tokens?page=2');

    await expect(attempt).rejects.toThrow(UnsafeReferenceError);
    expect(service.requests).toEqual([]);
  });
});

describe('TokensApi JSON replies', () => {
  it('refuses a JSON reply past 64 MiB as unreadable, for good, once the limit is crossed', async () => {
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const service = await serve({
      [`/api/tokens/${LINE_ID}`]: (_req, res) => {
        res.writeHead(200, { 'content-type': JSON_API });
        // 64 MiB of spaces and one more chunk: the reader stops at the limit, the rest is cut off.
        let sent = 0;
        const more = () => {
          while (sent < 65) {
            sent += 1;
            if (!res.write(chunk)) return void res.once('drain', more);
          }
          res.end();
        };
        res.on('error', () => undefined);
        more();
      },
    });
    const api = apiFor(service.url);

    const reading = api.getLine(LINE_ID);

    await expect(reading).rejects.toMatchObject({
      name: 'UnreadableReplyError',
      message: expect.stringContaining(`JSON body larger than ${64 * 1024 * 1024} bytes`),
      retryable: false,
    });
  });
});

describe('TokensApi speed floor', () => {
  /** A download that sends one byte every `everyMs`, and never ends. */
  function trickle(everyMs: number) {
    return (_req: IncomingMessage, res: ServerResponse): void => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write('x');
      const timer = setInterval(() => res.write('x'), everyMs);
      res.on('close', () => clearInterval(timer));
    };
  }

  it('fails a body slower than the floor over a window, as a retryable attempt naming URL and rate', {
    timeout: 5000,
  }, async () => {
    const service = await serve({ '/slow': trickle(20) });
    const api = apiFor(service.url, { download: { minSpeedBytesPerSecond: 1000, speedWindowMs: 200 } });
    const body = await api.openFile(new URL(`${service.url}/slow`));
    const started = performance.now();

    const reading = text(body);

    await expect(reading).rejects.toThrow(TokensApiError);
    await expect(reading).rejects.toMatchObject({
      retryable: true,
      message: expect.stringMatching(
        new RegExp(
          `GET ${service.url}/slow: body delivered \\d+ bytes in 0\\.\\d s \\(\\d+ B/s\\), below the floor of 1000 B/s`,
        ),
      ),
    });
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('passes a body faster than the floor', async () => {
    const payload = 'y'.repeat(256 * 1024);
    const service = await serve({ '/fast': bytes(payload) });
    const api = apiFor(service.url, { download: { minSpeedBytesPerSecond: 1000, speedWindowMs: 50 } });

    const body = await text(await api.openFile(new URL(`${service.url}/fast`)));

    expect(body).toBe(payload);
  });

  it('has no floor at 0 bytes per second', async () => {
    const service = await serve({
      '/slow': (_req, res) => {
        res.writeHead(200);
        res.write('a');
        setTimeout(() => res.end('b'), 150);
      },
    });
    const api = apiFor(service.url, { download: { minSpeedBytesPerSecond: 0, speedWindowMs: 50 } });

    const body = await text(await api.openFile(new URL(`${service.url}/slow`)));

    expect(body).toBe('ab');
  });
});

describe('watchedBody', () => {
  const floor: SpeedFloor = { minSpeedBytesPerSecond: 1_000_000, speedWindowMs: 30 };
  const brokeOff = (error: unknown, received: number) =>
    new Error(`broke off after ${received} bytes: ${(error as Error).message}`, { cause: error });

  it('does not count a window in which the reader, not the body, held things up', async () => {
    const source = new PassThrough();
    const tooSlow = vi.fn(() => new Error('too slow'));
    const body = watchedBody(source, { floor, tooSlow, brokeOff });
    source.end(Buffer.alloc(64 * 1024));

    // Nobody reads for several windows: the bytes wait in the counter.
    await new Promise((resolve) => setTimeout(resolve, 150));
    const read = await text(body);

    expect(read).toHaveLength(64 * 1024);
    expect(tooSlow).not.toHaveBeenCalled();
  });

  it('clears its timer when the body ends', async () => {
    const setSpy = vi.spyOn(globalThis, 'setInterval');
    const clearSpy = vi.spyOn(globalThis, 'clearInterval');
    try {
      const body = watchedBody(Readable.from(['a', 'b']), {
        floor,
        tooSlow: () => new Error('too slow'),
        brokeOff,
      });

      await text(body);
      await new Promise((resolve) => (body.closed ? resolve(undefined) : body.once('close', resolve)));

      const timer = setSpy.mock.results[0]?.value;
      expect(timer).toBeDefined();
      expect(clearSpy).toHaveBeenCalledWith(timer);
    } finally {
      setSpy.mockRestore();
      clearSpy.mockRestore();
    }
  });

  it('aborts nothing when an unpaced download closes: no controller, no DOMException per file', async () => {
    const abort = vi.spyOn(AbortController.prototype, 'abort');
    try {
      const body = watchedBody(Readable.from(['a', 'b']), {
        floor,
        tooSlow: () => new Error('too slow'),
        brokeOff,
      });

      const read = await text(body);
      await new Promise((resolve) => (body.closed ? resolve(undefined) : body.once('close', resolve)));

      expect(read).toBe('ab');
      expect(abort).not.toHaveBeenCalled();
    } finally {
      abort.mockRestore();
    }
  });

  it('destroys the source with the error when the floor trips', async () => {
    const source = new PassThrough();
    const body = watchedBody(source, { floor, tooSlow: () => new Error('too slow'), brokeOff });

    await expect(text(body)).rejects.toThrow('too slow');

    expect(source.destroyed).toBe(true);
  });

  it('names an error of the body itself as the download broke off, after how many bytes', async () => {
    const source = new PassThrough();
    const body = watchedBody(source, { tooSlow: () => new Error('too slow'), brokeOff });
    const reading = text(body);
    source.write(Buffer.alloc(1000));
    await new Promise((resolve) => setImmediate(resolve));
    source.destroy(new Error('other side closed'));

    await expect(reading).rejects.toThrow('broke off after 1000 bytes: other side closed');
  });

  it('lets the reader stop it with its own error, which is not taken for the download breaking off', async () => {
    const source = new PassThrough();
    const body = watchedBody(source, { floor, tooSlow: () => new Error('too slow'), brokeOff });
    const failed = new Promise<unknown>((resolve) => body.once('error', resolve));

    body.destroy(new Error('PutObject failed'));

    await expect(failed).resolves.toMatchObject({ message: 'PutObject failed' });
    expect(source.destroyed).toBe(true);
  });
});
