import { describe, expect } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import { FRESH_READ_MS } from '../../lambda/core/line/line-work.ts';
import type { LocalStack } from '../local/stack.ts';
import { mixedLines } from '../local/tokens-service.ts';
import { objectDigest, objectJson } from '../support/archive-inspect.ts';
import {
  closeAfterEach,
  finishedLines,
  localStack,
  oneFinishedLine,
  proxiedS3,
  startCli,
  storedManifest,
  waitFor,
} from './harness.ts';
import { checkInvariant, cliOutcome, runHandler, settle, snapshot } from './invariant.ts';
import { it } from './ledger.ts';

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

/**
 * The environment of a pass whose first PutObject of a key ending in `suffix` is held: `held`
 * resolves when it arrives, and it goes on to the store only once `release()` is called.
 */
async function holdFirstPut(local: LocalStack, suffix: string) {
  const { proxy, env } = await proxiedS3(track, local, { enforceConditionalWrites: true });
  let arrive: () => void = () => undefined;
  let release: () => void = () => undefined;
  const arrived = new Promise<void>((resolve) => {
    arrive = resolve;
  });
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let holding = false;
  proxy.decide = ({ operation, key }) => {
    if (operation !== 'PutObject' || !key.endsWith(suffix) || holding) return 'forward';
    holding = true;
    arrive();
    return { after: released };
  };
  return { held: arrived, release, env };
}

describe('a slower pass racing a newer one on the same line', () => {
  // Guards what once failed: archive.ts writeManifest (#putJson) is unconditional; line-work.ts #ensureManifest
  // compares with the manifest read at the start of the round, not with what is there now.
  it("never lets a slower pass replace a newer pass's manifest with one lacking a file", async ({ s }) => {
    const { local, id } = await oneFinishedLine(track);
    const { held, release, env: a } = await holdFirstPut(local, `${id}/manifest.json`);
    s.fault("pass A's manifest PUT is held while the line gains a file and pass B dismantles it");
    const before = snapshot(local.tokens);

    const runA = runHandler(a);
    await held;
    local.tokens.addFile(id, 'score', 500);
    const runB = await runHandler(local.env);
    release();
    const ranA = await runA;

    expect(runB.summary).toMatchObject({ dismantled: 1 });
    const manifest = await storedManifest(local, id);
    expect(manifest.files.map((file) => file.name).sort()).toEqual(['data', 'score']);
    await checkInvariant(s, local, { before, runs: [ranA, runB] });
  });

  // Guards what once failed: archive.ts uploadVerified PUTs (and completes multipart uploads) without If-None-Match,
  // so a pass whose plan saw the key missing overwrites what another pass verified there since.
  it('never lets a slower pass overwrite the verified newer version of a file another pass archived', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track);
    const { held, release, env: a } = await holdFirstPut(local, `${id}/data`);
    s.fault("pass A's upload of data is held while the service restates data and pass B dismantles the line");
    const before = snapshot(local.tokens);

    const runA = runHandler(a);
    await held;
    local.tokens.restateFile(id, 'data');
    const stated = local.tokens.lines.get(id)?.files.get('data');
    const runB = await runHandler(local.env);
    release();
    const ranA = await runA;

    expect(runB.summary).toMatchObject({ dismantled: 1 });
    expect(await objectDigest(local.s3Client, local.bucket, `tokens/${id}/data`)).toEqual({
      sha256: stated?.sha256,
      size: stated?.size,
    });
    await checkInvariant(s, local, { before, runs: [ranA, runB] });
  });
});

describe('two passes at the same time on the same lines', () => {
  it('dismantles every finished line once, archived byte-exact, when two handlers race', async ({ s }) => {
    const local = await localStack(track, { lines: mixedLines(12, { fileSize: 20_000 }) });
    const finished = finishedIds(local);
    s.fault('a second handler (own clients, own key cache) started at the same moment');
    const before = snapshot(local.tokens);

    const runs = await Promise.all([runHandler(local.env), runHandler(local.env)]);

    for (const id of finished) expect(local.tokens.lines.get(id)?.status).toBe('deleted');
    await checkInvariant(s, local, { before, runs });
  });

  it("reads a line again when its manifest ends more than FRESH_READ_MS after the re-read beside it: a later pass finds the line gone, sends no DELETE, and the service's reply stays the receipt", async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: finishedLines(2, 5000),
    });
    const finished = finishedIds(local);
    // The second pass reads and archives the lines, then its manifests wait for the first pass to
    // end, and longer than a re-read travelling beside them speaks for the line: it reads again.
    let firstDone: () => void = () => undefined;
    const first = new Promise<void>((resolve) => {
      firstDone = resolve;
    }).then(() => new Promise<void>((resolve) => setTimeout(resolve, FRESH_READ_MS + 50)));
    const { proxy, env } = await proxiedS3(track, local);
    proxy.decide = ({ operation, key }) =>
      operation === 'PutObject' && key.endsWith('/manifest.json') ? { after: first } : 'forward';
    s.fault('a second handler whose DELETEs come after the first pass dismantled the lines');
    const before = snapshot(local.tokens);

    const late = runHandler(env);
    await waitFor('the second pass at its manifests', () =>
      finished.every((id) => proxy.requests.some((r) => r.key === `tokens/${id}/manifest.json`)),
    );
    const early = await runHandler(local.env);
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

  it('dismantles every line once when two CLI processes run side by side', async ({ s }) => {
    const local = await localStack(track, { lines: mixedLines(8, { fileSize: 50_000 }) });
    const finished = finishedIds(local);
    s.fault('a second CLI process started at the same moment');
    const before = snapshot(local.tokens);

    const results = await Promise.all([track(startCli(local.env)).done, track(startCli(local.env)).done]);

    for (const id of finished) expect(local.tokens.lines.get(id)?.status).toBe('deleted');
    await checkInvariant(s, local, { before, runs: results.map(cliOutcome) });
  });

  it('holds when a full pass races a pass restricted to some of the same ids', async ({ s }) => {
    const local = await localStack(track, { lines: mixedLines(8, { fileSize: 10_000 }) });
    const [first, , third] = finishedIds(local) as [string, string, string];
    s.fault('an ids-restricted handler racing a full pass');
    const before = snapshot(local.tokens);

    const runs = await Promise.all([
      runHandler(local.env),
      settle(createHandler(local.env)({ ids: [third, first] })),
    ]);

    await checkInvariant(s, local, { before, runs });
  });
});
