import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect } from 'vitest';
import { createPlannerHandler, createWorkerHandler } from '../../lambda/app/fanout-invoke.ts';
import { createHandler, type PublishingMetrics } from '../../lambda/app/invoke.ts';
import type { FanoutPlan, Summary } from '../../lambda/core/types.ts';
import { closeAfterEach, localStack, runCli } from '../reliability/harness.ts';
import { checkInvariant, cliOutcome, snapshot } from '../reliability/invariant.ts';
import { it } from '../reliability/ledger.ts';
import { listKeys, objectJson } from '../support/archive-inspect.ts';
import { bodiesIn, drain, type FanoutStack, startFanoutStack, wholeRun } from '../support/fanout-stack.ts';

const track = closeAfterEach();
let fanout: FanoutStack | undefined;
afterEach(async () => {
  await fanout?.close();
  fanout = undefined;
});

const finished = (count: number) =>
  Array.from({ length: count }, (_, i) => ({ status: 'finished' as const, fileSize: 1000 + i }));

/** A metrics sink that keeps what a run emits, as Powertools would publish it. */
function recordingMetrics(): PublishingMetrics & { readonly emitted: Map<string, number> } {
  const emitted = new Map<string, number>();
  return {
    emitted,
    addMetric: (name, _unit, value) => emitted.set(name, (emitted.get(name) ?? 0) + value),
    publishStoredMetrics: () => undefined,
  };
}

/** The line's archive folder holds its manifest and every file it states. */
async function archivedWhole(local: Awaited<ReturnType<typeof localStack>>, id: string): Promise<boolean> {
  const keys = await listKeys(local.s3Client, local.bucket, `tokens/${id}/`);
  const files = [...(local.tokens.lines.get(id)?.files.keys() ?? [])];
  return (
    keys.includes(`tokens/${id}/manifest.json`) &&
    files.every((name) => keys.includes(`tokens/${id}/${name}`))
  );
}

