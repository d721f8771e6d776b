import { text } from 'node:stream/consumers';
import { Agent } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { LineFile } from '../../../lambda/shared/ids.ts';
import type { SessionKeySource } from '../../../lambda/shared/session-key-source.ts';
import { type RequestGate, TokensApi, type TokensApiOptions } from '../../../lambda/tokens/api.ts';
import type { ByteGate } from '../../../lambda/tokens/bandwidth.ts';
import { startTokensService, type TokensService } from '../../local/tokens-service.ts';
import { closeAfterEach, startRecordingServer } from '../../reliability/harness.ts';

const KEY = 'urgent-requests-session-key';
const ROTATED = 'urgent-requests-rotated-key';
const agent = new Agent({ keepAliveTimeout: 1000 });
afterAll(() => agent.close());
const track = closeAfterEach();
let service: TokensService | undefined;
afterEach(async () => {
  await service?.close();
  service = undefined;
});

/** A gate that lets every request through at once and notes how each asked for its slot. */
function recordingGate(): { gate: RequestGate; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    gate: async (_signal, urgent) => void asked.push(urgent === true ? 'urgent' : 'waits its turn'),
  };
}

/** A byte gate that lets every body through at once and notes how each piece asked for it. */
function recordingByteGate(): { bandwidth: ByteGate; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    bandwidth: {
      largestTake: 1 << 20,
      take: async (_bytes, _signal, urgent) => void asked.push(urgent === true ? 'urgent' : 'waits its turn'),
    },
  };
}

/** A key source that gives `keys` in turn, the next one after each invalidate (a rotation). */
function rotatingKey(...keys: string[]): SessionKeySource {
  let index = 0;
  return {
    get: async () => keys[Math.min(index, keys.length - 1)] ?? KEY,
    invalidate: () => {
      index += 1;
    },
  };
}

/** The simulator with one finished line of one 64-byte file, and that line's id. */
async function oneLine(): Promise<{ svc: TokensService; id: string }> {
  service = await startTokensService({ sessionKey: KEY, lines: [{ status: 'finished', fileSize: 64 }] });
  const [id] = [...service.lines.keys()];
  if (id === undefined) throw new Error('no line');
  return { svc: service, id };
}

/** A client of `baseUrl` whose key rotates on a 401, trying each request `attempts` times. */
function apiOf(baseUrl: string, caps: Pick<TokensApiOptions, 'gate' | 'bandwidth'>, attempts = 1): TokensApi {
  return new TokensApi({
    baseUrl: new URL(baseUrl),
    dispatcher: agent,
    sessionKey: rotatingKey(KEY, ROTATED),
    retry: { attempts, baseDelayMs: 1, maxDelayMs: 5 },
    ...caps,
  });
}

describe('the requests around a DELETE, under a request cap', () => {
  it('ask the cap for an urgent slot (the re-read asked for, the DELETE); the first read and the downloads do not', async () => {
    const { svc, id } = await oneLine();
    const { gate, asked } = recordingGate();
    const api = apiOf(svc.url, { gate });

    const first = await api.getLine(id);
    if (first.kind !== 'read') throw new Error('line not read');
    const file = first.line.files.find((candidate) => candidate.name === 'data') as LineFile;
    await text(await api.openFile(api.fileUrl(id, file)));
    await api.getLine(id, { urgent: true });
    await api.deleteLine(id);

    expect(asked).toEqual(['waits its turn', 'waits its turn', 'urgent', 'urgent']);
    expect(svc.requests.map((request) => request.method)).toEqual(['GET', 'GET', 'GET', 'DELETE']);
  });

  it('stay urgent when sent again: a re-read and a DELETE retried after a 503, and each resent after a 401 with the key read again', async () => {
    const { svc, id } = await oneLine();
    const { gate, asked } = recordingGate();
    const api = apiOf(svc.url, { gate }, 3);
    svc.inject({ target: 'get', id, fault: { kind: 'status', status: 503 } });
    svc.inject({ target: 'delete', id, fault: { kind: 'status', status: 503 } });

    await api.getLine(id, { urgent: true });
    // The key is rotated between the re-read and the DELETE: the DELETE is refused once, then resent.
    svc.setSessionKey(ROTATED);
    await api.deleteLine(id);

    expect(svc.requests.map((request) => `${request.method} ${request.status}`)).toEqual([
      'GET 503',
      'GET 200',
      'DELETE 401',
      'DELETE 503',
      'DELETE 200',
    ]);
    expect(asked).toEqual(['urgent', 'urgent', 'urgent', 'urgent', 'urgent']);
  });

  it('stay urgent when redirected within the service: the re-read that lands elsewhere under TOKENS_API_URL', async () => {
    const id = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
    const document = {
      data: { id, type: 'tokens', attributes: { status: 'finished', files: [] } },
    };
    const server = track(
      await startRecordingServer((req, res) => {
        if (req.url === `/api/tokens/${id}`) res.writeHead(302, { location: '/moved' }).end();
        else res.writeHead(200, { 'content-type': 'application/vnd.api+json' }).end(JSON.stringify(document));
      }),
    );
    const { gate, asked } = recordingGate();
    const api = apiOf(server.url, { gate });

    await api.getLine(id, { urgent: true }).catch(() => undefined);

    expect(server.requests.map((request) => request.url)).toEqual([`/api/tokens/${id}`, '/moved']);
    expect(asked).toEqual(['urgent', 'urgent']);
  });
});

