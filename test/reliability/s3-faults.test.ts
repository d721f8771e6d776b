import { createHash } from 'node:crypto';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import { BUFFERED_PUT_BYTES } from '../../lambda/archive/upload.ts';
import { listKeys } from '../support/archive-inspect.ts';
import {
  closeAfterEach,
  finishedLines,
  localStack,
  oneFinishedLine,
  oneMultipartLine,
  proxiedS3,
  runCli,
  startRecordingServer,
} from './harness.ts';
import {
  checkInvariant,
  cliOutcome,
  observedPass,
  runHandler,
  settle,
  snapshot,
  storedDigest,
} from './invariant.ts';
import { it, type Scenario } from './ledger.ts';

const track = closeAfterEach();

/**
 * Two lines (one of four files, one of one), each file `extra` + 20 or 30 kB, through a store that
 * answers 500 to the first PutObject of every file, and one pass over them.
 */
async function firstFilePutsRefused(s: Scenario, extra: number) {
  const local = await localStack(track, {
    lines: [
      { status: 'finished', analysis: 'metrics', fileSize: extra + 20_000 },
      { status: 'finished', fileSize: extra + 30_000 },
    ],
  });
  const refused = new Set<string>();
  const { proxy, env } = await proxiedS3(track, local);
  proxy.decide = ({ operation, key }) => {
    if (operation !== 'PutObject' || key.endsWith('.json') || refused.has(key)) return 'forward';
    refused.add(key);
    return { fail: 500 };
  };
  s.fault('S3: 500 to the first PutObject of every file');
  const { before, run } = await observedPass(local, env);
  return { local, before, run, refused };
}

function fileRequests(requests: readonly { path: string }[], id: string): number {
  return requests.filter((r) => r.path.startsWith(`/api/tokens/${id}/`)).length;
}

