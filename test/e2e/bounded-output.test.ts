import { describe, expect, it } from 'vitest';
import { createHandler, PLAN_LINES_IN_REPLY } from '../../lambda/app/invoke.ts';
import type { PlannedLine } from '../../lambda/core/types.ts';
import { capturingLogger } from '../campaign/logs.ts';
import { closeAfterEach, localStack } from '../reliability/harness.ts';
import { listKeys, objectJson } from '../support/archive-inspect.ts';

const track = closeAfterEach();
const LINES = PLAN_LINES_IN_REPLY + 50;

describe('output that does not grow with the listing', () => {
  it('answers a Lambda dry run with the first lines of the plan and writes the whole plan to the bucket; the log line carries counts', async () => {
    const local = await localStack(track, {
      lines: Array.from({ length: LINES }, () => ({ status: 'finished' as const, fileSize: 10 })),
    });
    const logs: string[] = [];
    const handler = createHandler(local.env, { logger: capturingLogger(logs) });

    const summary = await handler({ dryRun: true }, { getRemainingTimeInMillis: () => 600_000 });

    expect(summary.plan).toHaveLength(PLAN_LINES_IN_REPLY);
    expect(summary).toMatchObject({
      listed: LINES,
      planLines: LINES,
      planKey: expect.stringMatching(/^tokens\/_plans\//),
    });
    expect(await listKeys(local.s3Client, local.bucket, 'tokens/_plans/')).toEqual([summary.planKey]);
    const stored = (await objectJson(local.s3Client, local.bucket, summary.planKey ?? '')) as {
      plan: PlannedLine[];
    };
    expect(stored.plan.map((line) => line.id).sort()).toEqual([...local.tokens.lines.keys()].sort());
    expect(stored.plan.slice(0, PLAN_LINES_IN_REPLY)).toEqual(summary.plan);
    // Nothing else is written by a dry run.
    expect(await listKeys(local.s3Client, local.bucket)).toEqual([summary.planKey]);
    const line = logs
      .map((text) => JSON.parse(text) as { message: string; summary?: Record<string, unknown> })
      .find((l) => l.message === 'run summary');
    expect(line?.summary).toMatchObject({ planned: LINES, failed: 0, skipped: 0, pending: 0 });
    expect(line?.summary).not.toHaveProperty('plan');
    expect(logs.every((text) => text.length < 4096)).toBe(true);
  });

  it('shows the whole plan at a terminal (no Lambda context), and writes nothing', async () => {
    const local = await localStack(track, {
      lines: Array.from({ length: LINES }, () => ({ status: 'finished' as const, fileSize: 10 })),
    });

    const summary = await createHandler(local.env)({ dryRun: true });

    expect(summary.plan).toHaveLength(LINES);
    expect(summary.planKey).toBeUndefined();
    expect(await listKeys(local.s3Client, local.bucket)).toEqual([]);
  });
});