describe('the dismantle guard: MAX_DISMANTLES_PER_RUN', () => {
  it('dismantles at most the cap; the rest are archived, verified, held and reported; the next runs take them', async ({
    s,
  }) => {
    const local = await localStack(track, { lines: finished(5) });
    const ids = [...local.tokens.lines.keys()];
    const before = snapshot(local.tokens);
    const env = { ...local.env, MAX_DISMANTLES_PER_RUN: '2' };

    const first = await runCli(track, env);

    expect(first.code).toBe(0);
    expect(first.summary).toMatchObject({ finished: 5, archived: 5, dismantled: 2, failed: [] });
    const held = (first.summary as Summary).held;
    expect(held).toHaveLength(3);
    for (const line of held) {
      expect(line.reason).toMatch(
        /^MAX_DISMANTLES_PER_RUN \(2\) reached: archived only, kept on the service/,
      );
      expect(local.tokens.lines.get(line.id)?.status).toBe('finished');
      expect(local.tokens.deleteCount(line.id)).toBe(0);
      expect(await archivedWhole(local, line.id)).toBe(true);
    }
    expect((first.summary as Summary).guardTripped).toBe(held[0]?.reason);
    expect(ids.filter((id) => local.tokens.lines.get(id)?.status === 'deleted')).toHaveLength(2);
    // The run report says which lines were held, and why.
    const [reportKey] = await listKeys(local.s3Client, local.bucket, 'tokens/_runs/');
    const report = (await objectJson(local.s3Client, local.bucket, reportKey ?? '')) as {
      summary: Summary;
      lines: { id: string; outcome: string; reason?: string }[];
    };
    expect(report.lines.filter((line) => line.outcome === 'held').map((line) => line.id)).toEqual(
      held.map((line) => line.id),
    );
    expect(report.summary.held).toEqual(held);

    const second = await runCli(track, env);
    const third = await runCli(track, env);

    expect(second.summary).toMatchObject({ dismantled: 2, filesUploaded: 0 });
    expect((second.summary as Summary).held).toHaveLength(1);
    expect(third.summary).toMatchObject({ dismantled: 1, held: [], failed: [] });
    expect(third.summary).not.toHaveProperty('guardTripped');
    for (const id of ids) {
      expect(local.tokens.lines.get(id)?.status).toBe('deleted');
      expect(local.tokens.deleteCount(id)).toBe(1);
    }
    await checkInvariant(s, local, { before, runs: [first, second, third].map(cliOutcome) });
  });

  it('emits LinesHeld, the metric its alarm watches, and 0 when nothing was held', async () => {
    const local = await localStack(track, { lines: finished(3) });
    const env = { ...local.env, MAX_DISMANTLES_PER_RUN: '1' };
    const runs = [recordingMetrics(), recordingMetrics(), recordingMetrics()];

    for (const metrics of runs) await createHandler(env, { metrics })({});

    expect(runs.map((metrics) => metrics.emitted.get('LinesHeld'))).toEqual([2, 1, 0]);
    expect(runs.map((metrics) => metrics.emitted.get('LinesDismantled'))).toEqual([1, 1, 1]);
  });

  it("shows in a dry run which lines it would hold, and an event's maxDismantles replaces the setting", async () => {
    const local = await localStack(track, { lines: finished(3) });
    const handler = createHandler({ ...local.env, MAX_DISMANTLES_PER_RUN: '1' });

    const plan = await handler({ dryRun: true });
    const lifted = await handler({ dryRun: true, maxDismantles: 3 });
    const none = await handler({ dryRun: true, maxDismantles: 0 });

    const actions = (summary: Summary) => (summary.plan ?? []).map((line) => line.action).sort();
    expect(actions(plan)).toEqual(['archive-and-dismantle', 'archive-and-hold', 'archive-and-hold']);
    expect(plan.plan?.find((line) => line.action === 'archive-and-hold')?.held).toMatch(
      /^MAX_DISMANTLES_PER_RUN \(1\) reached/,
    );
    expect(plan.guardTripped).toMatch(/^MAX_DISMANTLES_PER_RUN \(1\) reached/);
    expect(actions(lifted)).toEqual(Array(3).fill('archive-and-dismantle'));
    expect(actions(none)).toEqual(Array(3).fill('archive-and-hold'));
    expect(await listKeys(local.s3Client, local.bucket, '')).toEqual([]);
    expect([...local.tokens.lines.values()].every((line) => line.status === 'finished')).toBe(true);
  });
});

describe('the dismantle guard and a DELETE an earlier run saw taken', () => {
  it('holds a line whose earlier DELETE is still pending without sending another, keeps its marker, and a later guarded run confirms it', async () => {
    const local = await localStack(track, { lines: finished(1) });
    const [x] = [...local.tokens.lines.keys()] as [string];
    local.tokens.inject({
      target: 'delete',
      id: x,
      fault: { kind: 'delete-reply', status: 202, acts: false, body: 'none' },
    });
    const guarded = createHandler({ ...local.env, MAX_DISMANTLES_PER_RUN: '0' });
    const earlier = await createHandler(local.env)({});
    expect(earlier.pending.map((line) => line.id)).toEqual([x]);

    const held = await guarded({});
    local.tokens.completeDeletion(x);
    const confirmed = await guarded({});

    expect(held).toMatchObject({ dismantled: 0, pending: [], failed: [] });
    expect(held.held.map((line) => line.id)).toEqual([x]);
    expect(await listKeys(local.s3Client, local.bucket, 'tokens/_pending/')).toEqual([
      `tokens/_pending/${x}.json`,
    ]);
    // Confirmed with no DELETE of its own: the one DELETE is the earlier run's.
    expect(confirmed).toMatchObject({ dismantled: 1, held: [], pending: [], failed: [] });
    expect(local.tokens.deleteCount(x)).toBe(1);
    expect(await objectJson(local.s3Client, local.bucket, `tokens/${x}/deleted.json`)).toMatchObject({
      lineId: x,
      runId: confirmed.runId,
      confirmation: expect.stringContaining(`the DELETE was taken by run ${earlier.runId}`),
    });
  });
});

