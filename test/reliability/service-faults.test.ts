import { describe, expect } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import { objectJson } from '../support/archive-inspect.ts';
import {
  closeAfterEach,
  finishedLines,
  localStack,
  oneFinishedLine,
  twoFinishedLines,
  waitFor,
} from './harness.ts';
import { checkInvariant, observedPass, runHandler, settle, snapshot } from './invariant.ts';
import { it } from './ledger.ts';

const track = closeAfterEach();

/** Stalls must outlast the body timeout, and the suite must stay fast: a short timeout. */
const FAST_TIMEOUTS = { HTTP_BODY_TIMEOUT_MS: '300' };

function ids(lines: ReadonlyMap<string, unknown>): string[] {
  return [...lines.keys()];
}

describe('tokens service faults', () => {
  it('rides out bursts of 500, 502 and 503 on the list, the line, the files and the DELETE', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: [
        { status: 'finished', analysis: 'metrics', fileSize: 3000 },
        { status: 'finished', fileSize: 5000 },
        { status: 'started' },
      ],
      // One line per page: the list bursts hit a paginated listing.
      pageSize: 1,
    });
    const [metrics, plain] = ids(local.tokens.lines) as [string, string];
    s.inject(local.tokens, { target: 'list', fault: { kind: 'status', status: 503 }, times: 2 });
    s.inject(local.tokens, { target: 'get', id: metrics, fault: { kind: 'status', status: 502 }, times: 2 });
    s.inject(local.tokens, {
      target: 'file',
      id: metrics,
      file: 'score',
      fault: { kind: 'status', status: 500 },
    });
    s.inject(local.tokens, { target: 'file', id: plain, fault: { kind: 'status', status: 503 }, times: 3 });
    s.inject(local.tokens, { target: 'delete', id: plain, fault: { kind: 'status', status: 500 }, times: 2 });

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ archived: 2, dismantled: 2, failed: [], retries: 10 });
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('waits as long as a 429 Retry-After asks before trying again', async ({ s }) => {
    const { local, id } = await oneFinishedLine(track, { fileSize: 2000 });
    s.inject(local.tokens, {
      target: 'file',
      id,
      fault: { kind: 'status', status: 429, retryAfterSeconds: 1 },
    });

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ dismantled: 1, failed: [], retries: 1 });
    const downloads = local.tokens.requests.filter((r) => r.path === `/api/tokens/${id}/data`);
    expect(downloads.map((r) => r.status)).toEqual([429, 200]);
    const [refusedAt = 0, acceptedAt = 0] = downloads.map((r) => r.at);
    expect(acceptedAt - refusedAt).toBeGreaterThanOrEqual(1000);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('gives up on a line, without waiting, when Retry-After is longer than the retry cap', async ({ s }) => {
    const local = await localStack(track, {
      lines: finishedLines(2, 2000),
    });
    const [slow, fine] = ids(local.tokens.lines) as [string, string];
    s.inject(local.tokens, {
      target: 'get',
      id: slow,
      fault: { kind: 'status', status: 429, retryAfterSeconds: 3600 },
    });
    const before = snapshot(local.tokens);
    const started = Date.now();

    const run = await runHandler(local.env);

    expect(Date.now() - started).toBeLessThan(10_000);
    expect(run.summary?.failed).toEqual([{ id: slow, reason: expect.stringContaining('429') }]);
    expect(local.tokens.lines.get(fine)?.status).toBe('deleted');
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('downloads a file again from the first byte after a reset, a truncation, a corrupted byte and a stall', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: [{ status: 'finished', analysis: 'metrics', fileSize: 150_000 }],
      env: FAST_TIMEOUTS,
    });
    const [id] = ids(local.tokens.lines) as [string];
    s.inject(local.tokens, { target: 'file', id, file: 'data', fault: { kind: 'reset' } });
    s.inject(local.tokens, { target: 'file', id, file: 'score', fault: { kind: 'truncate' } });
    s.inject(local.tokens, { target: 'file', id, file: 'analysis', fault: { kind: 'corrupt' } });
    s.inject(local.tokens, { target: 'file', id, file: 'delta', fault: { kind: 'stall' } });

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({
      dismantled: 1,
      filesUploaded: 4,
      retries: 4,
      hashMismatches: 1,
      hashMismatchAttempts: 1,
    });
    for (const name of ['data', 'score', 'analysis', 'delta']) {
      const downloads = local.tokens.requests.filter((r) => r.path === `/api/tokens/${id}/${name}`);
      expect(downloads, name).toHaveLength(2);
    }
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('reads the line and the list again after a truncated, stalled, non-JSON or HTML reply', async ({
    s,
  }) => {
    const { local, ids } = await twoFinishedLines(track, { env: FAST_TIMEOUTS });
    const [first, second] = ids;
    s.inject(local.tokens, { target: 'list', fault: { kind: 'bad-json' } });
    s.inject(local.tokens, { target: 'list', fault: { kind: 'wrong-content-type' } });
    s.inject(local.tokens, { target: 'get', id: first, fault: { kind: 'truncate' } });
    s.inject(local.tokens, { target: 'get', id: first, fault: { kind: 'stall' } });
    s.inject(local.tokens, { target: 'get', id: second, fault: { kind: 'bad-json' } });
    s.inject(local.tokens, { target: 'get', id: second, fault: { kind: 'wrong-content-type' } });
    s.inject(local.tokens, { target: 'get', id: second, fault: { kind: 'reset' } });

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ dismantled: 2, failed: [], retries: 7 });
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('keeps a line whose file is corrupted on every attempt, and dismantles the others', async ({ s }) => {
    const local = await localStack(track, {
      lines: finishedLines(2, 8000),
      env: { RETRY_ATTEMPTS: '3' },
    });
    const [bad, good] = ids(local.tokens.lines) as [string, string];
    s.inject(local.tokens, { target: 'file', id: bad, fault: { kind: 'corrupt' }, times: Infinity });

    const { before, run } = await observedPass(local);

    // One file, refused on each of its three attempts.
    expect(run.summary).toMatchObject({ dismantled: 1, hashMismatches: 1, hashMismatchAttempts: 3 });
    expect(run.summary?.failed).toEqual([{ id: bad, reason: expect.stringContaining('SHA-256') }]);
    expect(local.tokens.lines.get(good)?.status).toBe('deleted');
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('sends the DELETE again after it fails once, and the line is dismantled once', async ({ s }) => {
    const { local, id } = await oneFinishedLine(track);
    s.inject(local.tokens, { target: 'delete', id, fault: { kind: 'status', status: 503 } });

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ dismantled: 1, failed: [] });
    expect(local.tokens.deleteCount(id)).toBe(2);
    const receipt = (await objectJson(local.s3Client, local.bucket, `tokens/${id}/deleted.json`)) as {
      reply?: { status?: number; body?: string };
    };
    expect(receipt.reply?.status).toBe(200);
    const reply = JSON.parse(receipt.reply?.body ?? '{}') as { data?: { attributes?: { status?: string } } };
    expect(reply.data?.attributes?.status).toBe('deleted');
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('records a line as already gone when the DELETE reply is lost and the retry answers 404', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track);
    s.inject(local.tokens, { target: 'delete', id, fault: { kind: 'delete-lost' } });

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ dismantled: 1, failed: [] });
    const deletes = local.tokens.requests.filter((r) => r.method === 'DELETE').map((r) => r.status);
    expect(deletes).toEqual([0, 404]);
    const confirm = local.tokens.requests.filter((r) => r.method === 'GET' && r.path === `/api/tokens/${id}`);
    expect(confirm.at(-1)?.status).toBe(404);
    expect(await objectJson(local.s3Client, local.bucket, `tokens/${id}/deleted.json`)).toMatchObject({
      lineId: id,
      confirmation: 'GET answered 404',
    });
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('sends the DELETE again after an HTML page, which the service never acted on', async ({ s }) => {
    const { local, id } = await oneFinishedLine(track);
    s.inject(local.tokens, { target: 'delete', id, fault: { kind: 'wrong-content-type' } });

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ dismantled: 1, failed: [] });
    expect(local.tokens.deleteCount(id)).toBe(2);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('re-reads a rotated session key once on 401, and goes on with the new one', async ({ s }) => {
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 1000 }] });
    const handler = createHandler(local.env);
    await handler({});
    const newKey = `rotated-${crypto.randomUUID()}`;
    local.tokens.addLine({ status: 'finished', analysis: 'metrics', fileSize: 1000 });
    local.tokens.addLine({ status: 'finished', fileSize: 1000 });
    local.tokens.setSessionKey(newKey);
    local.secrets.setSecret(local.secretId, JSON.stringify({ sessionKey: newKey }));
    s.fault('session key rotated in the service and the secret between two warm runs');
    const secretReadsBefore = local.secrets.requests.length;
    const before = snapshot(local.tokens);

    const run = await settle(handler({}));

    expect(run.summary).toMatchObject({ dismantled: 2, failed: [] });
    expect(local.secrets.requests.length - secretReadsBefore).toBe(1);
    const refused = local.tokens.requests.filter((r) => r.status === 401);
    expect(refused.map((r) => r.sessionKey)).toEqual([local.sessionKey]);
    await checkInvariant(s, local, { before, runs: [run], secrets: [newKey] });
  });

  it('re-reads a key rotated in the middle of a run once, and loses no line', async ({ s }) => {
    const local = await localStack(track, {
      lines: [
        { status: 'finished', analysis: 'metrics', fileSize: 100_000 },
        { status: 'finished', fileSize: 1000 },
      ],
      // A second of stall: ample time to rotate the key while the run waits at that point.
      env: { HTTP_BODY_TIMEOUT_MS: '1000', LINE_CONCURRENCY: '1' },
    });
    const [first] = ids(local.tokens.lines) as [string];
    // The stall holds the run at a known point while the key changes under it.
    s.inject(local.tokens, { target: 'file', id: first, file: 'data', fault: { kind: 'stall' } });
    const newKey = `rotated-${crypto.randomUUID()}`;
    const before = snapshot(local.tokens);

    const running = runHandler(local.env);
    await waitFor('the stalled download', () =>
      local.tokens.requests.some((r) => r.path === `/api/tokens/${first}/data`),
    );
    local.tokens.setSessionKey(newKey);
    local.secrets.setSecret(local.secretId, JSON.stringify({ sessionKey: newKey }));
    s.fault('session key rotated in the service and the secret in the middle of a run');
    const run = await running;

    expect(run.summary).toMatchObject({ dismantled: 2, failed: [] });
    expect(local.tokens.requests.filter((r) => r.status === 401)).toHaveLength(1);
    expect(local.secrets.requests).toHaveLength(2);
    await checkInvariant(s, local, { before, runs: [run], secrets: [newKey] });
  });

  it('fails the run, deleting nothing, when the service refuses the key also after re-reading it', async ({
    s,
  }) => {
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 1000 }] });
    const newKey = `rotated-${crypto.randomUUID()}`;
    local.tokens.setSessionKey(newKey);
    s.fault('session key rotated in the service but not in the secret');

    const { before, run } = await observedPass(local);

    expect(run.error).toMatchObject({ name: 'HttpStatusError', status: 401 });
    expect(local.tokens.requests.map((r) => r.status)).toEqual([401, 401]);
    await checkInvariant(s, local, { before, runs: [run], secrets: [newKey] });
  });

  it('retries a list that fails and then works, and fails the run when it never works', async ({ s }) => {
    const local = await localStack(track, {
      lines: [{ status: 'finished', fileSize: 1000 }],
      env: { RETRY_ATTEMPTS: '4' },
    });
    s.inject(local.tokens, { target: 'list', fault: { kind: 'status', status: 500 }, times: 3 });
    const handler = createHandler(local.env);
    let before = snapshot(local.tokens);

    const recovered = await settle(handler({}));

    expect(recovered.summary).toMatchObject({ dismantled: 1, retries: 3 });
    await checkInvariant(s, local, { before, runs: [recovered] });

    local.tokens.addLine({ status: 'finished', fileSize: 1000 });
    s.inject(local.tokens, { target: 'list', fault: { kind: 'status', status: 502 }, times: Infinity });
    before = snapshot(local.tokens);

    const broken = await settle(handler({}));

    expect(broken.error).toMatchObject({ name: 'HttpStatusError', status: 502 });
    await checkInvariant(s, local, { before, runs: [broken] });
  });
});

