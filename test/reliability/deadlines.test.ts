import type { ServerResponse } from 'node:http';
import { describe, expect } from 'vitest';
import { createHandler, type PublishingMetrics } from '../../lambda/app/invoke.ts';
import type { LocalStack } from '../local/stack.ts';
import { listKeys, objectJson } from '../support/archive-inspect.ts';
import { MIB } from './bodies.ts';
import {
  closeAfterEach,
  finishedLines,
  localStack,
  MULTIPART_5_MIB,
  oneFinishedLine,
  PATIENT_BODIES,
  proxiedS3,
  runCli,
  startFront,
  waitFor,
} from './harness.ts';
import { checkInvariant, cliOutcome, runHandler, settle, snapshot } from './invariant.ts';
import { it } from './ledger.ts';

const track = closeAfterEach();

function ids(lines: ReadonlyMap<string, unknown>): string[] {
  return [...lines.keys()];
}

/** A body that never ends: headers and a first chunk, then silence; `closed` is set when the client lets go. */
function hang(res: ServerResponse, size: number, seen: { closed?: number }): true {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
  res.write(Buffer.alloc(Math.min(size - 1, 1000)));
  res.on('close', () => {
    seen.closed = Date.now();
  });
  return true;
}

/** A body that trickles: 10 bytes every 100 ms, never silent long enough for a body timeout. */
function trickle(res: ServerResponse, size: number, seen: { closed?: number }): true {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
  const timer = setInterval(() => res.write(Buffer.alloc(10)), 100);
  res.on('close', () => {
    clearInterval(timer);
    seen.closed = Date.now();
  });
  return true;
}

/** The run report of the only run of a scenario. */
async function runReport(local: LocalStack) {
  const keys = await listKeys(local.s3Client, local.bucket, 'tokens/_runs/');
  expect(keys).toHaveLength(1);
  return (await objectJson(local.s3Client, local.bucket, keys[0] ?? '')) as {
    summary: { runId: string };
    lines: { id: string; outcome: string; errorName?: string; reason?: string }[];
  };
}

/** A metrics sink that keeps each metric's last value and whether it was flushed. */
function recordingSink(): {
  metrics: Record<string, number>;
  sink: PublishingMetrics & { flushed: boolean };
} {
  const metrics: Record<string, number> = {};
  const sink = {
    flushed: false,
    addMetric: (name: string, _unit: unknown, value: number) => {
      metrics[name] = value;
    },
    publishStoredMetrics: () => {
      sink.flushed = true;
    },
  };
  return { metrics, sink };
}

