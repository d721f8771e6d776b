import { describe, expect } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import { closeAfterEach, finishedLines, localStack, runCli } from '../reliability/harness.ts';
import { checkInvariant, cliOutcome, runHandler, settle, snapshot } from '../reliability/invariant.ts';
import { it } from '../reliability/ledger.ts';
import { listKeys, objectJson } from '../support/archive-inspect.ts';

const track = closeAfterEach();
const MINUTE = 60_000;

describe('a grace period before dismantling (MIN_AGE)', () => {
  it('dismantles only the line finished long enough ago; the younger one waits, and the CLI exits 0', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: [
        { status: 'finished', fileSize: 1000, finishedAgoMs: 10 * MINUTE },
        { status: 'finished', fileSize: 1000, finishedAgoMs: 120 * MINUTE },
      ],
    });
    const [young, old] = [...local.tokens.lines.keys()] as [string, string];
    const before = snapshot(local.tokens);

    const result = await runCli(track, { ...local.env, MIN_AGE: '1h' });

    expect(result.code).toBe(0);
    expect(result.summary).toMatchObject({ finished: 2, archived: 1, dismantled: 1, waiting: 1, failed: [] });
    expect(local.tokens.lines.get(old)?.status).toBe('deleted');
    expect(local.tokens.lines.get(young)?.status).toBe('finished');
    expect(await listKeys(local.s3Client, local.bucket, `tokens/${young}/`)).toEqual([]);
    // The run report says until when it waits.
    const [reportKey] = await listKeys(local.s3Client, local.bucket, 'tokens/_runs/');
    const report = (await objectJson(local.s3Client, local.bucket, reportKey ?? '')) as {
      lines: { id: string; outcome: string; until?: string }[];
    };
    const waiting = report.lines.find((line) => line.id === young);
    expect(waiting?.outcome).toBe('waiting');
    const finishedAt = Date.parse(waiting?.until ?? '') - 60 * MINUTE;
    expect(Math.abs(finishedAt - (Date.now() - 10 * MINUTE))).toBeLessThan(MINUTE);
    await checkInvariant(s, local, { before, runs: [cliOutcome(result)] });
  });

  it('shows in the dry-run plan which lines wait and until when; a payload minAge overrides MIN_AGE', async () => {
    const local = await localStack(track, {
      lines: [
        { status: 'finished', fileSize: 1000, finishedAgoMs: 10 * MINUTE },
        { status: 'finished', fileSize: 1000, finishedAgoMs: 120 * MINUTE },
      ],
    });
    const [young, old] = [...local.tokens.lines.keys()] as [string, string];
    const handler = createHandler({ ...local.env, MIN_AGE: '1h' });

    const plan = await handler({ dryRun: true });
    const none = await handler({ dryRun: true, minAge: 0 });
    const day = await handler({ dryRun: true, minAge: '1d' });

    expect(plan.plan?.find((line) => line.id === young)).toMatchObject({
      action: 'wait',
      until: expect.stringMatching(/Z$/),
    });
    expect(plan.plan?.find((line) => line.id === old)).toMatchObject({ action: 'archive-and-dismantle' });
    expect(none.plan?.map((line) => line.action)).toEqual(['archive-and-dismantle', 'archive-and-dismantle']);
    expect(day.plan?.map((line) => line.action)).toEqual(['wait', 'wait']);
  });

  it('keeps a finished line without a readable finish time when MIN_AGE is set, and takes it when not', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: [{ status: 'finished', fileSize: 1000, finishedStamp: 'yesterday' }],
    });
    s.fault('get: timestamps.finished is "yesterday"');
    const [id] = [...local.tokens.lines.keys()] as [string];
    let before = snapshot(local.tokens);

    const graced = await runHandler({ ...local.env, MIN_AGE: '30m' });

    expect(graced.summary?.skipped).toEqual([
      {
        id,
        reason: expect.stringMatching(/no readable timestamps.finished \("yesterday"\) while MIN_AGE is set/),
      },
    ]);
    expect(local.tokens.deleteCount(id)).toBe(0);
    await checkInvariant(s, local, { before, runs: [graced] });

    before = snapshot(local.tokens);
    const plain = await runHandler(local.env);
    expect(plain.summary).toMatchObject({ dismantled: 1 });
    await checkInvariant(s, local, { before, runs: [plain] });
  });
});

describe('a gentle request rate (MAX_REQUESTS_PER_SECOND)', () => {
  it('never sends more than the cap plus one in any one-second window, and still dismantles every line', async ({
    s,
  }) => {
    const local = await localStack(track, { lines: finishedLines(3) });
    s.inject(local.tokens, { target: 'file', fault: { kind: 'status', status: 503 }, times: 2 });
    const before = snapshot(local.tokens);

    const run = await settle(
      createHandler({ ...local.env, MAX_REQUESTS_PER_SECOND: '5', LINE_CONCURRENCY: '8' })({}),
    );

    expect(run.summary).toMatchObject({ dismantled: 3, failed: [], retries: 2 });
    const times = local.tokens.requests.map((request) => request.at).sort((a, b) => a - b);
    expect(times.length).toBeGreaterThan(12);
    let busiest = 0;
    for (const [i, start] of times.entries()) {
      busiest = Math.max(busiest, times.filter((at, j) => j >= i && at < start + 1000).length);
    }
    expect(busiest).toBeLessThanOrEqual(6);
    await checkInvariant(s, local, { before, runs: [run] });
  });
});
