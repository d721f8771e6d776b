import { describe, expect } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import type { LocalStack } from '../local/stack.ts';
import type { Fault } from '../local/tokens-service.ts';
import { listKeys, objectJson } from '../support/archive-inspect.ts';
import {
  closeAfterEach,
  deletedDocument,
  deleteReply,
  oneFinishedLine,
  startFront,
  startRecordingServer,
  waitFor,
} from './harness.ts';
import { checkInvariant, observedPass, runHandler, settle, snapshot } from './invariant.ts';
import { it } from './ledger.ts';

// What a DELETE's refusals, lies and silences may and may not lead to: only the service's word
// that the line is gone ends it, and a DELETE that may have acted is confirmed by a later run.

const track = closeAfterEach();
const JSON_API = 'application/vnd.api+json';

/** Asserts the line is on the service as it was, with no receipt and no pending marker of it. */
async function expectKept(local: LocalStack, id: string): Promise<void> {
  expect(local.tokens.lines.get(id)?.status).toBe('finished');
  expect(await listKeys(local.s3Client, local.bucket, `tokens/${id}/deleted.json`)).toEqual([]);
  expect(await listKeys(local.s3Client, local.bucket, `tokens/_pending/${id}.json`)).toEqual([]);
}

describe('a DELETE the service did not carry out', () => {
  it.for([
    ['410 Gone', 'gone', 'DELETE answered 410 but GET still shows the line'],
    ['307 to the same URL (a DELETE is never redirected)', 'redirect', 'a DELETE is never redirected'],
    ['200 with an HTML page every time', 'html', 'expected JSON, got Content-Type "text/html'],
  ] as const)(
    'keeps the line when its DELETE is answered %s while the line is still there: failed, no receipt, no marker',
    async ([_label, how, reason], { s }) => {
      const { local, id, path } = await oneFinishedLine(track, { env: { RETRY_ATTEMPTS: '2' } });
      const faults: Record<typeof how, Fault | undefined> = {
        gone: { kind: 'delete-reply', status: 410, acts: false, body: 'none' },
        redirect: undefined,
        html: { kind: 'wrong-content-type' },
      };
      const fault = faults[how];
      if (fault !== undefined) s.inject(local.tokens, { target: 'delete', id, fault, times: Infinity });
      const front = track(
        await startFront(local.tokens.url, (req, res) => {
          if (how !== 'redirect' || req.method !== 'DELETE' || req.url !== path) return false;
          res.writeHead(307, { location: path }).end();
          return true;
        }),
      );
      if (fault === undefined) s.fault('the DELETE is answered 307 to its own URL');

      const { before, run } = await observedPass(local, { ...local.env, TOKENS_API_URL: front.url });

      expect(run.summary).toMatchObject({ dismantled: 0, pending: [] });
      expect(run.summary?.failed).toEqual([
        expect.objectContaining({ id, reason: expect.stringContaining(reason) }),
      ]);
      expect(run.summary?.failed[0]?.dismantled).toBeUndefined();
      await expectKept(local, id);
      await checkInvariant(s, local, { before, runs: [run] });
    },
  );
});