describe('archive store faults', () => {
  it('deletes nothing, and exits 1 with every line failed, when the store is down for the whole run', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: [{ status: 'finished', analysis: 'metrics', fileSize: 1000 }, { status: 'finished' }],
    });
    // Not a released port: another test file, running at the same time, could bind it.
    const store = track(await startRecordingServer((req) => req.socket.destroy()));
    s.fault('S3 endpoint: a loopback server that drops every connection, for the whole run');
    const before = snapshot(local.tokens);

    const result = await runCli(track, { ...local.env, AWS_ENDPOINT_URL_S3: store.url });

    expect(result.code).toBe(1);
    expect(result.summary?.failed.map((line) => line.id).sort()).toEqual(
      [...local.tokens.lines.keys()].sort(),
    );
    expect(local.tokens.requests.filter((r) => r.method === 'DELETE')).toEqual([]);
    // The store's failure is named as the store's, not as the download breaking off.
    for (const line of result.summary?.failed ?? []) {
      expect(line.reason).toMatch(/^s3 object .*: [A-Za-z0-9]+ failed: /);
      expect(line.reason).not.toContain('broke off');
    }
    await checkInvariant(s, local, { before, runs: [cliOutcome(result)] });
  });

  it('names the store, not the download, when every part of a streamed multipart upload fails', async ({
    s,
  }) => {
    const { local, id } = await oneMultipartLine(track, {
      RETRY_ATTEMPTS: '2',
    });
    const { proxy, env } = await proxiedS3(track, local);
    proxy.decide = ({ operation }) => (operation === 'UploadPart' ? { fail: 500 } : 'forward');
    s.fault('S3: 500 to every UploadPart');

    const { before, run } = await observedPass(local, env);

    expect(run.summary?.failed).toEqual([
      { id, reason: expect.stringMatching(/^s3 object .*\/data: upload failed/) },
    ]);
    expect(run.summary?.failed[0]?.reason).not.toContain('broke off');
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('archives everything when the store answers 500 to every third PUT and to the first HEADs', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: [
        { status: 'finished', analysis: 'metrics', fileSize: 20_000 },
        { status: 'finished', fileSize: 30_000 },
        { status: 'finished', fileSize: 0 },
      ],
      // One line at a time: the n-th PUT is then the same request on every run.
      env: { LINE_CONCURRENCY: '1' },
    });
    const { proxy, env } = await proxiedS3(track, local);
    proxy.decide = ({ operation, ordinal }) => {
      if (operation === 'PutObject' && ordinal % 3 === 0) return { fail: 500 };
      if (operation === 'HeadObject' && ordinal <= 4) return { fail: 503 };
      return 'forward';
    };
    s.fault('S3: 500 to every 3rd PutObject');
    s.fault('S3: 503 to the first 4 HeadObject');

    const { before, run } = await observedPass(local, env);

    expect(run.summary).toMatchObject({ dismantled: 3, failed: [] });
    expect(proxy.requests.filter((r) => typeof r.action === 'object').length).toBeGreaterThanOrEqual(8);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('downloads a file again when the store refuses its streamed upload, which cannot be replayed', async ({
    s,
  }) => {
    // Above the size sent from memory (BUFFERED_PUT_BYTES), below the multipart threshold: streamed.
    const { local, before, run } = await firstFilePutsRefused(s, BUFFERED_PUT_BYTES);

    expect(run.summary).toMatchObject({ dismantled: 2, failed: [], filesUploaded: 5, retries: 5 });
    expect(local.tokens.requests.filter((r) => /^\/api\/tokens\/[^/]+\/[a-z]+$/.test(r.path))).toHaveLength(
      10,
    );
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('sends a small file the store refused again from memory, verified once and downloaded once', async ({
    s,
  }) => {
    const { local, before, run, refused } = await firstFilePutsRefused(s, 0);

    expect(run.summary).toMatchObject({ dismantled: 2, failed: [], filesUploaded: 5 });
    expect(refused.size).toBe(5);
    expect(local.tokens.requests.filter((r) => /^\/api\/tokens\/[^/]+\/[a-z]+$/.test(r.path))).toHaveLength(
      5,
    );
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('starts a multipart upload over when its parts and its completion fail', async ({ s }) => {
    const { local, id } = await oneMultipartLine(track);
    const { proxy, env } = await proxiedS3(track, local);
    proxy.decide = ({ operation, ordinal }) => {
      if (operation === 'UploadPart' && ordinal <= 2) return { fail: 500 };
      // Three times: more than the SDK's own attempts, so the whole upload is started over.
      if (operation === 'CompleteMultipartUpload' && ordinal <= 3) return { fail: 500 };
      return 'forward';
    };
    s.fault('S3: 500 to the first 2 UploadPart');
    s.fault('S3: 500 to the first 3 CompleteMultipartUpload');

    const { before, run } = await observedPass(local, env);

    expect(run.summary).toMatchObject({ dismantled: 1, failed: [] });
    // Parts are buffered (within UPLOAD_BUFFER_BYTES), so the SDK resends a failed part itself;
    // only the completion that fails past the SDK's own three attempts starts the file over:
    // two downloads.
    expect(fileRequests(local.tokens.requests, id)).toBe(2);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('keeps the line when its manifest cannot be written, and the next run reuses the verified files', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: [{ status: 'finished', analysis: 'metrics', fileSize: 4000 }],
      env: { RETRY_ATTEMPTS: '2' },
    });
    const [id] = [...local.tokens.lines.keys()] as [string];
    const { proxy, env } = await proxiedS3(track, local);
    proxy.decide = ({ operation, key }) =>
      operation === 'PutObject' && key.endsWith('/manifest.json') ? { fail: 500 } : 'forward';
    s.fault('S3: 500 to every PutObject of a manifest');
    let before = snapshot(local.tokens);

    const broken = await runHandler(env);

    expect(broken.summary?.failed).toEqual([{ id, reason: expect.stringContaining('manifest.json') }]);
    await checkInvariant(s, local, { before, runs: [broken] });

    before = snapshot(local.tokens);
    const downloadsBefore = fileRequests(local.tokens.requests, id);
    const healed = await runHandler(local.env);

    expect(healed.summary).toMatchObject({ dismantled: 1, filesUploaded: 0, filesReused: 4 });
    expect(fileRequests(local.tokens.requests, id)).toBe(downloadsBefore);
    await checkInvariant(s, local, { before, runs: [healed] });
  });

  it('leaves a line whose DELETE went through but whose receipt cannot be written pending, and the run that writes the receipt counts it once', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: finishedLines(2, 4000),
      env: { RETRY_ATTEMPTS: '2' },
    });
    const ids = [...local.tokens.lines.keys()].sort();
    const { proxy, env } = await proxiedS3(track, local);
    proxy.decide = ({ operation, key }) =>
      operation === 'PutObject' && key.endsWith('/deleted.json') ? { fail: 500 } : 'forward';
    s.fault('S3: 500 to every PutObject of a receipt');
    const before = snapshot(local.tokens);
    const handler = createHandler(env);

    const unrecorded = await settle(handler({}));

    expect(unrecorded.summary).toMatchObject({ archived: 2, dismantled: 0, failed: [] });
    expect(unrecorded.summary?.pending.map((line) => line.id).sort()).toEqual(ids);
    for (const line of unrecorded.summary?.pending ?? [])
      expect(line.reason).toMatch(
        /^dismantled \(.*\), but its receipt could not be written .*a later run writes it/,
      );
    expect(await listKeys(local.s3Client, local.bucket)).not.toContainEqual(
      expect.stringMatching(/deleted\.json$/),
    );
    expect(await listKeys(local.s3Client, local.bucket, 'tokens/_pending/')).toEqual(
      ids.map((id) => `tokens/_pending/${id}.json`),
    );

    proxy.decide = () => 'forward';
    s.fault('S3 accepts receipts again');
    const recorded = await settle(handler({}));

    expect(recorded.summary).toMatchObject({ dismantled: 2, failed: [], pending: [] });
    // Over both runs: each line counted dismantled once, its receipt kept.
    await checkInvariant(s, local, { before, runs: [unrecorded, recorded] });
  });
});