describe('the dismantle guard: MAX_DISMANTLE_SHARE', () => {
  const shareEnv = { MAX_DISMANTLE_SHARE: '0.5', MAX_DISMANTLE_SHARE_MIN_LINES: '6' };

  it('dismantles nothing when the listing shows more than the share finished at once; archives and holds every line', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: [...finished(5), { status: 'started' }, { status: 'requested' }],
    });
    s.fault('list: 5 of 7 lines finished at once');
    const before = snapshot(local.tokens);

    const result = await runCli(track, { ...local.env, ...shareEnv });

    expect(result.code).toBe(0);
    expect(result.summary).toMatchObject({ listed: 7, finished: 5, archived: 5, dismantled: 0, failed: [] });
    const summary = result.summary as Summary;
    expect(summary.held).toHaveLength(5);
    expect(summary.guardTripped).toBe(
      'the listing shows 5 of 7 lines finished at once (71.4%), more than MAX_DISMANTLE_SHARE (50% of a listing of at least 6 lines): nothing is dismantled in this run; archived only, kept on the service',
    );
    for (const line of summary.held) {
      expect(local.tokens.deleteCount(line.id)).toBe(0);
      expect(await archivedWhole(local, line.id)).toBe(true);
    }
    await checkInvariant(s, local, { before, runs: [cliOutcome(result)] });
  });

  it('judges the share on the lines still there: deleted lines the listing keeps do not dilute it', async () => {
    const local = await localStack(track, {
      lines: [...finished(5), { status: 'started' }, { status: 'requested' }],
    });
    // A service that keeps listing the lines it deleted (status "deleted"), as earlier runs left them.
    local.tokens.setRawListItems(
      Array.from({ length: 30 }, () => ({
        id: randomUUID(),
        type: 'tokens',
        attributes: { status: 'deleted' },
      })),
    );

    const summary = await createHandler({ ...local.env, ...shareEnv })({});

    expect(summary).toMatchObject({ listed: 37, finished: 5, archived: 5, dismantled: 0, failed: [] });
    expect(summary.guardTripped).toMatch(/^the listing shows 5 of 7 lines finished at once \(71\.4%\)/);
    expect(summary.held).toHaveLength(5);
    expect([...local.tokens.lines.values()].every((line) => local.tokens.deleteCount(line.id) === 0)).toBe(
      true,
    );
  });

  it('lets a listing at the share go, and an operator lift it for one run (maxDismantleShare 1)', async () => {
    const half = await localStack(track, {
      lines: [...finished(3), { status: 'started' }, { status: 'started' }, { status: 'started' }],
    });
    const all = await localStack(track, { lines: finished(6) });

    const within = await createHandler({ ...half.env, ...shareEnv })({});
    const handler = createHandler({ ...all.env, ...shareEnv });
    const over = await handler({ dryRun: true });
    const lifted = await handler({ maxDismantleShare: 1 });

    expect(within).toMatchObject({ finished: 3, dismantled: 3, held: [] });
    expect(within.guardTripped).toBeUndefined();
    expect(over.guardTripped).toMatch(/^the listing shows 6 of 6 lines finished at once \(100%\)/);
    expect(over.plan?.map((line) => line.action)).toEqual(Array(6).fill('archive-and-hold'));
    expect(lifted).toMatchObject({ finished: 6, dismantled: 6, held: [] });
  });

  it('says it tripped even when no line reached it (every finished line still in its grace period)', async () => {
    const local = await localStack(track, {
      lines: Array.from({ length: 6 }, () => ({
        status: 'finished' as const,
        fileSize: 1000,
        finishedAgoMs: 60_000,
      })),
    });

    const summary = await createHandler({ ...local.env, ...shareEnv, MIN_AGE: '1h' })({});

    expect(summary).toMatchObject({ waiting: 6, held: [], dismantled: 0 });
    expect(summary.guardTripped).toMatch(/^the listing shows 6 of 6 lines finished at once/);
  });

  it('does not judge a run by ids: the operator named the lines (the cap still holds)', async () => {
    const local = await localStack(track, { lines: finished(3) });
    const ids = [...local.tokens.lines.keys()];
    const handler = createHandler({
      ...local.env,
      MAX_DISMANTLE_SHARE: '0.1',
      MAX_DISMANTLE_SHARE_MIN_LINES: '1',
    });

    const summary = await handler({ ids, maxDismantles: 2 });

    expect(summary).toMatchObject({ dismantled: 2 });
    expect(summary.held).toEqual([
      { id: expect.any(String), reason: expect.stringMatching(/\(2\) reached/) },
    ]);
  });
});

