import { describe, expect, it } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import type { LocalStack } from '../local/stack.ts';
import { mixedLines } from '../local/tokens-service.ts';
import { objectJson } from '../support/archive-inspect.ts';
import { closeAfterEach, localStack, startCli, waitFor } from './harness.ts';
import { checkInvariant, cliOutcome, settle, snapshot } from './invariant.ts';
import { scenario } from './ledger.ts';
import { startS3Proxy } from './s3-proxy.ts';

const track = closeAfterEach();

function finishedIds(local: LocalStack): string[] {
  return [...local.tokens.lines.values()].filter((line) => line.status === 'finished').map((line) => line.id);
}

/** Receipts of the lines: which kept the service's own DELETE reply. */
async function receiptKinds(local: LocalStack, ids: readonly string[]): Promise<string[]> {
  const kinds: string[] = [];
  for (const id of ids) {
    const receipt = (await objectJson(local.s3Client, local.bucket, `tokens/${id}/deleted.json`)) as {
      reply?: unknown;
      alreadyGone?: string;
    };
    kinds.push(receipt.reply === undefined ? `already gone (${receipt.alreadyGone})` : 'reply');
  }
  return kinds;
}

describe('two passes at the same time on the same lines', () => {
  it('dismantles every finished line once, archived byte-exact, when two handlers race', async ({ task }) => {
    const s = scenario(task);
    const local = await localStack(track, { lines: mixedLines(12, { fileSize: 20_000 }) });
    const finished = finishedIds(local);
    s.fault('a second handler (own clients, own key cache) started at the same moment');
    const before = snapshot(local.tokens);

    const runs = await Promise.all([
      settle(createHandler(local.env)({})),
      settle(createHandler(local.env)({})),
    ]);

    for (const id of finished) expect(local.tokens.lines.get(id)?.status).toBe('deleted');
    await checkInvariant(s, local, { before, runs });
  });

  it("keeps the service's DELETE reply as the receipt, and sends no DELETE, when a later pass finds the line already gone", async ({
    task,
  }) => {
    const s = scenario(task);
    const local = await localStack(track, {
      lines: [
        { status: 'finished', fileSize: 5000 },
        { status: 'finished', fileSize: 5000 },
      ],
    });
    const finished = finishedIds(local);
    // The second pass reads and archives the lines, then its manifests wait for the first pass to end.
    let firstDone: () => void = () => undefined;
    const first = new Promise<void>((resolve) => {
      firstDone = resolve;
    });
    const proxy = track(await startS3Proxy(local.s3.address));
    proxy.decide = ({ operation, key }) =>
      operation === 'PutObject' && key.endsWith('/manifest.json') ? { after: first } : 'forward';
    s.fault('a second handler whose DELETEs come after the first pass dismantled the lines');
    const before = snapshot(local.tokens);

    const late = settle(createHandler({ ...local.env, AWS_ENDPOINT_URL_S3: proxy.url })({}));
    await waitFor('the second pass at its manifests', () =>
      finished.every((id) => proxy.requests.some((r) => r.key === `tokens/${id}/manifest.json`)),
    );
    const early = await settle(createHandler(local.env)({}));
    firstDone();
    const runs = [early, await late];

    // The later pass reads each line again right before its DELETE, finds it gone, and sends none.
    expect(runs.map((run) => run.summary?.dismantled)).toEqual([2, 0]);
    expect(runs[1]?.summary?.skipped.map((line) => line.reason)).toEqual([
      expect.stringMatching(/right before its DELETE: no DELETE sent/),
      expect.stringMatching(/right before its DELETE: no DELETE sent/),
    ]);
    expect(local.tokens.requests.filter((r) => r.method === 'DELETE').map((r) => r.status)).toEqual([
      200, 200,
    ]);
    expect(await receiptKinds(local, finished)).toEqual(['reply', 'reply']);
    await checkInvariant(s, local, { before, runs });
  });

  it('dismantles every line once when two CLI processes run side by side', async ({ task }) => {
    const s = scenario(task);
    const local = await localStack(track, { lines: mixedLines(8, { fileSize: 50_000 }) });
    const finished = finishedIds(local);
    s.fault('a second CLI process started at the same moment');
    const before = snapshot(local.tokens);

    const results = await Promise.all([track(startCli(local.env)).done, track(startCli(local.env)).done]);

    for (const id of finished) expect(local.tokens.lines.get(id)?.status).toBe('deleted');
    await checkInvariant(s, local, { before, runs: results.map(cliOutcome) });
  });

  it('holds when a full pass races a pass restricted to some of the same ids', async ({ task }) => {
    const s = scenario(task);
    const local = await localStack(track, { lines: mixedLines(8, { fileSize: 10_000 }) });
    const [first, , third] = finishedIds(local) as [string, string, string];
    s.fault('an ids-restricted handler racing a full pass');
    const before = snapshot(local.tokens);

    const runs = await Promise.all([
      settle(createHandler(local.env)({})),
      settle(createHandler(local.env)({ ids: [third, first] })),
    ]);

    await checkInvariant(s, local, { before, runs });
  });
});
