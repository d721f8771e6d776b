import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, expect } from 'vitest';
import type { LocalStack } from '../local/stack.ts';
import {
  closeAfterEach,
  finishedLines,
  localStack,
  oneFinishedLine,
  runCli,
  startFront,
  startRecordingServer,
  twoFinishedLines,
} from './harness.ts';
import { checkInvariant, cliOutcome, observedPass, runHandler, snapshot } from './invariant.ts';
import { it, type Scenario } from './ledger.ts';

const track = closeAfterEach();
const JSON_API = 'application/vnd.api+json';

function ids(lines: ReadonlyMap<string, unknown>): string[] {
  return [...lines.keys()];
}

function redirect(res: ServerResponse, status: number, location: string): true {
  res.writeHead(status, { location, 'content-type': 'text/plain' }).end('moved');
  return true;
}

describe('redirects', () => {
  it('follows redirects of downloads and line documents, sends the key only under TOKENS_API_URL, and archives verified bytes', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: finishedLines(3, 3000),
    });
    const [within, elsewhere, document] = ids(local.tokens.lines) as [string, string, string];
    const storage = track(
      await startRecordingServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.end(local.tokens.fileBytes(elsewhere, 'data'));
      }),
    );
    const front = track(
      await startFront(
        local.tokens.url,
        (req, res) => {
          if (req.url === `/api/tokens/${within}/data`) return redirect(res, 302, `/mirror/${within}/data`);
          if (req.url === `/api/tokens/${elsewhere}/data`)
            return redirect(res, 307, `${storage.url}/bucket/${elsewhere}?X-Amz-Signature=abc`);
          if (req.method === 'GET' && req.url === `/api/tokens/${document}`)
            return redirect(res, 303, `/documents/${document}`);
          return false;
        },
        { upstreamPath: (path) => path.replace(/^\/(mirror|documents)\//, '/api/tokens/') },
      ),
    );
    s.fault('file: 302 to another path of the service');
    s.fault('file: 307 to another origin (storage) serving the right bytes');
    s.fault('get: 303 of the line document');

    const { before, run } = await observedPass(local, { ...local.env, TOKENS_API_URL: front.url });

    expect(run.summary).toMatchObject({ archived: 3, dismantled: 3, failed: [] });
    expect(storage.requests.map((r) => r.url)).toEqual([`/bucket/${elsewhere}?X-Amz-Signature=abc`]);
    expect(storage.requests[0]?.headers).not.toHaveProperty('session-key');
    const downloads = local.tokens.requests.filter(
      (r) => r.path === `/api/tokens/${within}/data` || r.path === `/api/tokens/${document}`,
    );
    expect(downloads.length).toBeGreaterThanOrEqual(2);
    for (const r of downloads) expect(r.sessionKey).toBe(local.sessionKey);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('keeps a line whose download redirects in a loop or more than 5 times, and one whose DELETE is redirected', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: finishedLines(4),
    });
    const [looping, endless, deleted, healthy] = ids(local.tokens.lines) as [string, string, string, string];
    const hops: string[] = [];
    const front = track(
      await startFront(local.tokens.url, (req, res) => {
        const url = req.url ?? '';
        if (url === `/api/tokens/${looping}/data`) return redirect(res, 302, `/loop/${looping}`);
        if (url === `/loop/${looping}`) return redirect(res, 301, `/api/tokens/${looping}/data`);
        const hop = /^\/hop\/(\d+)$/.exec(url);
        if (url === `/api/tokens/${endless}/data` || hop !== null) {
          hops.push(url);
          return redirect(res, 307, `/hop/${Number(hop?.[1] ?? 0) + 1}`);
        }
        if (req.method === 'DELETE' && url === `/api/tokens/${deleted}`)
          return redirect(res, 307, `/api/tokens/${deleted}?again=1`);
        return false;
      }),
    );
    s.fault('file: 302/301 redirect loop');
    s.fault('file: endless chain of 307');
    s.fault('delete: 307');

    const { before, run } = await observedPass(local, { ...local.env, TOKENS_API_URL: front.url });

    expect(run.summary?.failed).toEqual(
      [
        { id: looping, reason: expect.stringContaining('more than 5 redirects (a chain of 7 URLs)') },
        { id: endless, reason: expect.stringContaining('more than 5 redirects (a chain of 7 URLs)') },
        { id: deleted, reason: expect.stringContaining('a DELETE is never redirected') },
      ].sort((a, b) => a.id.localeCompare(b.id)),
    );
    // Not retryable: one chain of six requests, no second attempt.
    expect(hops).toHaveLength(6);
    expect(local.tokens.lines.get(healthy)?.status).toBe('deleted');
    expect(local.tokens.deleteCount(deleted)).toBe(0);
    await checkInvariant(s, local, { before, runs: [run] });
  });
});