describe('a hard deadline', () => {
  it('ends a CLI run at --max-duration: the stalled line fails naming the deadline, its multipart upload is aborted, the healthy line is dismantled, exit 1', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: [
        { status: 'finished', fileSize: 6 * MIB },
        { status: 'finished', fileSize: 3000 },
      ],
      env: {
        ...PATIENT_BODIES,
        ...MULTIPART_5_MIB,
      },
    });
    const [stalled, healthy] = ids(local.tokens.lines) as [string, string];
    // fauxqs does not implement ListMultipartUploads (a GET ?uploads lists objects): the proxy
    // counts the uploads created and the ones the store confirms aborted or completed instead.
    const { proxy, env } = await proxiedS3(track, local);
    // The body stalls after its first 64 KiB: the upload is created and its first part in flight.
    s.inject(local.tokens, { target: 'file', id: stalled, fault: { kind: 'stall' }, times: Infinity });
    const before = snapshot(local.tokens);
    const started = Date.now();

    const result = await runCli(track, env, ['--max-duration', '2s']);

    expect(Date.now() - started).toBeLessThan(6000);
    expect(result.code).toBe(1);
    expect(result.summary).toMatchObject({ dismantled: 1, archived: 1 });
    expect(result.summary?.failed).toEqual([
      {
        id: stalled,
        reason: expect.stringMatching(/run deadline reached after 2000 ms \(max duration 2 s\)/),
      },
    ]);
    expect(local.tokens.lines.get(stalled)?.status).toBe('finished');
    expect(local.tokens.deleteCount(stalled)).toBe(0);
    expect(await listKeys(local.s3Client, local.bucket, `tokens/${stalled}/`)).toEqual([]);
    expect(local.tokens.lines.get(healthy)?.status).toBe('deleted');
    const report = await runReport(local);
    expect(report.summary.runId).toBe(result.summary?.runId);
    expect(report.lines.find((line) => line.id === stalled)).toMatchObject({
      outcome: 'failed',
      errorName: 'DeadlineError',
    });
    const upload = (operation: string) =>
      proxy.requests.filter((r) => r.operation === operation && r.key === `tokens/${stalled}/data`);
    expect(upload('CreateMultipartUpload').map((r) => r.upstreamStatus)).toEqual([200]);
    expect(upload('CompleteMultipartUpload')).toEqual([]);
    expect(upload('AbortMultipartUpload').map((r) => r.upstreamStatus)).toEqual([204]);
    await checkInvariant(s, local, { before, runs: [cliOutcome(result)] });
  });

  it('returns the summary in Lambda when the time left less DEADLINE_RESERVE_MS runs out: the trickling line fails, lines not started are deferred, the report and metrics are written', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: finishedLines(4, 2000),
      env: {
        ...PATIENT_BODIES,
        LINE_CONCURRENCY: '1',
        DEADLINE_RESERVE_MS: '20000',
        TIME_RESERVE_MS: '5000',
      },
    });
    const [healthy, slow] = ids(local.tokens.lines) as [string, string];
    const download: { closed?: number } = {};
    const front = track(
      await startFront(local.tokens.url, (req, res) =>
        req.url === `/api/tokens/${slow}/data` ? trickle(res, 2000, download) : false,
      ),
    );
    s.fault('file: body trickles 10 B every 100 ms (2000 B would take 20 s)');
    const { metrics, sink } = recordingSink();
    const before = snapshot(local.tokens);
    // The run's deadline falls 5 s in: time for the healthy line on a busy machine, not for the slow one.
    const endsAt = Date.now() + 25_000;
    const started = Date.now();

    const run = await settle(
      createHandler({ ...local.env, TOKENS_API_URL: front.url }, { metrics: sink })(
        {},
        { getRemainingTimeInMillis: () => endsAt - Date.now() },
      ),
    );

    // Ended at its deadline, not after the 20 s the slow download would take.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(run.error).toBeUndefined();
    expect(run.summary).toMatchObject({ finished: 4, dismantled: 1, deferred: 2 });
    expect(run.summary?.failed).toEqual([
      { id: slow, reason: expect.stringContaining('DEADLINE_RESERVE_MS') },
    ]);
    expect(run.summary?.failed[0]?.reason).toContain('run deadline reached');
    expect(local.tokens.lines.get(healthy)?.status).toBe('deleted');
    // The trickling download was cut, not left to run on after the summary.
    await waitFor('the trickling download to be closed', () => download.closed, { timeoutMs: 1000 });
    const report = await runReport(local);
    expect(report.lines.find((line) => line.id === slow)).toMatchObject({ errorName: 'DeadlineError' });
    expect(metrics).toMatchObject({ LinesFailed: 1, LinesDeferred: 2, LinesDismantled: 1 });
    expect(sink.flushed).toBe(true);
    await checkInvariant(s, local, { before, runs: [run] });
  });
});