describe('a store that stores other bytes than it was sent', () => {
  it('is caught by full read-back, which uploads the file again and then dismantles the line', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: [{ status: 'finished', analysis: 'metrics', fileSize: 10_000 }],
      env: { VERIFY_READBACK: 'full' },
    });
    const [id] = [...local.tokens.lines.keys()] as [string];
    const { proxy, env } = await proxiedS3(track, local);
    let flipped = false;
    proxy.decide = ({ operation, key }) => {
      if (operation !== 'PutObject' || !key.endsWith('/score') || flipped) return 'forward';
      flipped = true;
      return 'flip';
    };
    s.fault('S3: a byte flipped in the first PutObject of one file');

    const { before, run } = await observedPass(local, env);

    expect(run.summary).toMatchObject({ dismantled: 1, failed: [], filesUploaded: 4 });
    expect(proxy.requests.filter((r) => r.action === 'flip')).toHaveLength(1);
    expect(local.tokens.requests.filter((r) => r.path === `/api/tokens/${id}/score`)).toHaveLength(2);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('keeps the line when every upload is corrupted, and the next run replaces the bad object', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track, {
      fileSize: 10_000,
      env: { VERIFY_READBACK: 'full', RETRY_ATTEMPTS: '2' },
    });
    const { proxy, env } = await proxiedS3(track, local);
    proxy.decide = ({ operation, key }) =>
      operation === 'PutObject' && key.endsWith('/data') ? 'flip' : 'forward';
    s.fault('S3: a byte flipped in every PutObject of the file');
    let before = snapshot(local.tokens);

    const corrupted = await runHandler(env);

    expect(corrupted.summary?.failed).toEqual([{ id, reason: expect.stringContaining('read-back') }]);
    // No delete permission: the bad bytes stay, vouched for by no manifest, until a run replaces them.
    await checkInvariant(s, local, { before, runs: [corrupted], expectedBadObjects: [`tokens/${id}/data`] });

    before = snapshot(local.tokens);
    const healed = await runHandler(local.env);

    // Reusing the bad object (trusting its claimed checksum) would dismantle the line and lose it.
    await checkInvariant(s, local, { before, runs: [healed] });
    expect(healed.summary).toMatchObject({ dismantled: 1, filesUploaded: 1, filesReused: 0 });
  });

  it('is not caught by the local S3 server itself, which keeps a checksum it never checked', async () => {
    const local = await localStack(track);
    const sent = Buffer.from('the bytes that were sent');
    const claimed = createHash('sha256').update('other bytes').digest('base64');

    await local.s3Client.send(
      new PutObjectCommand({ Bucket: local.bucket, Key: 'probe', Body: sent, ChecksumSHA256: claimed }),
    );
    const head = await local.s3Client.send(
      new HeadObjectCommand({ Bucket: local.bucket, Key: 'probe', ChecksumMode: 'ENABLED' }),
    );

    // Real S3 refuses such a PUT (BadDigest); fauxqs stores it and echoes the claim. Only `full`
    // read-back, which hashes what comes back, can see a corrupting store here.
    expect(head.ChecksumSHA256).toBe(claimed);
    expect((await storedDigest(local.s3.address, local.bucket, 'probe')).sha256).toBe(
      createHash('sha256').update(sent).digest('hex'),
    );
  });
});