describe('a DELETE and the GET after it that both time out', () => {
  it('leave the line pending with a marker when the DELETE acted, and the next run keeps its receipt', async ({
    s,
  }) => {
    const { local, id, path } = await oneFinishedLine(track, {
      env: { RETRY_ATTEMPTS: '1', HTTP_BODY_TIMEOUT_MS: '200', HTTP_HEADERS_TIMEOUT_MS: '200' },
    });
    // The DELETE acts, and its reply stalls half way.
    s.inject(local.tokens, { target: 'delete', id, fault: { kind: 'stall' } });
    const front = track(
      await startFront(local.tokens.url, (req) => {
        // Every GET of the line once it is deleted gets no reply at all.
        return req.method === 'GET' && req.url === path && local.tokens.lines.get(id)?.status === 'deleted';
      }),
    );
    s.fault('every GET of the line after its DELETE gets no reply');
    const before = snapshot(local.tokens);

    const first = await runHandler({ ...local.env, TOKENS_API_URL: front.url });

    expect(local.tokens.lines.get(id)?.status).toBe('deleted');
    expect(first.summary).toMatchObject({ dismantled: 0, failed: [] });
    expect(first.summary?.pending).toEqual([expect.objectContaining({ id })]);
    expect(await listKeys(local.s3Client, local.bucket, `tokens/${id}/deleted.json`)).toEqual([]);

    const second = await runHandler(local.env);

    expect(second.summary).toMatchObject({ dismantled: 1, failed: [], pending: [] });
    const receipt = (await objectJson(local.s3Client, local.bucket, `tokens/${id}/deleted.json`)) as {
      confirmation: string;
    };
    expect(receipt.confirmation).toMatch(/^GET answered 404 \(the DELETE was taken by run /);
    expect(local.tokens.deleteCount(id)).toBe(1);
    await checkInvariant(s, local, { before, runs: [second] });
  });
});

describe('the read right before a DELETE', () => {
  it.for([
    ['shows the line deleted while it is still there', 'deleted'],
    ['answers 404, and the line is back on the next run', '404'],
  ] as const)(
    'sends no DELETE when it %s; the next run dismantles the line once',
    async ([_label, how], { s }) => {
      const { local, id, path } = await oneFinishedLine(track);
      let gets = 0;
      local.tokens.onRequest((method, url) => {
        if (method !== 'GET' || url !== path) return;
        gets += 1;
        // The first GET reads the line, the second is the read right before the DELETE.
        if (gets === 2 && how === 'deleted') local.tokens.setRawLine(id, deletedDocument(local.tokens, id));
        if (gets === 2 && how === '404') {
          local.tokens.inject({ target: 'get', id, fault: { kind: 'status', status: 404 } });
        }
        if (gets === 3) local.tokens.clearRawLine(id);
      });
      s.fault(`the read right before the DELETE ${how === '404' ? 'answers 404' : 'shows status deleted'}`);
      const before = snapshot(local.tokens);

      const first = await runHandler(local.env);

      expect(local.tokens.deleteCount(id)).toBe(0);
      expect(first.summary).toMatchObject({ dismantled: 0, failed: [] });
      expect(first.summary?.skipped).toEqual([expect.objectContaining({ id })]);
      await expectKept(local, id);
      await checkInvariant(s, local, { before, runs: [first] });

      const again = snapshot(local.tokens);
      const second = await runHandler(local.env);

      expect(second.summary).toMatchObject({ dismantled: 1, failed: [] });
      expect(local.tokens.deleteCount(id)).toBe(1);
      await checkInvariant(s, local, { before: again, runs: [second] });
    },
  );
  // Guards what once failed: line-work.ts #reread returns 'gone' on a 404/410 (or status deleted) and process() then
  // sends the DELETE without comparing anything; with a 204 reply nothing is compared afterwards.
  it('sends no DELETE when the read right before it answers 404 while the line gained a file', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track);
    let reads = 0;
    local.tokens.onRequest((method, path) => {
      if (method !== 'GET' || path !== `/api/tokens/${id}`) return;
      reads += 1;
      if (reads === 2) {
        // The line gains a file, and the read before the DELETE is answered 404 by a flaky front.
        local.tokens.addFile(id, 'score', 500);
        local.tokens.inject({ target: 'get', id, fault: { kind: 'status', status: 404 } });
      }
    });
    s.fault('the line gains score; the read before the DELETE answers 404 once');
    s.inject(local.tokens, deleteReply(id, 204, true));

    const { before, run } = await observedPass(local);

    expect(local.tokens.deleteCount(id)).toBe(0);
    await checkInvariant(s, local, { before, runs: [run] });
  });
});

describe('two passes that both get past the gate', () => {
  it('dismantle the line once: the second DELETE finds it gone, and the one receipt holds the reply of the DELETE that acted', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track);
    let deletes = 0;
    let releaseFirst: (() => void) | undefined;
    // The first DELETE is held until the second pass has read the line again and sent its own.
    local.tokens.beforeRequest((method, path) => {
      if (method !== 'DELETE' || path !== `/api/tokens/${id}`) return undefined;
      deletes += 1;
      if (deletes === 1) return new Promise<void>((resolve) => (releaseFirst = resolve));
      releaseFirst?.();
      return waitFor('the first DELETE to act', () => local.tokens.lines.get(id)?.status === 'deleted').then(
        () => undefined,
      );
    });
    s.fault('two passes each read the line finished right before their DELETE; the first DELETE is held');
    const before = snapshot(local.tokens);

    const runs = await Promise.all([runHandler(local.env), settle(createHandler(local.env)({ ids: [id] }))]);

    expect(local.tokens.deleteCount(id)).toBe(2);
    for (const run of runs) expect(run.summary).toMatchObject({ dismantled: 1, failed: [], pending: [] });
    const receipt = (await objectJson(local.s3Client, local.bucket, `tokens/${id}/deleted.json`)) as {
      reply?: { status: number };
      discrepancy?: string;
    };
    expect(receipt.reply?.status).toBe(200);
    expect(receipt.discrepancy).toBeUndefined();
    await checkInvariant(s, local, { before, runs });
  });
});

