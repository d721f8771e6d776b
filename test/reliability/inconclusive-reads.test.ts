import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import { listKeys, objectDigest } from '../support/archive-inspect.ts';
import { closeAfterEach, oneFinishedLine, proxiedS3 } from './harness.ts';
import { checkInvariant, observedPass, runHandler, settle, snapshot } from './invariant.ts';
import { it, type Scenario } from './ledger.ts';
import { type Rewrite, startRewritingS3Front } from './s3-rewriting-front.ts';

const track = closeAfterEach();

/** A finished line of one 3000-byte file, its archive behind an S3 proxy that enforces conditional writes. */
async function lineBehindEnforcingProxy() {
  const { local, id } = await oneFinishedLine(track, { fileSize: 3000 });
  const { proxy } = await proxiedS3(track, local, { enforceConditionalWrites: true });
  return { local, id, proxy };
}

describe('a read of the archive that fails', () => {
  it.for([
    ['once (a retry reads it whole, and sees the other version)', 'once'],
    ['every time (nothing is known of the object)', 'always'],
  ] as const)(
    'is no proof of damage: a verified object of another version is kept, and the line is not dismantled, when its GET breaks off %s',
    async ([_label, how], { s }) => {
      const { local, id, proxy } = await lineBehindEnforcingProxy();
      const env = { ...local.env, AWS_ENDPOINT_URL_S3: proxy.url, VERIFY_READBACK: 'full' };
      const dataKey = `tokens/${id}/data`;

      // Run 1: `data` is archived and verified, but the manifest cannot be written: the run ends there.
      proxy.decide = ({ operation, key }) =>
        operation === 'PutObject' && key.endsWith('/manifest.json') ? { fail: 403 } : 'forward';
      s.fault('the manifest PUT is refused');
      const first = await runHandler(env);
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
      const second = await runHandler(env);

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
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track, { fileSize: 2000 });
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

    const { before, run } = await observedPass(local, { ...local.env, VERIFY_READBACK: 'full' });

    expect(run.summary).toMatchObject({ dismantled: 0, conflicts: 1 });
    expect(run.summary?.failed[0]?.reason).toContain(`records 1500 bytes, sha256 ${other}`);
    expect(local.tokens.deleteCount(id)).toBe(0);
    expect(await objectDigest(local.s3Client, local.bucket, dataKey)).toMatchObject({ size: 1500 });
    await checkInvariant(s, local, { before, runs: [run], expectedBadObjects: [dataKey] });
  });
});

/**
 * A line whose `data` was archived and verified in a first run that could not write the manifest,
 * behind the enforcing S3 proxy and a front that rewrites the store's replies (`rewrite`, set
 * after the first run). Returns what the second run needs.
 */
async function archivedWithoutManifest(s: Scenario) {
  const { local, id, proxy } = await lineBehindEnforcingProxy();
  let rewrite: Rewrite = () => undefined;
  const front = track(await startRewritingS3Front(proxy.url, (request, reply) => rewrite(request, reply)));
  const env = { ...local.env, AWS_ENDPOINT_URL_S3: front.url, VERIFY_READBACK: 'full' };
  proxy.decide = ({ operation, key }) =>
    operation === 'PutObject' && key.endsWith('/manifest.json') ? { fail: 403 } : 'forward';
  s.fault('the manifest PUT is refused');
  const first = await runHandler(env);
  expect(first.summary?.failed.map((line) => line.id)).toEqual([id]);
  proxy.decide = () => 'forward';
  const dataKey = `tokens/${id}/data`;
  const original = await objectDigest(local.s3Client, local.bucket, dataKey);
  return {
    local,
    id,
    env,
    proxy,
    dataKey,
    original,
    setRewrite(next: Rewrite) {
      rewrite = next;
    },
  };
}

/** Asserts `data` holds what the first run verified, alone, and the line is still on the service. */
async function expectUntouched(at: Awaited<ReturnType<typeof archivedWithoutManifest>>): Promise<void> {
  const { local, id, dataKey, original } = at;
  expect(local.tokens.deleteCount(id)).toBe(0);
  expect(local.tokens.lines.get(id)?.status).toBe('finished');
  expect(await objectDigest(local.s3Client, local.bucket, dataKey)).toEqual(original);
  const keys = await listKeys(local.s3Client, local.bucket, `tokens/${id}/`);
  expect(keys.filter((key) => key.startsWith(dataKey))).toEqual([dataKey]);
}

