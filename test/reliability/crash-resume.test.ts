import { describe, expect } from 'vitest';
import type { LocalStack } from '../local/stack.ts';
import { listKeys } from '../support/archive-inspect.ts';
import { MIB } from './bodies.ts';
import {
  closeAfterEach,
  localStack,
  MULTIPART_5_MIB,
  oneFinishedLine,
  PATIENT_BODIES,
  proxiedS3,
  runCli,
  startCli,
  waitFor,
} from './harness.ts';
import { checkInvariant, cliOutcome, snapshot } from './invariant.ts';
import { it } from './ledger.ts';
import { startS3Proxy } from './s3-proxy.ts';

const track = closeAfterEach();

/** Downloads of the line's files the simulator has seen (any outcome). */
function downloads(local: LocalStack, id: string): string[] {
  return local.tokens.requests
    .filter((r) => r.method === 'GET' && r.path.startsWith(`/api/tokens/${id}/`))
    .map((r) => r.path.slice(`/api/tokens/${id}/`.length));
}

/** A metrics line: four files, archived in name order (analysis, data, delta, score), one at a time. */
async function metricsStack(): Promise<{ local: LocalStack; id: string }> {
  const local = await localStack(track, {
    lines: [{ status: 'finished', analysis: 'metrics', fileSize: 256 * 1024 }, { status: 'started' }],
    env: PATIENT_BODIES,
  });
  const [id] = [...local.tokens.lines.keys()] as [string];
  return { local, id };
}

/**
 * A CLI pass over {@link metricsStack} whose manifest PUT the S3 proxy holds: `hold` never stores
 * it, `hold-reply` stores it and holds the reply. `before` is the service as the pass started.
 */
async function passHoldingManifest(hold: 'hold' | 'hold-reply') {
  const { local, id } = await metricsStack();
  const { proxy, env } = await proxiedS3(track, local);
  proxy.decide = ({ operation, key }) =>
    operation === 'PutObject' && key.endsWith('/manifest.json') ? hold : 'forward';
  const before = snapshot(local.tokens);
  return { local, id, proxy, before, crashed: track(startCli(env)) };
}