describe('a GET confirming a DELETE that is redirected', () => {
  it.for([
    ['to another path of the service that answers 404', 'same-origin'],
    ['to another origin that answers 404', 'other-origin'],
  ] as const)(
    'does not say the line is gone when it is redirected %s: a DELETE that never acted leaves no receipt',
    async ([_label, where], { s }) => {
      const { local, id, path } = await oneFinishedLine(track);
      const elsewhere = track(
        await startRecordingServer((_req, res) => {
          res.writeHead(404, { 'content-type': JSON_API }).end('{"errors":[{"status":"404"}]}');
        }),
      );
      let deleteSeen = false;
      const front = track(
        await startFront(local.tokens.url, (req, res) => {
          if (req.method === 'DELETE' && req.url === path) {
            deleteSeen = true;
            res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad Gateway</h1>');
            return true;
          }
          if (req.method === 'GET' && req.url === path && deleteSeen) {
            const location = where === 'same-origin' ? `${path}/moved` : `${elsewhere.url}${path}`;
            res.writeHead(302, { location }).end();
            return true;
          }
          return false;
        }),
      );
      s.fault(`every DELETE answered 502 without acting; the GET after it redirected (${where}) to a 404`);
      const before = snapshot(local.tokens);

      const run = await settle(
        createHandler({ ...local.env, TOKENS_API_URL: front.url, RETRY_ATTEMPTS: '2' })({}),
      );

      expect(local.tokens.lines.get(id)?.status).toBe('finished');
      expect(run.summary).toMatchObject({ dismantled: 0 });
      expect(await listKeys(local.s3Client, local.bucket, `tokens/${id}/deleted.json`)).toEqual([]);
      await checkInvariant(s, local, { before, runs: [run] });
    },
  );
});

describe('a DELETE refused on a retry', () => {
  it('is no proof the DELETE did not act: after a 502 that acted, a 409 on the retry and no GET, the line is pending, then confirmed', async ({
    s,
  }) => {
    const { local, id, path } = await oneFinishedLine(track);
    // The first DELETE acts, and its gateway answers 502.
    s.inject(local.tokens, deleteReply(id, 502, true));
    let deletes = 0;
    const front = track(
      await startFront(local.tokens.url, (req, res) => {
        if (req.method === 'DELETE' && req.url === path) {
          deletes += 1;
          if (deletes === 1) return false;
          // The retry: the service is still busy with the first DELETE, and says so.
          res.writeHead(409, { 'content-type': JSON_API }).end('{"errors":[{"status":"409"}]}');
          return true;
        }
        if (req.method === 'GET' && req.url === path && deletes > 0) {
          res.writeHead(503, { 'content-type': JSON_API }).end('{"errors":[{"status":"503"}]}');
          return true;
        }
        return false;
      }),
    );
    s.fault('a DELETE that acts behind a 502, a 409 on its retry, and 503 to every GET after it');
    const before = snapshot(local.tokens);

    const first = await settle(
      createHandler({ ...local.env, TOKENS_API_URL: front.url, RETRY_ATTEMPTS: '2' })({}),
    );

    expect(local.tokens.lines.get(id)?.status).toBe('deleted');
    // The line is gone: it must not be reported as failed and kept, and a later run must confirm it.
    expect(first.summary?.failed).toEqual([]);
    expect(first.summary?.pending).toEqual([expect.objectContaining({ id })]);
    expect(await listKeys(local.s3Client, local.bucket, `tokens/_pending/${id}.json`)).toEqual([
      `tokens/_pending/${id}.json`,
    ]);

    const second = await runHandler(local.env);
    expect(second.summary).toMatchObject({ dismantled: 1, failed: [] });
    expect(await listKeys(local.s3Client, local.bucket, `tokens/${id}/deleted.json`)).toEqual([
      `tokens/${id}/deleted.json`,
    ]);
    await checkInvariant(s, local, { before, runs: [second] });
  });
});