describe('an invocation started with less time left than DEADLINE_RESERVE_MS', () => {
  it('returns a summary that says no line was listed and why, and writes the run report and metrics', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: [{ status: 'finished', fileSize: 2000 }],
      env: { DEADLINE_RESERVE_MS: '20000' },
    });
    s.fault('the invocation starts with 3 s left');
    const { metrics, sink } = recordingSink();
    const before = snapshot(local.tokens);
    const endsAt = Date.now() + 3_000;

    const run = await settle(
      createHandler(local.env, { metrics: sink })(
        {},
        { getRemainingTimeInMillis: () => endsAt - Date.now() },
      ),
    );

    expect(run.error).toBeUndefined();
    expect(run.summary).toMatchObject({ listed: 0, archived: 0, dismantled: 0, failed: [] });
    expect(run.summary?.notStarted).toMatch(
      /^no line was listed: the invocation started with \d+ ms left, within DEADLINE_RESERVE_MS \(20000 ms\); the next run takes them$/,
    );
    const report = await runReport(local);
    expect(report.lines).toEqual([]);
    expect(metrics).toMatchObject({ LinesArchived: 0, LinesDeferred: 0 });
    expect(sink.flushed).toBe(true);
    expect([...local.tokens.lines.values()].every((line) => line.status === 'finished')).toBe(true);
    await checkInvariant(s, local, { before, runs: [run] });
  });
});

describe('a deadline reached while the lines are listed', () => {
  it('fails the run with the DeadlineError, not a summary that says nothing was started', async ({ s }) => {
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 10 }] });
    // The list stalls; the run's deadline falls 1 s in (25 s left, less a 24 s reserve).
    s.inject(local.tokens, { target: 'list', fault: { kind: 'stall' } });
    const endsAt = Date.now() + 25_000;

    const run = await settle(
      createHandler({ ...local.env, DEADLINE_RESERVE_MS: '24000' })(
        {},
        { getRemainingTimeInMillis: () => endsAt - Date.now() },
      ),
    );

    expect(run.summary).toBeUndefined();
    expect(run.error).toMatchObject({ name: 'DeadlineError' });
  });
});

describe('a hard deadline during a DELETE', () => {
  it('keeps the receipt of a line whose DELETE was sent when the deadline cut its reply', async ({ s }) => {
    const { local, id } = await oneFinishedLine(track, { fileSize: 2000, env: PATIENT_BODIES });
    // The service deletes the line, then its reply stalls half-way. A DELETE once sent is no
    // longer in-flight work to abort: the line is gone, and only this run can keep its receipt
    // (a later run finds a 404 and no pending marker, and skips it as "not found").
    s.inject(local.tokens, { target: 'delete', id, fault: { kind: 'stall' } });
    const before = snapshot(local.tokens);

    const run = await settle(createHandler(local.env)({ maxDurationSeconds: 1 }));

    expect(local.tokens.lines.get(id)?.status).toBe('deleted');
    expect(run.summary?.failed.filter((line) => line.dismantled !== true)).toEqual([]);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  // Guards what once failed: line-work.ts #keepReceipt / #keepPending call `retry(op, undefined)`, but `retry`'s
  // `signal = options.signal` default applies to an explicit undefined: the run's deadline aborts it.
  it('writes the receipt after a refused first attempt even when the deadline passes during its backoff', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track, {
      env: { RETRY_BASE_DELAY_MS: '1500', RETRY_MAX_DELAY_MS: '1500' },
    });
    let refused = false;
    const a = await proxiedS3(track, local, { enforceConditionalWrites: true });
    a.proxy.decide = ({ operation, key }) => {
      if (operation === 'PutObject' && key.endsWith('deleted.json') && !refused) {
        refused = true;
        return { fail: 403 };
      }
      return 'forward';
    };
    s.fault('the first PUT of the receipt is refused (403); the deadline passes during the backoff');
    const before = snapshot(local.tokens);

    const run = await settle(createHandler(a.env)({ maxDurationSeconds: 1 }));

    expect(refused).toBe(true);
    expect(run.summary).toMatchObject({ dismantled: 1 });
    expect(await listKeys(local.s3Client, local.bucket, `tokens/${id}/deleted.json`)).toEqual([
      `tokens/${id}/deleted.json`,
    ]);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  // Guards what once failed: line-work.ts #keepReceipt: the receipt's S3 requests get no abort signal or timeout of
  // their own (deps.ts: 120 s request timeout), so a hung PUT holds the run past its deadline.
  it('returns soon after the deadline when the receipt PUT hangs', { timeout: 20_000 }, async ({ s }) => {
    const { local } = await oneFinishedLine(track);
    const a = await proxiedS3(track, local, { enforceConditionalWrites: true });
    a.proxy.decide = ({ operation, key }) =>
      operation === 'PutObject' && key.endsWith('deleted.json') ? 'hold' : 'forward';
    s.fault('the PUT of the receipt is never answered');
    const started = Date.now();

    const run = await Promise.race([
      // The receipt gets half of DEADLINE_RESERVE_MS (at least 2 s) past the deadline.
      settle(createHandler({ ...a.env, DEADLINE_RESERVE_MS: '4000' })({ maxDurationSeconds: 1 })),
      new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 8_000).unref()),
    ]);

    expect(run).not.toBe('hung');
    expect(Date.now() - started).toBeLessThan(8_000);
  });
});