describe('a read of the archive that ends early, cleanly', () => {
  it.for([
    ["with the store's checksum header", true],
    ['with no checksum header', false],
  ] as const)(
    'is never a reason to replace another version: a GET of the object that ends early and cleanly (%s) is incomplete, and leaves it',
    async ([_label, keepChecksum], { s }) => {
      const at = await archivedWithoutManifest(s);
      at.local.tokens.restateFile(at.id, 'data', 3500);
      s.fault('the service restates file data after it was archived');
      at.setRewrite((request, reply) => {
        if (request.method !== 'GET' || request.key !== at.dataKey || reply.status !== 200) return undefined;
        s.fault('a GET of the archived object ends cleanly after half its bytes');
        const headers = Object.fromEntries(
          Object.entries(reply.headers).filter(
            ([name]) => keepChecksum || !name.startsWith('x-amz-checksum'),
          ),
        );
        return { ...reply, headers, body: reply.body.subarray(0, reply.body.length / 2) };
      });
      const before = snapshot(at.local.tokens);

      const run = await runHandler(at.env);

      // Shorter than the object: not a read of it, so inconclusive (the next run reads it again).
      expect(run.summary).toMatchObject({ dismantled: 0 });
      expect(run.summary?.failed).toEqual([
        expect.objectContaining({ id: at.id, reason: expect.stringContaining('incomplete') }),
      ]);
      await expectUntouched(at);
      await checkInvariant(s, at.local, { before, runs: [run] });
    },
  );

  it.for([
    ['without its recorded sha256', 'x-amz-meta-sha256', undefined],
    ['with its recorded size cut short', 'x-amz-meta-size', '30'],
  ] as const)(
    'never leads to an overwrite: a HEAD of the verified object answered %s keeps it, and the line',
    async ([_label, header, value], { s }) => {
      const at = await archivedWithoutManifest(s);
      at.setRewrite((request, reply) => {
        if (request.method !== 'HEAD' || request.key !== at.dataKey || reply.status !== 200) return undefined;
        s.fault(`a HEAD of the archived object comes back with ${header} ${value ?? 'missing'}`);
        const headers = { ...reply.headers };
        if (value === undefined) delete headers[header];
        else headers[header] = value;
        return { ...reply, headers };
      });
      const before = snapshot(at.local.tokens);

      const run = await runHandler(at.env);

      expect(run.summary).toMatchObject({ dismantled: 0 });
      expect(run.summary?.failed).toEqual([expect.objectContaining({ id: at.id, conflict: true })]);
      await expectUntouched(at);
      await checkInvariant(s, at.local, { before, runs: [run] });
    },
  );
});

describe('a listing of the archive that fails or omits keys', () => {
  it.for([
    ['fails every time', 'fails'],
    ['omits every key of the line every time', 'omits'],
  ] as const)(
    'never lets a restated file replace the archived one, nor the line go, when it %s',
    async ([_label, how], { s }) => {
      const { local, id, proxy } = await lineBehindEnforcingProxy();
      let listing: 'true' | 'fails' | 'omits' = 'true';
      const front = track(
        await startRewritingS3Front(proxy.url, (request, reply) => {
          if (listing !== 'omits' || request.method !== 'GET' || request.key !== '') return undefined;
          if (request.query.get('prefix') !== `tokens/${id}/`) return undefined;
          const empty = `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${local.bucket}</Name><Prefix>tokens/${id}/</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>`;
          return { ...reply, body: Buffer.from(empty) };
        }),
      );
      proxy.decide = ({ operation }) =>
        listing === 'fails' && operation === 'ListObjects' ? { fail: 500 } : 'forward';
      const env = { ...local.env, AWS_ENDPOINT_URL_S3: front.url, RETRY_ATTEMPTS: '2' };
      const first = await settle(createHandler(env)({ archiveOnly: true }));
      expect(first.summary).toMatchObject({ archived: 1, failed: [] });
      const dataKey = `tokens/${id}/data`;
      const original = await objectDigest(local.s3Client, local.bucket, dataKey);
      const manifest = await objectDigest(local.s3Client, local.bucket, `tokens/${id}/manifest.json`);

      local.tokens.restateFile(id, 'data', 3500);
      s.fault('the service restates file data after it was archived');
      listing = how;
      s.fault(`ListObjectsV2 of the line ${how === 'fails' ? 'answers 500' : 'omits every key'}, every time`);

      const { before, run } = await observedPass(local, env);

      expect(run.summary).toMatchObject({ dismantled: 0 });
      expect(run.summary?.failed).toEqual([expect.objectContaining({ id })]);
      expect(local.tokens.deleteCount(id)).toBe(0);
      expect(await objectDigest(local.s3Client, local.bucket, dataKey)).toEqual(original);
      expect(await objectDigest(local.s3Client, local.bucket, `tokens/${id}/manifest.json`)).toEqual(
        manifest,
      );
      const keys = await listKeys(local.s3Client, local.bucket, `tokens/${id}/`);
      expect(keys.filter((key) => key.startsWith(dataKey))).toEqual([dataKey]);
      await checkInvariant(s, local, { before, runs: [run] });
    },
  );
});

describe('a GET of the archive that ends early and cleanly', () => {
  it('is no proof of damage: the verified object of the very version the line states is not uploaded over, and the line is kept', async ({
    s,
  }) => {
    const at = await archivedWithoutManifest(s);
    at.setRewrite((request, reply) => {
      if (request.method !== 'GET' || request.key !== at.dataKey || reply.status !== 200) return undefined;
      s.fault('a GET of the archived object ends cleanly after half its bytes');
      return { ...reply, body: reply.body.subarray(0, reply.body.length / 2) };
    });
    const from = at.proxy.requests.length;
    const before = snapshot(at.local.tokens);

    const run = await runHandler(at.env);

    // The GET read 1500 bytes of an object its HEAD says holds 3000: it did not read the object.
    const puts = at.proxy.requests
      .slice(from)
      .filter(({ operation, key }) => operation === 'PutObject' && key === at.dataKey);
    expect(puts).toEqual([]);
    expect(run.summary).toMatchObject({ dismantled: 0 });
    expect(run.summary?.failed).toEqual([expect.objectContaining({ id: at.id })]);
    await expectUntouched(at);
    await checkInvariant(s, at.local, { before, runs: [run] });
  });
});
