import { describe, expect, it } from 'vitest';
import { runHousekeeping } from '../../../lambda/core/pass.ts';
import { FULL_PASS } from '../../../lambda/core/request.ts';
import type { Deps, LineResult, RunRequest, Summary } from '../../../lambda/core/types.ts';
import { PASS_METRIC_NAMES } from '../../../lambda/shared/contract.ts';
import { deleteReply, fakeDeps, NOW, testConfig } from '../../support/fakes.ts';

const RUN_ID = '0b7e4c1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b';
// Named so that their order by id is their letter's.
const DISMANTLED = 'a0000000-0000-4000-8000-000000000001';
const PENDING = 'b0000000-0000-4000-8000-000000000002';
const CONFLICT = 'c0000000-0000-4000-8000-000000000003';
const CORRUPT = 'c1000000-0000-4000-8000-000000000007';
const NOT_FINISHED = 'd0000000-0000-4000-8000-000000000004';
const STARTED = 'e0000000-0000-4000-8000-000000000005';
const DEFERRED = 'f0000000-0000-4000-8000-000000000006';

/** Seven listed lines and a malformed item; each listed finished line meets a different fate. */
function arrange() {
  const fakes = fakeDeps();
  const { tokens, archive } = fakes;
  tokens.listPages(
    {
      lines: [
        [DISMANTLED, 'finished'],
        [PENDING, 'finished'],
        [CONFLICT, 'finished'],
        [CORRUPT, 'finished'],
      ],
    },
    {
      lines: [
        [NOT_FINISHED, 'finished'],
        [STARTED, 'started'],
        [DEFERRED, 'finished'],
      ],
      raw: [{ id: 'not-a-uuid', type: 'tokens', attributes: { status: 'finished' } }],
    },
  );
  tokens.line(DISMANTLED, {});
  // The DELETE is taken (202) but the line still shows: pending, archived but not dismantled.
  tokens.line(PENDING, {}).onDelete(PENDING, deleteReply(PENDING, 202));
  // A verified archive of another version where this line's file goes.
  tokens.line(CONFLICT, {});
  archive.put(archive.fileKey(CONFLICT, 'data'), 'another version\n');
  // Its download never hashes to what the line states: retried, then failed.
  tokens.line(CORRUPT, {}).serve(CORRUPT, 'data', 'corrupted in transit\n');
  // Finished when listed, started again when read by id.
  tokens.line(NOT_FINISHED, { status: 'started' });
  tokens.line(DEFERRED, {});
  return fakes;
}

/** One pass of `deps` under run RUN_ID: a full pass, but for `request`. */
const pass = (deps: Deps, request: Partial<RunRequest>) =>
  runHousekeeping(deps, testConfig(), { ...FULL_PASS, ...request }, { runId: RUN_ID });

describe('runHousekeeping', () => {
  it('counts what became of each line in the summary, deferring the lines past maxLines', async () => {
    const { deps, tokens } = arrange();

    const summary = await pass(deps, { maxLines: 5 });

    expect(summary).toMatchObject({
      runId: RUN_ID,
      listed: 7,
      finished: 5,
      archived: 2,
      dismantled: 1,
      filesUploaded: 2,
      deferred: 1,
      conflicts: 1,
      retries: 1,
      hashMismatches: 1,
      hashMismatchAttempts: 2,
      pending: [{ id: PENDING }],
      failed: [
        { id: CONFLICT, conflict: true },
        { id: CORRUPT, reason: expect.stringMatching(/file data: /) },
      ],
      skipped: [
        { id: '(no valid id)', reason: expect.stringMatching(/^malformed list item/) },
        { id: NOT_FINISHED, reason: 'status is "started", not finished' },
      ],
    });
    expect(summary.plan).toBeUndefined();
    expect(summary.failed[1]).not.toHaveProperty('conflict');
    // Twice for the corrupt download, once for the write the conflict's archive refuses; never
    // for the deferred line.
    expect(tokens.opened).toHaveLength(5);
  });

  it('writes a run report with the summary and one entry per line started, in id order', async () => {
    const { deps, archive } = arrange();

    const summary = await pass(deps, { maxLines: 5 });

    const report = archive.json(archive.runReportKey(RUN_ID, new Date(NOW))) as {
      schemaVersion: number;
      startedAt: string;
      summary: Summary;
      lines: LineResult[];
    };
    expect(report).toMatchObject({ schemaVersion: 1, startedAt: new Date(NOW).toISOString() });
    expect(report.summary).toEqual(JSON.parse(JSON.stringify(summary)));
    expect(report.lines.map((line) => [line.id, line.outcome])).toEqual([
      [DISMANTLED, 'dismantled'],
      [PENDING, 'pending'],
      [CONFLICT, 'failed'],
      [CORRUPT, 'failed'],
      [NOT_FINISHED, 'skipped'],
    ]);
  });

  it('emits every pass metric, named as in the contract, with the values of the summary', async () => {
    const { deps, metrics } = arrange();

    await pass(deps, { maxLines: 5 });

    expect(metrics.added.map((metric) => metric.name)).toEqual([...PASS_METRIC_NAMES, 'RunDuration']);
    expect(Object.fromEntries(metrics.added.map((metric) => [metric.name, metric.value]))).toMatchObject({
      LinesArchived: 2,
      LinesDismantled: 1,
      LinesFailed: 2,
      LinesDeferred: 1,
      LinesWaiting: 0,
      LinesSkipped: 2,
      LinesPending: 1,
      FilesArchived: 2,
      Conflicts: 1,
      HashMismatches: 1,
      Retries: 1,
      RunDuration: 0,
    });
    expect(metrics.added.find((metric) => metric.name === 'BytesArchived')?.unit).toBe('Bytes');
  });

  it('writes nothing on a dry run: no archive object, no run report, no metric, no DELETE', async () => {
    const { deps, archive, metrics, log } = arrange();
    const before = [...archive.objects.keys()];

    const summary = await pass(deps, { dryRun: true });

    expect(summary.plan?.map((line) => line.id)).toEqual([DISMANTLED, PENDING, CONFLICT, CORRUPT, DEFERRED]);
    expect([...archive.objects.keys()]).toEqual(before);
    expect(metrics.added).toEqual([]);
    expect(log).not.toContain('deleteLine');
    expect(log).not.toContain('writeRunReport');
  });

  it('reads only the lines named in ids: no listing, no pending markers', async () => {
    const { deps, log } = arrange();

    const summary = await pass(deps, { ids: [DISMANTLED] });

    expect(summary).toMatchObject({ listed: 1, finished: 1, archived: 1, dismantled: 1 });
    expect(log).not.toContain('listPage');
    expect(log).not.toContain('pendingLineIds');
  });
});