describe('links under the base path', () => {
  it('serves under TOKENS_API_URL=<service>/svc, and refuses a file link outside /svc without sending it the key', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: [
        { status: 'finished', fileSize: 2000 },
        { status: 'finished', analysis: 'metrics', fileSize: 2000 },
        { status: 'finished', fileSize: 2000 },
      ],
    });
    const [outside, metrics, relative] = ids(local.tokens.lines) as [string, string, string];
    local.tokens.setLinkOverride(outside, { data: `/api/tokens/${outside}/data` });
    local.tokens.setLinkOverride(metrics, { data: `/svc/api/tokens/${metrics}/data` });
    local.tokens.setLinkOverride(relative, { data: `api/tokens/${relative}/data` });
    const strays: IncomingMessage[] = [];
    const front = track(
      await startFront(
        local.tokens.url,
        (req, res) => {
          if (req.url?.startsWith('/svc/')) return false;
          strays.push(req);
          res.writeHead(404).end();
          return true;
        },
        { upstreamPath: (path) => path.slice('/svc'.length) },
      ),
    );
    s.fault('get: links.data on the same origin outside the base path /svc');

    const { before, run } = await observedPass(local, { ...local.env, TOKENS_API_URL: `${front.url}/svc` });

    expect(run.summary?.failed).toEqual([
      { id: outside, reason: expect.stringContaining('outside the base path of TOKENS_API_URL') },
    ]);
    expect(run.summary?.dismantled).toBe(2);
    expect(strays).toEqual([]);
    expect(local.tokens.lines.get(outside)?.status).toBe('finished');
    await checkInvariant(s, local, { before, runs: [run] });
  });
});