describe('a pass killed with SIGKILL, then run again', () => {
  it('resumes after a kill during a download, uploading only the files not yet verified', async ({ s }) => {
    const { local, id } = await metricsStack();
    s.inject(local.tokens, { target: 'file', id, file: 'delta', fault: { kind: 'stall' } });
    let before = snapshot(local.tokens);
    const crashed = track(startCli(local.env));

    await waitFor('the download of delta', () => downloads(local, id).includes('delta'));
    s.fault('SIGKILL during the download of the third file');
    const killed = await crashed.kill();

    expect(killed.signal).toBe('SIGKILL');
    expect(await listKeys(local.s3Client, local.bucket)).toEqual([
      `tokens/${id}/analysis`,
      `tokens/${id}/data`,
    ]);
    await checkInvariant(s, local, { before, runs: [cliOutcome(killed)] });

    before = snapshot(local.tokens);
    const seen = downloads(local, id).length;
    const resumed = await runCli(track, local.env);

    expect(resumed.code).toBe(0);
    expect(resumed.summary).toMatchObject({ dismantled: 1, filesReused: 2, filesUploaded: 2 });
    expect(downloads(local, id).slice(seen)).toEqual(['delta', 'score']);
    await checkInvariant(s, local, { before, runs: [cliOutcome(resumed)] });
  });

  it('resumes after a kill between the last upload and the manifest, downloading nothing again', async ({
    s,
  }) => {
    const { local, id, proxy, before: started, crashed } = await passHoldingManifest('hold');

    await waitFor('the manifest PUT', () => proxy.requests.some((r) => r.key.endsWith('/manifest.json')));
    s.fault('SIGKILL while the manifest PUT is in flight (never stored)');
    const killed = await crashed.kill();

    // Four files, and no manifest.
    expect(await listKeys(local.s3Client, local.bucket, `tokens/${id}/`)).toHaveLength(4);
    await checkInvariant(s, local, { before: started, runs: [cliOutcome(killed)] });

    const before = snapshot(local.tokens);
    const seen = downloads(local, id).length;
    const resumed = await runCli(track, local.env);

    expect(resumed.summary).toMatchObject({ dismantled: 1, filesReused: 4, filesUploaded: 0, bytes: 0 });
    expect(downloads(local, id).length).toBe(seen);
    await checkInvariant(s, local, { before, runs: [cliOutcome(resumed)] });
  });

  it('resumes after a kill between the stored manifest and the DELETE, and keeps that manifest', async ({
    s,
  }) => {
    const { local, id, proxy, before: started, crashed } = await passHoldingManifest('hold-reply');

    await waitFor('the stored manifest', () =>
      proxy.requests.some((r) => r.key.endsWith('/manifest.json') && r.upstreamStatus === 200),
    );
    s.fault('SIGKILL after the manifest is stored, before its reply (no DELETE sent)');
    const killed = await crashed.kill();

    expect(local.tokens.deleteCount(id)).toBe(0);
    await checkInvariant(s, local, { before: started, runs: [cliOutcome(killed)] });

    const before = snapshot(local.tokens);
    const seen = downloads(local, id).length;
    const watcher = track(await startS3Proxy(local.s3.address));
    const resumed = await runCli(track, { ...local.env, AWS_ENDPOINT_URL_S3: watcher.url });

    expect(resumed.summary).toMatchObject({ dismantled: 1, filesReused: 4, filesUploaded: 0 });
    expect(downloads(local, id).length).toBe(seen);
    const puts = watcher.requests.filter((r) => r.operation === 'PutObject').map((r) => r.key);
    // Only the receipt for the line (and the run's own report): no file or manifest again.
    expect(puts.filter((key) => !key.startsWith('tokens/_runs/'))).toEqual([`tokens/${id}/deleted.json`]);
    await checkInvariant(s, local, { before, runs: [cliOutcome(resumed)] });
  });

  it('loses nothing when killed after the service deleted the line but before its reply arrived', async ({
    s,
  }) => {
    const { local, id } = await metricsStack();
    s.inject(local.tokens, { target: 'delete', id, fault: { kind: 'stall' } });
    let before = snapshot(local.tokens);
    const crashed = track(startCli(local.env));

    await waitFor('the DELETE', () => local.tokens.lines.get(id)?.status === 'deleted');
    s.fault('SIGKILL while the DELETE reply is in flight');
    const killed = await crashed.kill();

    expect(await listKeys(local.s3Client, local.bucket, `tokens/${id}/`)).not.toContain(
      `tokens/${id}/deleted.json`,
    );
    await checkInvariant(s, local, { before, runs: [cliOutcome(killed)] });

    before = snapshot(local.tokens);
    const resumed = await runCli(track, local.env);

    expect(resumed.code).toBe(0);
    expect(resumed.summary).toMatchObject({ listed: 1, finished: 0, dismantled: 0 });
    await checkInvariant(s, local, { before, runs: [cliOutcome(resumed)] });
  });

  it('resumes after a kill while a multipart upload is being completed', async ({ s }) => {
    const { local, id } = await oneFinishedLine(track, {
      fileSize: 6 * MIB + 5,
      env: {
        ...PATIENT_BODIES,
        ...MULTIPART_5_MIB,
      },
    });
    const { proxy, env } = await proxiedS3(track, local);
    proxy.decide = ({ operation }) => (operation === 'CompleteMultipartUpload' ? 'hold' : 'forward');
    let before = snapshot(local.tokens);
    const crashed = track(startCli(env));

    await waitFor('the completion', () =>
      proxy.requests.some((r) => r.operation === 'CompleteMultipartUpload'),
    );
    s.fault('SIGKILL while CompleteMultipartUpload is in flight');
    const killed = await crashed.kill();

    expect(await listKeys(local.s3Client, local.bucket)).toEqual([]);
    await checkInvariant(s, local, { before, runs: [cliOutcome(killed)] });

    before = snapshot(local.tokens);
    const resumed = await runCli(track, local.env);

    expect(resumed.summary).toMatchObject({ dismantled: 1, filesUploaded: 1 });
    expect(downloads(local, id)).toEqual(['data', 'data']);
    await checkInvariant(s, local, { before, runs: [cliOutcome(resumed)] });
  });
});
