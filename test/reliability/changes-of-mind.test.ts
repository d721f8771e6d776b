import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import { listKeys, objectDigest, objectJson } from '../support/archive-inspect.ts';
import { closeAfterEach, oneFinishedLine, storedManifest } from './harness.ts';
import { checkInvariant, observedPass, settle, snapshot } from './invariant.ts';
import { it } from './ledger.ts';

const track = closeAfterEach();

describe('a line whose stated files change after it was archived', () => {
  it.for([
    ['an archive-only run', 'archive-only'],
    ['a run whose DELETE failed', 'delete-refused'],
  ] as const)(
    'never overwrites the verified archive left by %s: a conflict, then keep-both resolves it',
    async ([_label, how], { s }) => {
      const { local, id } = await oneFinishedLine(track, { fileSize: 3000 });
      const handler = createHandler(local.env);
      let before = snapshot(local.tokens);
      if (how === 'archive-only') {
        await handler({ archiveOnly: true });
      } else {
        s.inject(local.tokens, { target: 'delete', id, fault: { kind: 'status', status: 400 } });
        const first = await handler({});
        expect(first.failed.map((line) => line.id)).toEqual([id]);
      }
      const original = local.tokens.lines.get(id)?.files.get('data');
      const firstManifest = await objectJson(local.s3Client, local.bucket, `tokens/${id}/manifest.json`);

      // The service changes its mind: another size and hash for `data`, and bytes that match them.
      local.tokens.restateFile(id, 'data', 3500);
      s.fault('the service restates file data (other size, hash and bytes) after it was archived');
      const restated = local.tokens.lines.get(id)?.files.get('data');
      before = snapshot(local.tokens);

      const conflicted = await settle(handler({}));

      expect(conflicted.summary).toMatchObject({ archived: 0, dismantled: 0, conflicts: 1 });
      const [failure] = conflicted.summary?.failed ?? [];
      expect(failure).toMatchObject({ id, conflict: true });
      // The reason names the file, both hashes and both sizes.
      for (const part of ['data', original?.sha256, restated?.sha256, '3000 bytes', '3500 bytes']) {
        expect(failure?.reason).toContain(part);
      }
      expect(local.tokens.lines.get(id)?.status).toBe('finished');
      expect(local.tokens.deleteCount(id)).toBe(how === 'archive-only' ? 0 : 1);
      expect(await objectDigest(local.s3Client, local.bucket, `tokens/${id}/data`)).toEqual({
        sha256: original?.sha256,
        size: 3000,
      });
      expect(await objectJson(local.s3Client, local.bucket, `tokens/${id}/manifest.json`)).toEqual(
        firstManifest,
      );
      const reportKey = (await listKeys(local.s3Client, local.bucket, 'tokens/_runs/')).find((key) =>
        key.endsWith(`${conflicted.summary?.runId}.json`),
      );
      const report = (await objectJson(local.s3Client, local.bucket, reportKey ?? '')) as {
        summary: { conflicts: number };
        lines: { id: string; outcome: string; conflict?: boolean }[];
      };
      expect(report.summary.conflicts).toBe(1);
      expect(report.lines).toEqual([expect.objectContaining({ id, outcome: 'failed', conflict: true })]);
      await checkInvariant(s, local, { before, runs: [conflicted] });

      // A second scheduled run is no different: the line stays until a person decides.
      const again = await handler({});
      expect(again).toMatchObject({ dismantled: 0, conflicts: 1 });

      before = snapshot(local.tokens);
      const resolved = await settle(handler({ ids: [id], onConflict: 'keep-both' }));

      expect(resolved.summary).toMatchObject({ archived: 1, dismantled: 1, failed: [], conflicts: 0 });
      expect(local.tokens.lines.get(id)?.status).toBe('deleted');
      const newKey = `tokens/${id}/data.sha256-${restated?.sha256}`;
      expect(await objectDigest(local.s3Client, local.bucket, `tokens/${id}/data`)).toEqual({
        sha256: original?.sha256,
        size: 3000,
      });
      expect(await objectDigest(local.s3Client, local.bucket, newKey)).toEqual({
        sha256: restated?.sha256,
        size: 3500,
      });
      const manifest = await storedManifest(local, id);
      expect(manifest.files).toEqual([{ name: 'data', key: newKey, size: 3500, sha256: restated?.sha256 }]);
      expect(manifest.superseded).toEqual([
        expect.objectContaining({
          name: 'data',
          key: `tokens/${id}/data`,
          size: 3000,
          sha256: original?.sha256,
          supersededBy: resolved.summary?.runId,
        }),
      ]);
      await checkInvariant(s, local, { before, runs: [resolved] });
    },
  );

  it('uploads again over an object whose bytes do not match its own record (damaged, not verified)', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track, { fileSize: 2000 });
    const stated = local.tokens.lines.get(id)?.files.get('data');
    // What a mangling store leaves: the right record (metadata), other bytes.
    await local.s3Client.send(
      new PutObjectCommand({
        Bucket: local.bucket,
        Key: `tokens/${id}/data`,
        Body: Buffer.alloc(2000, 7),
        Metadata: { sha256: stated?.sha256 ?? '', size: '2000', 'line-id': id },
      }),
    );
    s.fault('an object under the file key whose bytes do not hash to its recorded sha256');

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ dismantled: 1, filesUploaded: 1, conflicts: 0 });
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('keeps a line whose archived object was not recorded by the housekeeper, as a conflict', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track, { fileSize: 2000 });
    await local.s3Client.send(
      new PutObjectCommand({ Bucket: local.bucket, Key: `tokens/${id}/data`, Body: Buffer.alloc(2000, 1) }),
    );
    s.fault('an object under the file key with no record of ours (put by someone else)');

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ dismantled: 0, conflicts: 1 });
    expect(run.summary?.failed[0]?.reason).toMatch(/did not record/);
    expect(local.tokens.deleteCount(id)).toBe(0);
    await checkInvariant(s, local, { before, runs: [run], expectedBadObjects: [`tokens/${id}/data`] });
  });

  it.for([
    ['damaged (other bytes under the new hash)', true],
    ['not recorded by the housekeeper', false],
  ] as const)(
    'keep-both never takes a version key holding an object that is %s as verified',
    async ([_label, recorded], { s }) => {
      const { local, id } = await oneFinishedLine(track);
      const handler = createHandler(local.env);
      await handler({ archiveOnly: true });
      local.tokens.restateFile(id, 'data');
      const stated = local.tokens.lines.get(id)?.files.get('data');
      const versionKey = `tokens/${id}/data.sha256-${stated?.sha256}`;
      await local.s3Client.send(
        new PutObjectCommand({
          Bucket: local.bucket,
          Key: versionKey,
          Body: Buffer.alloc(stated?.size ?? 0, 9),
          ...(recorded ? { Metadata: { sha256: stated?.sha256 ?? '', size: String(stated?.size) } } : {}),
        }),
      );
      s.fault(`the service restates data; its version key holds an object ${_label}`);
      const before = snapshot(local.tokens);

      const run = await settle(handler({ ids: [id], onConflict: 'keep-both' }));

      if (recorded) {
        expect(run.summary).toMatchObject({ dismantled: 1, filesUploaded: 1, failed: [] });
        expect(await objectDigest(local.s3Client, local.bucket, versionKey)).toEqual({
          sha256: stated?.sha256,
          size: stated?.size,
        });
        await checkInvariant(s, local, { before, runs: [run] });
      } else {
        expect(run.summary).toMatchObject({ dismantled: 0, conflicts: 1 });
        expect(local.tokens.deleteCount(id)).toBe(0);
        await checkInvariant(s, local, { before, runs: [run], expectedBadObjects: [versionKey] });
      }
    },
  );
});