// Until a failed line stops cleanly, these runs may never return: a short timeout fails them fast.
describe('a failed line stops', { timeout: 5_000 }, () => {
  it('requests no other file of a line once one of its files failed for good, during the run or after it', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: [{ status: 'finished', analysis: 'metrics', fileSize: 3000 }],
      env: { FILE_CONCURRENCY: '1', RETRY_ATTEMPTS: '2' },
    });
    const [id] = ids(local.tokens.lines) as [string];
    // Files go in order of name: analysis is the first.
    s.inject(local.tokens, {
      target: 'file',
      id,
      file: 'analysis',
      fault: { kind: 'corrupt' },
      times: Infinity,
    });
    const before = snapshot(local.tokens);
    const fileRequests = () =>
      local.tokens.requests
        .filter((r) => r.path.startsWith(`/api/tokens/${id}/`))
        .map((r) => r.path.slice(`/api/tokens/${id}/`.length));

    const run = await runHandler(local.env);

    expect(run.summary?.failed).toEqual([{ id, reason: expect.stringContaining('file analysis') }]);
    expect(fileRequests()).toEqual(['analysis', 'analysis']);
    // Anything the line still had queued would be on its way by now: one round trip of our own
    // to the simulator, then nothing of the line may have arrived after it.
    const seen = local.tokens.requests.length;
    const probe = await fetch(`${local.tokens.url}/api/tokens`, {
      headers: { 'session-key': local.sessionKey },
    });
    await probe.body?.cancel();
    expect(local.tokens.requests.slice(seen).map((r) => r.path)).toEqual(['/api/tokens']);
    expect(fileRequests()).toEqual(['analysis', 'analysis']);
    expect(local.tokens.lines.get(id)?.status).toBe('finished');
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('aborts the line’s download in flight when another of its files fails for good', async ({ s }) => {
    const local = await localStack(track, {
      lines: [{ status: 'finished', analysis: 'metrics', fileSize: 3000 }],
      env: { ...PATIENT_BODIES, FILE_CONCURRENCY: '2', RETRY_ATTEMPTS: '2' },
    });
    const [id] = ids(local.tokens.lines) as [string];
    const stalled: { closed?: number } = {};
    const front = track(
      await startFront(local.tokens.url, (req, res) =>
        req.url === `/api/tokens/${id}/analysis` ? hang(res, 3000, stalled) : false,
      ),
    );
    s.fault('file analysis: body stalls forever');
    s.inject(local.tokens, { target: 'file', id, file: 'data', fault: { kind: 'corrupt' }, times: Infinity });
    const before = snapshot(local.tokens);
    const started = Date.now();

    const run = await runHandler({ ...local.env, TOKENS_API_URL: front.url });

    expect(Date.now() - started).toBeLessThan(3000);
    expect(run.summary?.failed).toEqual([{ id, reason: expect.stringContaining('file data') }]);
    await waitFor('the stalled download to be closed', () => stalled.closed, { timeoutMs: 1000 });
    const requested = local.tokens.requests.filter((r) => r.path.startsWith(`/api/tokens/${id}/`));
    expect(requested.map((r) => r.path.slice(`/api/tokens/${id}/`.length))).toEqual(['data', 'data']);
    await checkInvariant(s, local, { before, runs: [run] });
  });
});
