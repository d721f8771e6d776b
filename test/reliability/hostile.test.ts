import { describe, expect } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import {
  closeAfterEach,
  localStack,
  oneFinishedLine,
  type RecordingServer,
  startFront,
  startRecordingServer,
  twoFinishedLines,
} from './harness.ts';
import { checkInvariant, observedPass, runHandler, settle, snapshot } from './invariant.ts';
import { it } from './ledger.ts';

const track = closeAfterEach();
const JSON_API = 'application/vnd.api+json';

function expectUntouched(evil: RecordingServer): void {
  expect(evil.connections).toBe(0);
  expect(evil.requests).toEqual([]);
}

describe('replies that point elsewhere', () => {
  it('never connects to another origin that a file link points to, and keeps those lines', async ({ s }) => {
    const evil = track(await startRecordingServer());
    const local = await localStack(track, {
      lines: [
        { status: 'finished', fileSize: 1000 },
        { status: 'finished', analysis: 'metrics', fileSize: 1000 },
        { status: 'finished', fileSize: 1000 },
        { status: 'finished', fileSize: 1000 },
        { status: 'finished', fileSize: 1000 },
      ],
    });
    const [absolute, metrics, relative, credentials, healthy] = [...local.tokens.lines.keys()] as [
      string,
      string,
      string,
      string,
      string,
    ];
    const evilHost = new URL(evil.url).host;
    const simHost = new URL(local.tokens.url).host;
    local.tokens.setLinkOverride(absolute, { data: `${evil.url}/steal` });
    local.tokens.setLinkOverride(metrics, { score: `${evil.url}/score` });
    local.tokens.setLinkOverride(relative, { data: `//${evilHost}/api/tokens/${relative}/data` });
    local.tokens.setLinkOverride(credentials, {
      data: `http://user:pw@${simHost}/api/tokens/${credentials}/data`,
    });
    s.fault('get: links.data to another origin');
    s.fault('get: links.score to another origin');
    s.fault('get: protocol-relative link to another host');
    s.fault('get: link with user:password to the same origin');

    const { before, run } = await observedPass(local);

    expectUntouched(evil);
    expect(run.summary?.failed.map((line) => line.id).sort()).toEqual(
      [absolute, metrics, relative, credentials].sort(),
    );
    for (const line of run.summary?.failed ?? []) {
      expect(line.reason).toMatch(/points to another origin|carries credentials/);
    }
    expect(local.tokens.lines.get(healthy)?.status).toBe('deleted');
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('fails the run without following a list link to another origin, nor a link that loops', async ({
    s,
  }) => {
    const evil = track(await startRecordingServer());
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 1000 }] });
    let next = `${evil.url}/api/tokens?page=2`;
    const front = track(
      await startFront(local.tokens.url, (req, res) => {
        if (req.url !== '/api/tokens' && req.url !== '/api/tokens?page=2') return false;
        res.writeHead(200, { 'content-type': JSON_API }).end(JSON.stringify({ data: [], links: { next } }));
        return true;
      }),
    );
    s.fault('list: links.next to another origin');
    s.fault('list: links.next that loops');
    const handler = createHandler({ ...local.env, TOKENS_API_URL: front.url });
    const before = snapshot(local.tokens);

    const elsewhere = await settle(handler({}));
    next = '/api/tokens?page=2';
    const looping = await settle(handler({}));

    expect(elsewhere.error).toMatchObject({ name: 'UnsafeReferenceError' });
    expect(looping.error).toMatchObject({ name: 'DocumentError', message: expect.stringContaining('loops') });
    expectUntouched(evil);
    await checkInvariant(s, local, { before, runs: [elsewhere] });
    await checkInvariant(s, local, { before, runs: [looping] });
  });

  it('sends no session key to another origin a file download is redirected to, and keeps the line whose bytes differ', async ({
    s,
  }) => {
    const evil = track(await startRecordingServer());
    const { local, id } = await oneFinishedLine(track, { env: { RETRY_ATTEMPTS: '2' } });
    const front = track(
      await startFront(local.tokens.url, (req, res) => {
        if (req.url !== `/api/tokens/${id}/data`) return false;
        res.writeHead(302, { location: `${evil.url}/steal` }).end();
        return true;
      }),
    );
    s.fault('file: 302 to another origin that serves other bytes');

    const { before, run } = await observedPass(local, { ...local.env, TOKENS_API_URL: front.url });

    expect(run.summary?.failed).toEqual([{ id, reason: expect.stringContaining('1000') }]);
    expect(evil.requests.map((r) => r.url)).toEqual(['/steal', '/steal']);
    for (const r of evil.requests) expect(r.headers).not.toHaveProperty('session-key');
    await checkInvariant(s, local, { before, runs: [run] });
  });
});

