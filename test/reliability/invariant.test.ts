import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import type { Summary } from '../../lambda/core/types.ts';
import type { LocalStack } from '../local/stack.ts';
import { closeAfterEach, localStack } from './harness.ts';
import { inspectInvariant, observedPass, runHandler, snapshot } from './invariant.ts';

const track = closeAfterEach();

/** Dismantles a line behind the housekeeper's back, as a careless operator would. */
async function deleteDirectly(local: LocalStack, id: string): Promise<void> {
  const reply = await fetch(`${local.tokens.url}/api/tokens/${id}`, {
    method: 'DELETE',
    headers: { 'session-key': local.sessionKey },
  });
  await reply.arrayBuffer();
  expect(reply.status).toBe(200);
}

async function put(local: LocalStack, key: string, body: string): Promise<void> {
  await local.s3Client.send(
    new PutObjectCommand({ Bucket: local.bucket, Key: key, Body: Buffer.from(body) }),
  );
}

// The checker guards every scenario: it must itself fail on each kind of breach it claims to see.
describe('the invariant checker', () => {
  it('passes a clean pass', async () => {
    const local = await localStack(track, {
      lines: [{ status: 'finished', analysis: 'metrics', fileSize: 500 }, { status: 'started' }],
    });

    const { before, run } = await observedPass(local);
    const report = await inspectInvariant(local, { before, runs: [run] });

    expect(report.problems).toEqual([]);
    expect(report.deleted).toHaveLength(1);
    expect(report.objectsHashed).toBe(4);
  });

  it('sees a line deleted without its archive, and a summary that does not count it', async () => {
    const local = await localStack(track, { lines: [{ status: 'finished' }, { status: 'requested' }] });
    const [finished, requested] = [...local.tokens.lines.keys()] as [string, string];
    const before = snapshot(local.tokens);
    await deleteDirectly(local, finished);
    await deleteDirectly(local, requested);
    const summary = { dismantled: 0, archived: 0, failed: [], skipped: [], finished: 1, deferred: 0 };

    const report = await inspectInvariant(local, {
      before,
      runs: [{ summary: summary as unknown as Summary }],
    });

    expect(report.linesLost).toBe(2);
    expect(report.problems).toEqual(
      expect.arrayContaining([
        expect.stringContaining(
          `line ${finished}: deleted, but its archive lacks a verified data, manifest.json`,
        ),
        expect.stringContaining(`line ${requested}: deleted, but it was requested`),
        expect.stringContaining(`line ${requested}: 1 DELETE sent for a line that was requested`),
        expect.stringContaining('summary says 0 dismantled, the service lost 2'),
      ]),
    );
  });

  it('sees bad bytes, stray keys, objects of unfinished lines and receipts of live lines', async () => {
    const local = await localStack(track, { lines: [{ status: 'finished' }, { status: 'started' }] });
    const [finished, started] = [...local.tokens.lines.keys()] as [string, string];
    const before = snapshot(local.tokens);
    await put(local, `tokens/${finished}/data`, 'not the data');
    await put(local, `tokens/${finished}/deleted.json`, JSON.stringify({ lineId: finished }));
    await put(local, `tokens/${finished}/x`, '');
    await put(local, `tokens/${started}/data`, '');
    await put(local, 'x', '');

    const report = await inspectInvariant(local, { before, runs: [] });

    expect(report.badObjects).toBe(1);
    expect(report.problems).toEqual(
      expect.arrayContaining([
        expect.stringContaining(`tokens/${finished}/data: holds 12 bytes`),
        expect.stringContaining(`tokens/${finished}/deleted.json: receipt for a line the service still has`),
        expect.stringContaining(`tokens/${finished}/x: unexpected object`),
        expect.stringContaining(`tokens/${started}/data: object of a line that was started`),
        expect.stringContaining('x: object outside'),
      ]),
    );
  });

  it('sees a secret in the output, a wrong exit status, and a failed line that is deleted', async () => {
    const local = await localStack(track, { lines: [{ status: 'finished' }] });
    const [id] = [...local.tokens.lines.keys()] as [string];
    const before = snapshot(local.tokens);
    const run = await runHandler(local.env);
    const summary = { ...(run.summary as Summary), failed: [{ id, reason: 'made up' }] };

    const report = await inspectInvariant(local, {
      before,
      runs: [{ summary, exitCode: 0, output: `key=${local.sessionKey}` }],
    });

    expect(report.problems).toEqual(
      expect.arrayContaining([
        'the run: its summary, error or output contains a secret',
        'the run: exited 0, expected 1',
        `the run: reports line ${id} failed, but it is deleted`,
      ]),
    );
  });
});