// Without the bounds these runs never end: a short timeout makes that a fast failure.
describe('a listing that never ends', () => {
  /** A front whose list never ends: each page names a new cursor; `items` fills every page. */
  async function endlessList(target: string, items: () => unknown[]) {
    let pages = 0;
    const front = track(
      await startFront(target, (req, res) => {
        const url = new URL(req.url ?? '/', 'http://front.invalid');
        if (url.pathname !== '/api/tokens') return false;
        pages += 1;
        const next = `/api/tokens?cursor=${crypto.randomUUID()}`;
        res
          .writeHead(200, { 'content-type': JSON_API })
          .end(JSON.stringify({ data: items(), links: { next } }));
        return true;
      }),
    );
    return { url: front.url, pages: () => pages };
  }

  /**
   * Runs a pass over `list`, and expects it to stop with a ListingError saying `message` after
   * `pages` pages, the invariant kept.
   */
  async function expectListingStopped(
    s: Scenario,
    local: LocalStack,
    list: Awaited<ReturnType<typeof endlessList>>,
    { message, pages }: { message: string; pages: number },
  ): Promise<void> {
    const { before, run } = await observedPass(local, { ...local.env, TOKENS_API_URL: list.url });

    expect(run.error).toMatchObject({ name: 'ListingError', message: expect.stringContaining(message) });
    expect(list.pages()).toBe(pages);
    await checkInvariant(s, local, { before, runs: [run] });
  }

  it('fails the run after a run of empty pages, and deletes nothing', {
    timeout: 10_000,
  }, async ({ s }) => {
    const local = await localStack(track, {
      lines: [{ status: 'finished', fileSize: 1000 }],
      env: { LIST_MAX_EMPTY_PAGES: '5' },
    });
    const list = await endlessList(local.tokens.url, () => []);
    s.fault('list: empty pages, each with a new links.next, forever');

    await expectListingStopped(s, local, list, {
      message: '5 empty pages in a row (LIST_MAX_EMPTY_PAGES)',
      pages: 5,
    });
  });

  it('fails the run past the page cap, even when every page has items, and deletes nothing', {
    timeout: 10_000,
  }, async ({ s }) => {
    const { local, id } = await oneFinishedLine(track, { env: { LIST_MAX_PAGES: '30' } });
    const item = { id, type: 'tokens', attributes: { status: 'finished' } };
    const list = await endlessList(local.tokens.url, () => [item]);
    s.fault('list: the same line on every page, each with a new links.next, forever');

    await expectListingStopped(s, local, list, {
      message: 'the list went on for more than 30 pages (LIST_MAX_PAGES)',
      pages: 30,
    });
  });

  it('exits 2 at the terminal on an endless list of empty pages', { timeout: 10_000 }, async ({ s }) => {
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 1000 }] });
    const list = await endlessList(local.tokens.url, () => []);
    s.fault('list: empty pages, each with a new links.next, forever (CLI)');
    const before = snapshot(local.tokens);

    const result = await runCli(track, { ...local.env, TOKENS_API_URL: list.url });

    expect(result.code).toBe(2);
    expect(result.stderr).toContain('ListingError');
    expect(result.stderr).toContain('20 empty pages in a row');
    expect(list.pages()).toBe(20);
    await checkInvariant(s, local, { before, runs: [cliOutcome(result)] });
  });
});

describe('a download slower than the speed floor', () => {
  // Without the floor each attempt would trickle for 40 s: the timeout makes that a fast failure.
  it('fails a body that trickles under DOWNLOAD_MIN_SPEED_BYTES as a retried attempt, and keeps the line', {
    timeout: 10_000,
  }, async ({ s }) => {
    const { local, ids } = await twoFinishedLines(track, {
      env: { DOWNLOAD_MIN_SPEED_BYTES: '100', DOWNLOAD_SPEED_WINDOW_SECONDS: '1', RETRY_ATTEMPTS: '2' },
    });
    const [slow, healthy] = ids;
    let attempts = 0;
    const front = track(
      await startFront(local.tokens.url, (req, res) => {
        if (req.url !== `/api/tokens/${slow}/data`) return false;
        attempts += 1;
        // 5 bytes every 200 ms: 25 B/s, never silent long enough for the body timeout.
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1000' });
        const timer = setInterval(() => res.write('xxxxx'), 200);
        res.on('close', () => clearInterval(timer));
        return true;
      }),
    );
    s.fault('file: body trickles at 25 B/s, every time');
    const before = snapshot(local.tokens);
    const started = Date.now();

    const run = await runHandler({ ...local.env, TOKENS_API_URL: front.url });

    expect(Date.now() - started).toBeLessThan(4000);
    // The floor's error (a TokensApiError naming the rate) aborts the upload; the line's reason
    // is the download's, not the aborted PutObject's.
    expect(run.summary?.failed).toEqual([
      {
        id: slow,
        reason: expect.stringMatching(
          /GET \S+\/data: body delivered \d+ bytes in .*below the floor of 100 B\/s/,
        ),
      },
    ]);
    expect(run.summary?.failed[0]?.reason).not.toContain('AbortError');
    expect(attempts).toBe(2);
    expect(local.tokens.lines.get(healthy)?.status).toBe('deleted');
    await checkInvariant(s, local, { before, runs: [run] });
  });
});
