import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import { listKeys, objectDigest } from '../support/archive-inspect.ts';
import { closeAfterEach, localStack } from './harness.ts';
import { checkInvariant, settle, snapshot } from './invariant.ts';
import { scenario } from './ledger.ts';
import { startS3Proxy } from './s3-proxy.ts';

const track = closeAfterEach();

describe('a read of the archive that fails', () => {
  it.for([
    ['once (a retry reads it whole, and sees the other version)', 'once'],
    ['every time (nothing is known of the object)', 'always'],
  ] as const)(
    'is no proof of damage: a verified object of another version is kept, and the line is not dismantled, when its GET breaks off %s',
    async ([_label, how], { task }) => {
      const s = scenario(task);
      const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 3000 }] });
      const [id] = [...local.tokens.lines.keys()];
      if (id === undefined) throw new Error('no line');
      const proxy = track(await startS3Proxy(local.s3.address, { enforceConditionalWrites: true }));
      const env = { ...local.env, AWS_ENDPOINT_URL_S3: proxy.url, VERIFY_READBACK: 'full' };
      const dataKey = `tokens/${id}/data`;

      // Run 1: `data` is archived and verified, but the manifest cannot be written: the run ends there.
      proxy.decide = ({ operation, key }) =>
        operation === 'PutObject' && key.endsWith('/manifest.json') ? { fail: 403 } : 'forward';
      s.fault('the manifest PUT is refused');
      const first = await settle(createHandler(env)({}));
      expect(first.summary?.failed.map((line) => line.id)).toEqual([id]);
      const original = local.tokens.lines.get(id)?.files.get('data');
      expect(await objectDigest(local.s3Client, local.bucket, dataKey)).toEqual({
        sha256: original?.sha256,
        size: 3000,
      });

      // The service restates `data`; run 2's GET of the archived object breaks off mid-body.
      local.tokens.restateFile(id, 'data', 3500);
      s.fault('the service restates file data after it was archived');
      let broken = 0;
      proxy.decide = ({ operation, key }) => {
        if (operation !== 'GetObject' || key !== dataKey) return 'forward';
        if (how === 'once' && broken > 0) return 'forward';
        broken += 1;
        s.fault('a GET of the archived object breaks off mid-body');
        return 'break-body';
      };
      const before = snapshot(local.tokens);
      const second = await settle(createHandler(env)({}));

      expect(broken).toBeGreaterThan(0);
      expect(second.summary).toMatchObject({ dismantled: 0 });
      const [failure] = second.summary?.failed ?? [];
      expect(failure?.id).toBe(id);
      if (how === 'once') {
        expect(failure).toMatchObject({ conflict: true });
      } else {
        // Inconclusive, not a conflict: the next run reads the object again.
        expect(failure?.conflict).toBeUndefined();
        expect(failure?.reason).toContain(`${dataKey}: read back broke off`);
      }
      expect(local.tokens.deleteCount(id)).toBe(0);
      expect(local.tokens.lines.get(id)?.status).toBe('finished');
      // The verified object of the first version is untouched, and nothing was put beside it.
      expect(await objectDigest(local.s3Client, local.bucket, dataKey)).toEqual({
        sha256: original?.sha256,
        size: 3000,
      });
      const keys = await listKeys(local.s3Client, local.bucket, `tokens/${id}/`);
      expect(keys.filter((key) => key.startsWith(dataKey))).toEqual([dataKey]);
      await checkInvariant(s, local, { before, runs: [second] });
    },
  );

  it('never replaces a damaged object that records another version of the file: a conflict', async ({
    task,
  }) => {
    const s = scenario(task);
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 2000 }] });
    const [id] = [...local.tokens.lines.keys()];
    if (id === undefined) throw new Error('no line');
    const dataKey = `tokens/${id}/data`;
    const other = 'ab'.repeat(32);
    // An object recording another version (size 1500, another hash) whose bytes match neither.
    await local.s3Client.send(
      new PutObjectCommand({
        Bucket: local.bucket,
        Key: dataKey,
        Body: Buffer.alloc(1500, 7),
        Metadata: { sha256: other, size: '1500', 'line-id': id },
      }),
    );
    s.fault('an object recording another version of the file, whose bytes are damaged');
    const before = snapshot(local.tokens);

    const run = await settle(createHandler({ ...local.env, VERIFY_READBACK: 'full' })({}));

    expect(run.summary).toMatchObject({ dismantled: 0, conflicts: 1 });
    expect(run.summary?.failed[0]?.reason).toContain(`records 1500 bytes, sha256 ${other}`);
    expect(local.tokens.deleteCount(id)).toBe(0);
    expect(await objectDigest(local.s3Client, local.bucket, dataKey)).toMatchObject({ size: 1500 });
    await checkInvariant(s, local, { before, runs: [run], expectedBadObjects: [dataKey] });
  });
});