describe('the bodies of the requests around a DELETE, under a byte cap', () => {
  it('ask the cap for urgent bytes (the re-read asked for, the DELETE reply); the first read and the downloads do not', async () => {
    const { svc, id } = await oneLine();
    const { bandwidth, asked } = recordingByteGate();
    const api = apiOf(svc.url, { bandwidth });
    /** How the body read by `read` asked for its bytes, once per kind. */
    const askedFor = async (read: () => Promise<unknown>) => {
      asked.length = 0;
      await read();
      return [...new Set(asked)];
    };

    const first = await api.getLine(id);
    if (first.kind !== 'read') throw new Error('line not read');
    const file = first.line.files.find((candidate) => candidate.name === 'data') as LineFile;

    expect(await askedFor(() => api.getLine(id))).toEqual(['waits its turn']);
    expect(await askedFor(async () => text(await api.openFile(api.fileUrl(id, file))))).toEqual([
      'waits its turn',
    ]);
    expect(await askedFor(() => api.getLine(id, { urgent: true }))).toEqual(['urgent']);
    expect(await askedFor(() => api.deleteLine(id))).toEqual(['urgent']);
  });
});

describe('the bodies around a DELETE, under a byte cap, when sent again or redirected', () => {
  it('stay urgent: a re-read whose body was not JSON, and one that broke off, read again; a DELETE resent after a 401 and a 503', async () => {
    const { svc, id } = await oneLine();
    const { bandwidth, asked } = recordingByteGate();
    const api = apiOf(svc.url, { bandwidth }, 3);
    svc.inject({ target: 'get', id, fault: { kind: 'bad-json' } });
    svc.inject({ target: 'get', id, fault: { kind: 'truncate' } });
    svc.inject({ target: 'delete', id, fault: { kind: 'status', status: 503 } });

    const reread = await api.getLine(id, { urgent: true });
    const rereadAsked = [...new Set(asked)];
    svc.setSessionKey(ROTATED);
    await api.deleteLine(id);

    expect(reread.kind).toBe('read');
    expect(svc.requests.map((request) => `${request.method} ${request.status}`)).toEqual([
      'GET 200',
      'GET 200',
      'GET 200',
      'DELETE 401',
      'DELETE 503',
      'DELETE 200',
    ]);
    expect(rereadAsked).toEqual(['urgent']);
    expect([...new Set(asked)]).toEqual(['urgent']);
  });

  it('stay urgent when redirected, within the service or away from it; the list pages do not', async () => {
    const id = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
    const document = JSON.stringify({
      data: {
        id,
        type: 'tokens',
        attributes: { status: 'finished', filehashes: { data: 'a'.repeat(64) }, filesizes: { data: '1' } },
      },
    });
    const elsewhere = track(
      await startRecordingServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/vnd.api+json' }).end(document);
      }),
    );
    const server = track(
      await startRecordingServer((req, res) => {
        if (req.url === `/api/tokens/${id}`) res.writeHead(302, { location: '/moved' }).end('moved');
        else if (req.url === '/moved') res.writeHead(307, { location: `${elsewhere.url}/cdn` }).end();
        else if (req.url === '/api/tokens')
          res
            .writeHead(200, { 'content-type': 'application/vnd.api+json' })
            .end(JSON.stringify({ links: { next: '/api/tokens?page=2' }, data: [] }));
        else res.writeHead(200, { 'content-type': 'application/vnd.api+json' }).end('{"data":[]}');
      }),
    );
    const { bandwidth, asked } = recordingByteGate();
    const api = apiOf(server.url, { bandwidth });

    const page = await api.listPage();
    await api.listPage(page.next);
    const listAsked = [...new Set(asked)];
    asked.length = 0;
    const reread = await api.getLine(id, { urgent: true });

    expect(reread.kind).toBe('read');
    expect(server.requests.map((request) => request.url)).toEqual([
      '/api/tokens',
      '/api/tokens?page=2',
      `/api/tokens/${id}`,
      '/moved',
    ]);
    expect(elsewhere.requests.map((request) => request.url)).toEqual(['/cdn']);
    expect(listAsked).toEqual(['waits its turn']);
    expect([...new Set(asked)]).toEqual(['urgent']);
  });
});
