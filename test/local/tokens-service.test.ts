import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { Agent, type Dispatcher, request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  mixedLines,
  startTokensService,
  type TokensService,
  type TokensServiceOptions,
} from './tokens-service.ts';

const KEY = '11111111-2222-3333-4444-555555555555';
const JSON_API = 'application/vnd.api+json';
const HEX64 = /^[0-9a-f]{64}$/;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

// A private pool, so that sockets to stopped simulators never leak into other test files.
const agent = new Agent({ keepAliveTimeout: 1000 });
let current: TokensService | undefined;

async function start(opts: Partial<TokensServiceOptions> = {}): Promise<TokensService> {
  current = await startTokensService({ sessionKey: KEY, ...opts });
  return current;
}

afterEach(async () => {
  await current?.close();
  current = undefined;
});

afterAll(async () => {
  await agent.close();
});

function call(
  svc: TokensService,
  path: string,
  opts: { method?: Dispatcher.HttpMethod; key?: string | null } = {},
): Promise<Dispatcher.ResponseData> {
  const headers: Record<string, string> = { accept: JSON_API, 'content-type': JSON_API };
  if (opts.key !== null) headers['session-key'] = opts.key ?? KEY;
  return request(`${svc.url}${path}`, { method: opts.method ?? 'GET', headers, dispatcher: agent });
}

/** Status of a request whose body does not matter (read and dropped, so the connection is reusable). */
async function statusOf(
  svc: TokensService,
  path: string,
  opts: { method?: Dispatcher.HttpMethod; key?: string | null } = {},
): Promise<number> {
  const res = await call(svc, path, opts);
  await res.body.dump();
  return res.statusCode;
}

// biome-ignore lint/suspicious/noExplicitAny: JSON documents are probed freely in assertions.
async function json(svc: TokensService, path: string, method?: Dispatcher.HttpMethod): Promise<any> {
  const res = await call(svc, path, method ? { method } : {});
  expect(res.headers['content-type']).toBe(JSON_API);
  expect(res.headers['cache-control']).toBe('no-cache');
  const body = await res.body.json();
  return { status: res.statusCode, body };
}

/** Reads a body to the end (or to its error), hashing as it goes so that nothing big is kept. */
async function drain(
  body: AsyncIterable<Buffer>,
): Promise<{ bytes: number; sha256: string; error?: unknown }> {
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    for await (const chunk of body) {
      hash.update(chunk);
      bytes += chunk.length;
    }
  } catch (error) {
    return { bytes, sha256: hash.digest('hex'), error };
  }
  return { bytes, sha256: hash.digest('hex') };
}

/**
 * A bare HTTP/1.1 GET that reads into one reused buffer (net `onread`), so that the client itself adds no
 * garbage to an RSS measurement of the simulator running in the same process.
 */