describe('malformed documents from the tokens service', () => {
  it('skips malformed list items, processes a listed-twice line once, and reads huge numbers as strings', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: [{ status: 'finished', fileSize: 1000 }, { status: 'requested' }],
    });
    const [finished] = ids(local.tokens.lines) as [string];
    const attributes = { status: 'finished', filesizes: { data: 1000 } };
    const raw: [string, unknown][] = [
      ['no id', { type: 'tokens', attributes }],
      ['id not a UUID', { id: 'not-a-uuid', type: 'tokens', attributes }],
      ['unknown status', { id: crypto.randomUUID(), type: 'tokens', attributes: { status: 'archived' } }],
      ['status a number', { id: crypto.randomUUID(), type: 'tokens', attributes: { status: 42 } }],
      ['type not tokens', { id: crypto.randomUUID(), type: 'other', attributes }],
      ['no attributes', { id: crypto.randomUUID(), type: 'tokens' }],
      ['a string', 'a string'],
      ['null', null],
      ['the finished line listed twice', { id: finished, type: 'tokens', attributes }],
      [
        '70-digit string numbers',
        {
          id: crypto.randomUUID(),
          type: 'tokens',
          attributes: { status: 'requested', available: '9'.repeat(70), size: '1'.repeat(40) },
        },
      ],
    ];
    local.tokens.setRawListItems(raw.map(([, item]) => item));
    for (const [what] of raw) s.fault(`list item: ${what}`);

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ dismantled: 1, failed: [] });
    expect(run.summary?.skipped).toHaveLength(8);
    expect(local.tokens.deleteCount(finished)).toBe(1);
    const touched = local.tokens.requests.filter((r) => r.path !== '/api/tokens');
    expect(touched.every((r) => r.path.startsWith(`/api/tokens/${finished}`))).toBe(true);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('skips, without downloading, a finished line whose single-line reply is malformed', async ({ s }) => {
    const specs = Array.from({ length: 11 }, () => ({ status: 'finished' as const, fileSize: 1000 }));
    const local = await localStack(track, { lines: [...specs, { status: 'finished', fileSize: 1000 }] });
    const lineIds = ids(local.tokens.lines);
    const healthy = lineIds.at(-1) as string;
    const hash = local.tokens.lines.get(healthy)?.files.get('data')?.sha256 as string;
    const bad: [string, Record<string, unknown>][] = [
      ['missing filehashes', { filesizes: { data: 1000 } }],
      ['non-hex hash', { filehashes: { data: 'z'.repeat(64) }, filesizes: { data: 1000 } }],
      ['short hash', { filehashes: { data: hash.slice(0, 63) }, filesizes: { data: 1000 } }],
      ['sizes name other files', { filehashes: { data: hash }, filesizes: { dat: 1000 } }],
      ['negative size', { filehashes: { data: hash }, filesizes: { data: -1 } }],
      ['non-numeric size', { filehashes: { data: hash }, filesizes: { data: 'big' } }],
      ['huge string size', { filehashes: { data: hash }, filesizes: { data: '1'.repeat(30) } }],
      ['fractional size', { filehashes: { data: hash }, filesizes: { data: 999.5 } }],
      ['huge number size', { filehashes: { data: hash }, filesizes: { data: 1e300 } }],
      [
        'metrics line without its analysis files',
        { analysis: 'metrics', filehashes: { data: hash }, filesizes: { data: 1000 } },
      ],
      ['another line described', { filehashes: { data: hash }, filesizes: { data: 1000 } }],
    ];
    for (const [index, [what, attributes]] of bad.entries()) {
      const id = lineIds[index] as string;
      const described = what === 'another line described' ? healthy : id;
      local.tokens.setRawLine(id, {
        data: { id: described, type: 'tokens', attributes: { status: 'finished', ...attributes } },
        links: { data: `/api/tokens/${id}/data` },
      });
      s.fault(`get: ${what}`);
    }

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ dismantled: 1, failed: [] });
    expect(run.summary?.skipped.map((line) => line.id).sort()).toEqual(lineIds.slice(0, bad.length).sort());
    for (const line of run.summary?.skipped ?? []) expect(line.reason).toMatch(/^invalid: /);
    const downloads = local.tokens.requests.filter((r) => /\/api\/tokens\/[^/]+\/data$/.test(r.path));
    expect(downloads.map((r) => r.path)).toEqual([`/api/tokens/${healthy}/data`]);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('skips a line whose single-line reply shows an unknown status or no body at all', async ({ s }) => {
    const local = await localStack(track, {
      lines: [{ status: 'finished' }, { status: 'finished' }, { status: 'finished' }],
    });
    const [unknown, empty, notObject] = ids(local.tokens.lines) as [string, string, string];
    local.tokens.setRawLine(unknown, {
      data: { id: unknown, type: 'tokens', attributes: { status: 'archived' } },
    });
    local.tokens.setRawLine(empty, undefined);
    local.tokens.setRawLine(notObject, [1, 2, 3]);
    s.fault('get: unknown status "archived"');
    s.fault('get: empty body');
    s.fault('get: a JSON array');
    const before = snapshot(local.tokens);

    const run = await settle(createHandler(local.env)({ ids: [unknown, empty, notObject] }));

    expect(run.summary?.dismantled).toBe(0);
    expect(run.summary?.skipped.find((line) => line.id === unknown)?.reason).toContain('"archived"');
    // An empty body is not JSON: retried as a transient error, then the line fails.
    expect(run.summary?.failed.map((line) => line.id)).toEqual([empty]);
    expect(run.summary?.skipped.map((line) => line.id).sort()).toEqual([unknown, notObject].sort());
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('does not archive a line whose stated size disagrees with the bytes, or whose hash is another', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: finishedLines(3),
      env: { RETRY_ATTEMPTS: '2' },
    });
    const [shorter, longer, otherHash] = ids(local.tokens.lines) as [string, string, string];
    const hashOf = (id: string) => local.tokens.lines.get(id)?.files.get('data')?.sha256 as string;
    const doc = (id: string, size: number, sha256: string) => ({
      data: {
        id,
        type: 'tokens',
        attributes: { status: 'finished', filesizes: { data: size }, filehashes: { data: sha256 } },
      },
    });
    local.tokens.setRawLine(shorter, doc(shorter, 999, hashOf(shorter)));
    local.tokens.setRawLine(longer, doc(longer, 1001, hashOf(longer)));
    local.tokens.setRawLine(otherHash, doc(otherHash, 1000, hashOf(shorter)));
    s.fault('get: stated size 1 byte short');
    s.fault('get: stated size 1 byte long');
    s.fault("get: another file's hash");

    const { before, run } = await observedPass(local);

    expect(run.summary?.failed.map((line) => line.id).sort()).toEqual([shorter, longer, otherHash].sort());
    expect(run.summary).toMatchObject({ hashMismatches: 3, hashMismatchAttempts: 6 });
    await checkInvariant(s, local, { before, runs: [run] });
  });
});