describe('the dismantle guard in fan-out mode', () => {
  it('the planner gives the leave for the whole run: workers dismantle at most the cap and hold the rest', async ({
    s,
  }) => {
    fanout = await startFanoutStack({ lines: finished(5), env: { MAX_DISMANTLES_PER_RUN: '2' } });
    const { local } = fanout;
    const before = snapshot(local.tokens);

    const plan = (await createPlannerHandler(fanout.env)({})) as FanoutPlan;
    const bodies = bodiesIn(fanout, 'tokens-work').map((body) => JSON.parse(body) as { hold?: string });
    await drain(fanout, createWorkerHandler(fanout.env));

    expect(plan).toMatchObject({
      enqueued: 5,
      held: 3,
      guardTripped: expect.stringMatching(/\(2\) reached/),
    });
    expect(bodies.filter((body) => body.hold !== undefined)).toHaveLength(3);
    const run = await wholeRun(local, plan.runId);
    expect(run).toMatchObject({ archived: 5, dismantled: 2, failed: [] });
    expect(run.held).toHaveLength(3);
    for (const line of run.held) expect(local.tokens.deleteCount(line.id)).toBe(0);
    await checkInvariant(s, local, { before, runs: [{ summary: run }] });
  });
});

describe('the dismantle guard in fan-out mode: lines with a pending DELETE', () => {
  it('holds a line with a pending DELETE that the listing missed: the planner gives it no leave beyond the cap', async () => {
    // A: listed on the first page, then removed by someone else before the second page is read, so
    // the offset listing skips X. X: finished, with a DELETE an earlier run saw taken (202) and the
    // service never carried out, so it comes in as a pending line, not a listed one.
    fanout = await startFanoutStack({ lines: finished(2), pageSize: 1 });
    const { local } = fanout;
    const [a, x] = [...local.tokens.lines.keys()] as [string, string];
    local.tokens.inject({
      target: 'delete',
      id: x,
      fault: { kind: 'delete-reply', status: 202, acts: false, body: 'none' },
    });
    const earlier = await createHandler(fanout.env)({ ids: [x] });
    expect(earlier.pending.map((line) => line.id)).toEqual([x]);
    local.tokens.onRequest((method, path) => {
      if (
        method === 'GET' &&
        path === '/api/tokens?page=2' &&
        local.tokens.lines.get(a)?.status === 'finished'
      )
        local.tokens.completeDeletion(a);
    });

    const plan = (await createPlannerHandler(fanout.env)({ maxDismantles: 0 })) as FanoutPlan;
    local.tokens.onRequest(undefined);
    const bodies = bodiesIn(fanout, 'tokens-work').map(
      (body) => JSON.parse(body) as { lineId: string; hold?: string },
    );
    await drain(fanout, createWorkerHandler(fanout.env));

    expect(plan).toMatchObject({ listed: 2, finished: 2, enqueued: 2 });
    expect(bodies.find((body) => body.lineId === x)?.hold).toMatch(/^MAX_DISMANTLES_PER_RUN \(0\) reached/);
    expect(local.tokens.deleteCount(x)).toBe(1);
    expect(local.tokens.lines.get(x)?.status).toBe('finished');
    const run = await wholeRun(local, plan.runId);
    expect(run).toMatchObject({ dismantled: 0, failed: [] });
    expect(run.held.map((line) => line.id)).toEqual([x]);
  });
});