describe('ids and names that would escape their place', () => {
  it('never requests nor stores a listed id that is not a UUID', async ({ s }) => {
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 1000 }] });
    const hostile = [
      '../../etc/passwd',
      '..%2F..%2Fadmin',
      `${crypto.randomUUID()}/../x`,
      `${crypto.randomUUID()}?x=1`,
      'a b',
      '',
    ];
    local.tokens.setRawListItems(
      hostile.map((id) => ({
        id,
        type: 'tokens',
        attributes: { status: 'finished', filesizes: { data: 1 } },
      })),
    );
    for (const id of hostile)
      s.fault(`list item: id ${JSON.stringify(id.replace(/^[0-9a-f-]{36}/, '{uuid}'))}`);

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ dismantled: 1, failed: [] });
    expect(run.summary?.skipped).toHaveLength(hostile.length);
    const [real] = [...local.tokens.lines.keys()] as [string];
    const paths = local.tokens.requests.map((r) => r.path).filter((p) => p !== '/api/tokens');
    expect(paths.every((p) => p.startsWith(`/api/tokens/${real}`))).toBe(true);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('skips a line whose reply names another id, or files that would escape the line prefix', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: Array.from({ length: 5 }, () => ({ status: 'finished' as const, fileSize: 1000 })),
    });
    const lineIds = [...local.tokens.lines.keys()] as [string, string, string, string, string];
    const hash = local.tokens.lines.get(lineIds[0])?.files.get('data')?.sha256 as string;
    const doc = (id: string, names: string[]) => ({
      data: {
        id,
        type: 'tokens',
        attributes: {
          status: 'finished',
          filehashes: Object.fromEntries(names.map((n) => [n, hash])),
          filesizes: Object.fromEntries(names.map((n) => [n, 1000])),
        },
      },
    });
    const [traversal, escaping, manifest, upper, dotted] = lineIds;
    local.tokens.setRawLine(traversal, doc(`${traversal}/../x`, ['data']));
    local.tokens.setRawLine(escaping, doc(escaping, ['data', '../../x']));
    local.tokens.setRawLine(manifest, doc(manifest, ['data', 'manifest.json']));
    local.tokens.setRawLine(upper, doc(upper, ['data', 'Data']));
    local.tokens.setRawLine(dotted, doc(dotted, ['data', '..']));
    s.fault('get: data.id with ../');
    s.fault('get: file named ../../x');
    s.fault('get: file named manifest.json');
    s.fault('get: file named Data');
    s.fault('get: file named ..');

    const { before, run } = await observedPass(local);

    expect(run.summary?.skipped.map((line) => line.id).sort()).toEqual([...lineIds].sort());
    expect(local.tokens.requests.filter((r) => /\/api\/tokens\/[^/]+\/.+/.test(r.path))).toEqual([]);
    await checkInvariant(s, local, { before, runs: [run] });
  });
});

describe('bodies larger than stated, or endless', () => {
  it('stops reading a file one byte past its stated size, and keeps the line', async ({ s }) => {
    const { local, ids } = await twoFinishedLines(track, { env: { RETRY_ATTEMPTS: '3' } });
    const [oversize, endless] = ids;
    s.inject(local.tokens, {
      target: 'file',
      id: oversize,
      fault: { kind: 'oversize', extraBytes: 512 * 1024 * 1024 },
      times: Infinity,
    });
    s.inject(local.tokens, { target: 'file', id: endless, fault: { kind: 'never-ends' }, times: Infinity });
    const before = snapshot(local.tokens);
    const started = Date.now();

    const run = await runHandler(local.env);

    expect(Date.now() - started).toBeLessThan(10_000);
    expect(run.summary?.failed.map((line) => line.id).sort()).toEqual([oversize, endless].sort());
    for (const line of run.summary?.failed ?? [])
      expect(line.reason).toContain('more bytes than the stated 1000');
    // Two files, each refused on all three attempts.
    expect(run.summary).toMatchObject({ hashMismatches: 2, hashMismatchAttempts: 6 });
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('gives up on a line reply that never ends, at the JSON size cap, and keeps the line', async ({ s }) => {
    const { local, ids } = await twoFinishedLines(track);
    const [endless, healthy] = ids;
    s.inject(local.tokens, { target: 'get', id: endless, fault: { kind: 'never-ends' }, times: Infinity });

    const { before, run } = await observedPass(local);

    expect(run.summary?.failed).toEqual([{ id: endless, reason: expect.stringContaining('larger than') }]);
    expect(local.tokens.lines.get(healthy)?.status).toBe('deleted');
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('fails the run when the service accepts connections but never answers', async ({ s }) => {
    const silent = track(
      await startRecordingServer(() => {
        // Never answers: only the client's headers timeout ends the request.
      }),
    );
    const local = await localStack(track, {
      lines: [{ status: 'finished', fileSize: 1000 }],
      env: { HTTP_HEADERS_TIMEOUT_MS: '200', RETRY_ATTEMPTS: '2' },
    });
    s.fault('service: accepts the connection, never sends headers');

    const { before, run } = await observedPass(local, { ...local.env, TOKENS_API_URL: silent.url });

    expect(run.error).toMatchObject({
      name: 'TokensTimeoutError',
      message: expect.stringContaining('HeadersTimeoutError'),
    });
    expect(silent.requests).toHaveLength(2);
    await checkInvariant(s, local, { before, runs: [run] });
  });
});