describe('a line that changes while it is archived', () => {
  it('archives the files a line gains while its data streams, before any DELETE', async ({ s }) => {
    const { local, id } = await oneFinishedLine(track, { fileSize: 3000 });
    let gained = false;
    local.tokens.onRequest((method, path) => {
      if (!gained && method === 'GET' && path === `/api/tokens/${id}/data`) {
        gained = true;
        for (const name of ['score', 'analysis', 'delta']) local.tokens.addFile(id, name, 1000);
      }
    });
    s.fault('the line gains score, analysis and delta while data is downloaded');

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ dismantled: 1, filesUploaded: 4, failed: [] });
    const manifest = await storedManifest(local, id);
    expect(manifest.files.map((file) => file.name).sort()).toEqual(['analysis', 'data', 'delta', 'score']);
    // The DELETE came after the last of them was archived.
    const order = local.tokens.requests.map((r) => `${r.method} ${r.path}`);
    expect(order.indexOf(`DELETE /api/tokens/${id}`)).toBeGreaterThan(
      order.indexOf(`GET /api/tokens/${id}/score`),
    );
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('keeps a line whose file is restated between the archive and the DELETE, as a conflict', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track, { fileSize: 3000 });
    let reads = 0;
    local.tokens.onRequest((method, path) => {
      if (method === 'GET' && path === `/api/tokens/${id}`) {
        reads += 1;
        // The read right before the DELETE sees another hash for data.
        if (reads === 2) local.tokens.restateFile(id, 'data');
      }
    });
    s.fault('file data restated between its archive and the read before DELETE');

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ archived: 0, dismantled: 0, conflicts: 1 });
    expect(run.summary?.failed[0]?.reason).toMatch(/file data: conflict/);
    expect(local.tokens.deleteCount(id)).toBe(0);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('reports loudly a line whose DELETE reply states other files than the archive, and keeps the reply', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track, { fileSize: 3000 });
    local.tokens.onRequest((method, path) => {
      if (method === 'DELETE' && path === `/api/tokens/${id}`) local.tokens.restateFile(id, 'data');
    });
    s.fault('file data restated in the last moment before the DELETE (the reply states it)');

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ archived: 1, dismantled: 1, conflicts: 1 });
    expect(run.summary?.failed).toEqual([
      expect.objectContaining({
        id,
        conflict: true,
        dismantled: true,
        reason: expect.stringMatching(/DELETE reply/),
      }),
    ]);
    const receipt = (await objectJson(local.s3Client, local.bucket, `tokens/${id}/deleted.json`)) as {
      reply: { status: number; body: string };
      discrepancy: string;
    };
    expect(receipt.discrepancy).toContain('data is archived as');
    expect(receipt.reply.body).toContain(local.tokens.lines.get(id)?.files.get('data')?.sha256);
    await checkInvariant(s, local, { before, runs: [run], changedAtDelete: [id] });
  });

  it('gives up on a line that changes on every read, without a DELETE', async ({ s }) => {
    const { local, id } = await oneFinishedLine(track);
    let reads = 0;
    local.tokens.onRequest((method, path) => {
      if (method === 'GET' && path === `/api/tokens/${id}`) {
        reads += 1;
        if (reads > 1) local.tokens.addFile(id, `extra${reads}`, 100);
      }
    });
    s.fault('the line gains a new file before every read');

    const { before, run } = await observedPass(local);

    expect(run.summary?.failed[0]?.reason).toMatch(/changed 3 times/);
    expect(local.tokens.deleteCount(id)).toBe(0);
    await checkInvariant(s, local, { before, runs: [run] });
  });
});