function leanGet(
  svc: TokensService,
  path: string,
): Promise<{ status: number; contentLength: number; bytes: number; sha256: string; peakRss: number }> {
  const { hostname, port } = new URL(svc.url);
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let head = '';
    let status = 0;
    let contentLength = -1;
    let bytes = 0;
    let peakRss = process.memoryUsage().rss;
    let nextSample = 0;
    const buffer = Buffer.alloc(64 * 1024);
    const socket = connect({
      host: hostname,
      port: Number(port),
      onread: {
        buffer,
        callback: (n) => {
          let body = buffer.subarray(0, n);
          if (status === 0) {
            const seen = head.length;
            head += body.toString('latin1');
            const end = head.indexOf('\r\n\r\n');
            if (end < 0) return true;
            status = Number(head.slice(9, 12));
            contentLength = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? -1);
            body = body.subarray(end + 4 - seen);
          }
          hash.update(body);
          bytes += body.length;
          if (bytes >= nextSample) {
            peakRss = Math.max(peakRss, process.memoryUsage().rss);
            nextSample += 4 * 1024 * 1024;
          }
          return true;
        },
      },
    });
    socket.on('error', reject);
    socket.on('close', () => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      resolve({ status, contentLength, bytes, sha256: hash.digest('hex'), peakRss });
    });
    // Not end(): a Node server hangs up on a half-closed client part-way through the reply.
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nSession-Key: ${KEY}\r\nConnection: close\r\n\r\n`,
    );
  });
}

function expectQuick<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms)),
  ]);
}

describe('tokens-service simulator', () => {
  it('listens on an OS-assigned loopback port', async () => {
    const svc = await start();
    expect(svc.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(svc.url.endsWith(':0')).toBe(false);
  });

  it('serves a finished line whose file bytes hash to the stated sha256', async () => {
    const svc = await start({ lines: [{ id: 'line-1', status: 'finished', fileSize: 100_000 }] });
    const { status, body } = await json(svc, '/api/tokens/line-1');
    expect(status).toBe(200);
    expect(body.links).toEqual({
      self: '/api/tokens',
      info: '/api/tokens/line-1',
      data: '/api/tokens/line-1/data',
    });
    expect(body.meta.seed).toEqual(expect.any(String));
    const attrs = body.data.attributes;
    expect(body.data).toMatchObject({ id: 'line-1', type: 'tokens' });
    expect(body.data.relationships.payment.data).toMatchObject({ type: 'transaction' });
    expect(attrs).toMatchObject({ status: 'finished', analysis: 'none', partial: false });
    expect(attrs.filesizes).toEqual({ data: 100_000 });
    expect(Object.keys(attrs.filehashes)).toEqual(['data']);
    expect(attrs.filehashes.data).toMatch(HEX64);
    for (const key of ['size', 'digits', 'available', 'reachable', 'checksum']) {
      expect(typeof attrs[key]).toBe('string');
    }
    expect(typeof attrs.rate).toBe('number');
    for (const stamp of ['requested', 'started', 'ended', 'finished'])
      expect(attrs.timestamps[stamp]).toMatch(ISO_MS);

    const res = await call(svc, body.links.data);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    expect(res.headers['content-length']).toBe('100000');
    const got = await drain(res.body);
    expect(got).toEqual({ bytes: 100_000, sha256: attrs.filehashes.data });
    expect(createHash('sha256').update(svc.fileBytes('line-1', 'data')).digest('hex')).toBe(
      attrs.filehashes.data,
    );
  });

  it('generates the same bytes for the same line id and file name', async () => {
    const a = await startTokensService({ sessionKey: KEY, lines: [{ id: 'same', status: 'finished' }] });
    const b = await startTokensService({ sessionKey: KEY, lines: [{ id: 'same', status: 'finished' }] });
    try {
      expect(a.fileBytes('same', 'data').equals(b.fileBytes('same', 'data'))).toBe(true);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('gives a metrics line four files, each downloadable at /api/tokens/{id}/{name}', async () => {
    const svc = await start({
      lines: [{ id: 'm', status: 'finished', analysis: 'metrics', fileSize: 1000, fileSizes: { score: 0 } }],
    });
    const { body } = await json(svc, '/api/tokens/m');
    const attrs = body.data.attributes;
    expect(attrs.analysis).toBe('metrics');
    expect(attrs.filesizes).toEqual({ data: 1000, score: 0, analysis: 1000, delta: 1000 });
    expect(Object.keys(attrs.filehashes).sort()).toEqual(['analysis', 'data', 'delta', 'score']);
    const t = attrs.timestamps;
    expect(t.analyzed).toMatch(ISO_MS);
    // ISO-8601 UTC strings of equal shape compare in time order.
    expect([t.requested, t.started, t.ended, t.analyzed, t.finished]).toEqual(
      [t.requested, t.started, t.ended, t.analyzed, t.finished].sort(),
    );
    expect(Object.keys(body.links).sort()).toEqual(['data', 'info', 'self']);
    for (const name of ['data', 'score', 'analysis', 'delta']) {
      const res = await call(svc, `/api/tokens/m/${name}`);
      expect(res.statusCode).toBe(200);
      expect(await drain(res.body)).toEqual({ bytes: attrs.filesizes[name], sha256: attrs.filehashes[name] });
    }
    expect(svc.lines.get('m')?.files.size).toBe(4);
  });

  it('lists lines with filesizes but without filehashes or links', async () => {
    const svc = await start({ lines: mixedLines(4, { fileSize: 10 }) });
    const { status, body } = await json(svc, '/api/tokens');
    expect(status).toBe(200);
    expect(body.links).toEqual({ self: '/api/tokens' });
    expect(body.data.map((d: { attributes: { status: string } }) => d.attributes.status)).toEqual([
      'requested',
      'started',
      'finished',
      'finished',
    ]);
    const [requested, started, none, metrics] = body.data;
    for (const item of body.data) {
      expect(item.links).toBeUndefined();
      expect(item.attributes.filehashes).toBeUndefined();
    }
    expect(requested.attributes.timestamps).toEqual({ requested: expect.stringMatching(ISO_MS) });
    expect(requested.attributes.progress).toBeUndefined();
    expect(requested.attributes.available).toMatch(/^\d{70}$/);
    expect(typeof started.attributes.progress).toBe('number');
    expect(Object.keys(started.attributes.timestamps).sort()).toEqual(['requested', 'started']);
    expect(none.attributes.filesizes).toEqual({ data: 10 });
    expect(Object.keys(metrics.attributes.filesizes)).toHaveLength(4);
  });

  it('answers 401 with a JSON:API error document on a wrong or missing Session-Key, and honours rotation', async () => {
    const svc = await start({ lines: [{ id: 'x', status: 'finished' }] });
    for (const key of ['wrong', null]) {
      const res = await call(svc, '/api/tokens', { key });
      expect(res.statusCode).toBe(401);
      expect(res.headers['content-type']).toBe(JSON_API);
      expect(await res.body.json()).toEqual({ errors: [{ status: '401', title: 'Unauthorized' }] });
    }
    expect(await statusOf(svc, '/api/tokens/x/data', { key: 'wrong' })).toBe(401);
    svc.setSessionKey('rotated');
    expect(await statusOf(svc, '/api/tokens')).toBe(401);
    expect(await statusOf(svc, '/api/tokens', { key: 'rotated' })).toBe(200);
    expect(svc.requests.map((r) => [r.sessionKey, r.status])).toEqual([
      ['wrong', 401],
      [undefined, 401],
      ['wrong', 401],
      [KEY, 401],
      ['rotated', 200],
    ]);
  });

  it('answers 404 with an error document for unknown ids, files and paths', async () => {
    const svc = await start({ lines: [{ id: 'r', status: 'requested' }] });
    for (const path of ['/api/tokens/nope', '/api/tokens/r/data', '/api/tokens/nope/data', '/elsewhere']) {
      const { status, body } = await json(svc, path);
      expect(status).toBe(404);
      expect(body).toEqual({ errors: [{ status: '404', title: 'Not Found' }] });
    }
    expect((await json(svc, '/api/tokens/r')).body.links).toEqual({
      self: '/api/tokens',
      info: '/api/tokens/r',
    });
  });

  it('paginates the list with links.next and appends raw list items', async () => {
    const svc = await start({ pageSize: 2, lines: mixedLines(3) });
    svc.setRawListItems([{ id: 42 }, 'junk']);
    const pages = [];
    let path: string | undefined = '/api/tokens';
    while (path) {
      const { body } = await json(svc, path);
      pages.push(body.data);
      path = body.links.next;
    }
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    expect(pages[1]?.[1]).toEqual({ id: 42 });
    expect(pages[2]).toEqual(['junk']);
    expect(svc.requests.map((r) => r.path)).toEqual([
      '/api/tokens',
      '/api/tokens?page=2',
      '/api/tokens?page=3',
    ]);
    expect((await json(svc, '/api/tokens?page=9')).body).toEqual({
      links: { self: '/api/tokens?page=9' },
      data: [],
    });
    expect((await json(svc, '/api/tokens?page=zero')).status).toBe(400);
  });

  it('serves requested and started snapshots, and 404 for a state not yet reached', async () => {
    const svc = await start({
      lines: [
        { id: 'f', status: 'finished' },
        { id: 'q', status: 'requested' },
      ],
    });
    const requested = (await json(svc, '/api/tokens/f/requested')).body;
    expect(requested.links).toEqual({ self: '/api/tokens', info: '/api/tokens/f' });
    expect(requested.data.attributes.status).toBe('requested');
    expect(Object.keys(requested.data.attributes.timestamps)).toEqual(['requested']);
    const started = (await json(svc, '/api/tokens/f/started')).body;
    expect(started.data.attributes).toMatchObject({ status: 'started', progress: 0 });
    expect(started.data.attributes.filesizes).toBeUndefined();
    expect((await json(svc, '/api/tokens/q/started')).status).toBe(404);
  });

  it('moves a line to finished with setStatus, creating its files', async () => {
    const svc = await start({ lines: [{ id: 's', status: 'started', fileSize: 5 }] });
    expect(await statusOf(svc, '/api/tokens/s/data')).toBe(404);
    svc.setStatus('s', 'finished');
    const { body } = await json(svc, '/api/tokens/s');
    expect(body.data.attributes.filesizes).toEqual({ data: 5 });
    expect(body.links.data).toBe('/api/tokens/s/data');
    expect(await statusOf(svc, '/api/tokens/s/data')).toBe(200);
  });

  it('answers DELETE with the line marked deleted, then forgets the line', async () => {
    const svc = await start({
      lines: [{ id: 'd', status: 'finished', analysis: 'metrics', fileSize: 64 }, { status: 'started' }],
    });
    const { status, body } = await json(svc, '/api/tokens/d', 'DELETE');
    expect(status).toBe(200);
    expect(body.links).toEqual({ self: '/api/tokens/d' });
    expect(body.meta).toBeUndefined();
    expect(body.data).toMatchObject({ id: 'd', type: 'tokens' });
    expect(body.data.attributes.status).toBe('deleted');
    expect(body.data.attributes.timestamps.deleted).toMatch(ISO_MS);
    expect(Object.keys(body.data.attributes.filehashes)).toHaveLength(4);
    expect(svc.lines.get('d')?.status).toBe('deleted');

    expect((await json(svc, '/api/tokens/d')).status).toBe(404);
    expect((await json(svc, '/api/tokens/d/data')).status).toBe(404);
    expect((await json(svc, '/api/tokens')).body.data.map((d: { id: string }) => d.id)).not.toContain('d');
    expect((await json(svc, '/api/tokens/d', 'DELETE')).status).toBe(404);
    expect((await json(svc, '/api/tokens/unknown', 'DELETE')).status).toBe(404);
    expect(svc.deleteCount('d')).toBe(2);
    // The bytes stay available for assertions about what was archived.
    expect(svc.fileBytes('d', 'delta')).toHaveLength(64);
  });

  it('overrides links and serves raw line documents', async () => {
    const svc = await start({ lines: [{ id: 'o', status: 'finished' }] });
    svc.setLinkOverride('o', { data: 'http://elsewhere.invalid/steal' });
    expect((await json(svc, '/api/tokens/o')).body.links.data).toBe('http://elsewhere.invalid/steal');
    svc.setRawLine('raw', {
      data: { id: 'raw', attributes: { status: 'finished', filesizes: { data: -1 } } },
    });
    expect((await json(svc, '/api/tokens/raw')).body.data.attributes.filesizes.data).toBe(-1);
  });

  describe('faults', () => {
    it('status 503 fails once, then the request succeeds', async () => {
      const svc = await start({ lines: [{ id: 'a', status: 'finished' }] });
      svc.inject({ target: 'list', fault: { kind: 'status', status: 503 } });
      const first = await json(svc, '/api/tokens');
      expect(first).toEqual({
        status: 503,
        body: { errors: [{ status: '503', title: 'Service Unavailable' }] },
      });
      expect((await json(svc, '/api/tokens')).status).toBe(200);
    });

    it('status 429 carries a Retry-After header', async () => {
      const svc = await start({ lines: [{ id: 'a', status: 'finished' }] });
      svc.inject({ target: 'get', id: 'a', fault: { kind: 'status', status: 429, retryAfterSeconds: 7 } });
      const res = await call(svc, '/api/tokens/a');
      expect(res.statusCode).toBe(429);
      expect(res.headers['retry-after']).toBe('7');
      await res.body.dump();
    });

    it('faults are scoped by id and file and repeat `times` times', async () => {
      const svc = await start({
        lines: [
          { id: 'a', status: 'finished', analysis: 'metrics' },
          { id: 'b', status: 'finished' },
        ],
      });
      svc.inject({
        target: 'file',
        id: 'a',
        file: 'score',
        fault: { kind: 'status', status: 500 },
        times: 2,
      });
      svc.inject({ target: 'file', fault: { kind: 'status', status: 502 }, times: Number.POSITIVE_INFINITY });
      const statuses = [];
      for (const path of [
        '/api/tokens/a/data',
        '/api/tokens/a/score',
        '/api/tokens/a/score',
        '/api/tokens/a/score',
      ]) {
        statuses.push(await statusOf(svc, path));
      }
      expect(statuses).toEqual([502, 500, 500, 502]);
      expect((await json(svc, '/api/tokens/b')).status).toBe(200);
    });

    it('truncate sends fewer bytes than Content-Length, then closes', async () => {
      const svc = await start({ lines: [{ id: 't', status: 'finished', fileSize: 300_000 }] });
      svc.inject({ target: 'file', fault: { kind: 'truncate' } });
      const res = await call(svc, '/api/tokens/t/data');
      expect(res.headers['content-length']).toBe('300000');
      const got = await drain(res.body);
      expect(got.bytes).toBe(150_000);
      expect(got.error).toBeDefined();
    });

    it('truncate applies to JSON replies too, which then carry a Content-Length', async () => {
      const svc = await start({ lines: mixedLines(4) });
      svc.inject({ target: 'list', fault: { kind: 'truncate' } });
      const res = await call(svc, '/api/tokens');
      const stated = Number(res.headers['content-length']);
      expect(stated).toBeGreaterThan(0);
      const got = await drain(res.body);
      expect(got.bytes).toBe(Math.floor(stated / 2));
      expect(got.error).toBeDefined();
    });

    it('reset breaks the connection part-way through the body', async () => {
      const svc = await start({ lines: [{ id: 't', status: 'finished', fileSize: 300_000 }] });
      svc.inject({ target: 'file', fault: { kind: 'reset' } });
      const got = await call(svc, '/api/tokens/t/data').then(
        (res) => drain(res.body),
        (error: unknown) => ({ bytes: 0, sha256: '', error }),
      );
      expect(got.error).toBeDefined();
      expect(got.bytes).toBeLessThan(300_000);
    });

    it('corrupt keeps the length but changes the hash', async () => {
      const svc = await start({ lines: [{ id: 'c', status: 'finished', fileSize: 200_001 }] });
      svc.inject({ target: 'file', id: 'c', fault: { kind: 'corrupt' } });
      const res = await call(svc, '/api/tokens/c/data');
      const got = await drain(res.body);
      expect(got.error).toBeUndefined();
      expect(got.bytes).toBe(200_001);
      expect(got.sha256).not.toBe(svc.lines.get('c')?.files.get('data')?.sha256);
    });

    it('stall hangs the body, and close() still returns promptly', async () => {
      const svc = await start({ lines: [{ id: 's', status: 'finished', fileSize: 1_000_000 }] });
      svc.inject({ target: 'file', fault: { kind: 'stall' } });
      const res = await call(svc, '/api/tokens/s/data');
      expect(res.statusCode).toBe(200);
      const reading = drain(res.body);
      const early = await Promise.race([reading, new Promise((r) => setTimeout(() => r('pending'), 200))]);
      expect(early).toBe('pending');
      await expectQuick(svc.close(), 2000);
      const got = await expectQuick(reading, 2000);
      expect(got.error).toBeDefined();
      expect(got.bytes).toBeLessThan(1_000_000);
    });

    it('oversize sends more bytes than the stated size, without Content-Length', async () => {
      const svc = await start({ lines: [{ id: 'o', status: 'finished', fileSize: 1000 }] });
      svc.inject({ target: 'file', fault: { kind: 'oversize', extraBytes: 5000 } });
      const res = await call(svc, '/api/tokens/o/data');
      expect(res.headers['content-length']).toBeUndefined();
      expect((await drain(res.body)).bytes).toBe(6000);
    });

    it('never-ends streams until the client gives up', async () => {
      const svc = await start({ lines: [{ id: 'n', status: 'finished', fileSize: 1000 }] });
      svc.inject({ target: 'file', fault: { kind: 'never-ends' } });
      const res = await call(svc, '/api/tokens/n/data');
      expect(res.headers['content-length']).toBeUndefined();
      let bytes = 0;
      for await (const chunk of res.body) {
        bytes += chunk.length;
        if (bytes > 2_000_000) break; // leaving the loop destroys the body
      }
      expect(bytes).toBeGreaterThan(2_000_000);
      await expectQuick(svc.close(), 2000);
    });

    it('bad-json serves a body that does not parse', async () => {
      const svc = await start({ lines: [{ id: 'j', status: 'finished' }] });
      svc.inject({ target: 'get', id: 'j', fault: { kind: 'bad-json' } });
      const res = await call(svc, '/api/tokens/j');
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe(JSON_API);
      const text = await res.body.text();
      expect(() => JSON.parse(text)).toThrow();
    });

    it('wrong-content-type serves an HTML page', async () => {
      const svc = await start();
      svc.inject({ target: 'list', fault: { kind: 'wrong-content-type' } });
      const res = await call(svc, '/api/tokens');
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(await res.body.text()).toContain('<html>');
    });

    it('delete-lost deletes the line server-side but never replies', async () => {
      const svc = await start({ lines: [{ id: 'l', status: 'finished' }] });
      svc.inject({ target: 'delete', id: 'l', fault: { kind: 'delete-lost' } });
      await expect(call(svc, '/api/tokens/l', { method: 'DELETE' })).rejects.toThrow();
      expect(svc.lines.get('l')?.status).toBe('deleted');
      expect(svc.deleteCount('l')).toBe(1);
      expect(svc.requests.at(-1)?.status).toBe(0);
      expect((await json(svc, '/api/tokens/l')).status).toBe(404);
    });

    it('a refused DELETE (status fault) leaves the line in place', async () => {
      const svc = await start({ lines: [{ id: 'l', status: 'finished' }] });
      svc.inject({ target: 'delete', fault: { kind: 'status', status: 503 } });
      expect((await json(svc, '/api/tokens/l', 'DELETE')).status).toBe(503);
      expect(svc.lines.get('l')?.status).toBe('finished');
    });
  });

  it('streams a 64 MiB file with the right hash while its memory stays flat', async () => {
    const size = 64 * 1024 * 1024;
    const before = process.memoryUsage().rss;
    const svc = await start();
    const line = svc.addLine({ status: 'finished', fileSize: size });
    const got = await leanGet(svc, `/api/tokens/${line.id}/data`);
    expect(got).toMatchObject({ status: 200, contentLength: size, bytes: size });
    expect(got.sha256).toBe(line.files.get('data')?.sha256);
    expect(got.peakRss - before).toBeLessThan(32 * 1024 * 1024);
  });
});
