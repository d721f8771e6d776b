import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import { Archive } from '../../lambda/archive/archive.ts';
import { auditArchive } from '../../lambda/core/audit.ts';
import { restoreLine } from '../../lambda/core/restore.ts';
import { embeddedDocumentBytes } from '../../lambda/shared/records.ts';
import { readKeptReply } from '../../lambda/tokens/document.ts';
import type { LocalStack } from '../local/stack.ts';
import { objectText } from '../support/archive-inspect.ts';
import {
  closeAfterEach,
  localStack,
  oneFinishedLine,
  proxiedS3,
  storedManifest,
  twoFinishedLines,
} from './harness.ts';
import { checkInvariant, observedPass, settle, snapshot } from './invariant.ts';
import { it } from './ledger.ts';

const track = closeAfterEach();

async function put(local: LocalStack, key: string, body: string | Buffer, extra: object = {}): Promise<void> {
  await local.s3Client.send(new PutObjectCommand({ Bucket: local.bucket, Key: key, Body: body, ...extra }));
}

/**
 * What an archive-only run of the previous release left for line `id`, keyed by `keyId` (that
 * release kept the id as given): its `data` with no size metadata, and a v1 manifest that embeds
 * the line. Returns the file's SHA-256.
 */
async function archivedByPreviousRelease(local: LocalStack, id: string, keyId = id): Promise<string> {
  const bytes = local.tokens.fileBytes(id, 'data');
  const hash = createHash('sha256').update(bytes).digest('hex');
  await put(local, `tokens/${keyId}/data`, bytes, {
    ChecksumSHA256: Buffer.from(hash, 'hex').toString('base64'),
    Metadata: { sha256: hash, 'line-id': keyId },
  });
  const v1 = {
    schemaVersion: 1,
    lineId: keyId,
    runId: 'e0e0e0e0-0000-4000-8000-000000000000',
    archivedAt: new Date(0).toISOString(),
    bucket: local.bucket,
    files: [{ name: 'data', key: `tokens/${keyId}/data`, size: bytes.length, sha256: hash }],
    line: { data: { id: keyId, type: 'tokens' } },
  };
  await put(local, `tokens/${keyId}/manifest.json`, `${JSON.stringify(v1)}\n`);
  return hash;
}

describe('a manifest this release cannot read, or cannot replace', () => {
  // Guards what once failed: archive.ts readManifest returns undefined for a manifest it cannot read (another
  // schemaVersion, bad JSON, another lineId) and line-work.ts then writes its own over it.
  it('keeps a line whose manifest it cannot read (a newer schema), and leaves that manifest alone', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track);
    const handler = createHandler(local.env);
    await handler({ archiveOnly: true });
    const key = `tokens/${id}/manifest.json`;
    const written = await storedManifest(local, id);
    const newer = `${JSON.stringify({ ...written, schemaVersion: 4, retention: 'legal-hold' }, null, 2)}\n`;
    await put(local, key, newer);
    s.fault(
      'the manifest was written by a newer release (schemaVersion 3), then the release was rolled back',
    );
    const before = snapshot(local.tokens);

    const run = await settle(handler({}));

    expect(local.tokens.deleteCount(id)).toBe(0);
    expect(run.summary?.failed.map((line) => line.id)).toEqual([id]);
    expect(await objectText(local.s3Client, local.bucket, key)).toBe(newer);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  // Guards what once failed: line.json was overwritten before the manifest naming it. The document
  // now lives in the manifest itself, which is replaced whole or not at all.
  it('keeps the manifest and the document it holds when a new manifest cannot be written', async ({ s }) => {
    const { local, id } = await oneFinishedLine(track, { env: { RETRY_ATTEMPTS: '2' } });
    await createHandler(local.env)({ archiveOnly: true });
    const first = await storedManifest(local, id);
    local.tokens.addFile(id, 'score', 500);
    const a = await proxiedS3(track, local, { enforceConditionalWrites: true });
    a.proxy.decide = ({ operation, key }) =>
      operation === 'PutObject' && key.endsWith('manifest.json') ? { fail: 403 } : 'forward';
    s.fault('the line gains a file; every manifest PUT is refused');

    const { before, run } = await observedPass(local, a.env);

    expect(run.summary?.failed.map((line) => line.id)).toEqual([id]);
    expect(await storedManifest(local, id)).toEqual(first);
    const held = embeddedDocumentBytes({ ...first.lineDocument });
    expect(held).toHaveProperty('bytes');
    expect(JSON.parse(String('bytes' in held ? held.bytes : ''))).toMatchObject({ data: { id } });
    await checkInvariant(s, local, { before, runs: [run] });
  });
});

describe('an archive the previous release wrote', () => {
  it('reuses and dismantles a line archived by the previous release (v1 manifest, no size metadata)', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track);
    await archivedByPreviousRelease(local, id);
    s.fault('an archive-only run of the previous release: v1 manifest with the line embedded');

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ dismantled: 1, filesUploaded: 0, filesReused: 1, failed: [] });
    const manifest = await storedManifest(local, id);
    expect(manifest).toMatchObject({ schemaVersion: 1, line: { data: { id } } });
    await checkInvariant(s, local, { before, runs: [run] });
  });

  // Archives the previous release keyed by an upper-case id are out of reach of restore and the
  // audit, which key by the lower-case id. A known limit, documented in docs/reliability.md: an
  // operator reaches them with the AWS CLI (that release refused such ids unless the service echoed them).
  it.skip('restores and audits a line the previous release archived under an upper-case id', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track);
    const upper = id.toUpperCase();
    const hash = await archivedByPreviousRelease(local, id, upper);
    s.fault('an archive the previous release wrote under an upper-case id (--ids in upper case)');
    const archive = new Archive({
      s3: local.s3Client,
      bucket: local.bucket,
      prefix: 'tokens/',
      multipartThresholdBytes: 8 * 2 ** 20,
      partSizeBytes: 8 * 2 ** 20,
      readback: 'full',
    });

    const report = await auditArchive({ archive, readKeptReply, now: Date.now });
    const outDir = await mkdtemp(join(tmpdir(), 'upper-case-archive-'));
    track({ close: () => rm(outDir, { recursive: true, force: true }) });
    const restored = await restoreLine({ archive, id: upper, outDir }).catch((error: unknown) => error);

    expect(report).toMatchObject({ intactFiles: 1, missing: [], damaged: [], withoutManifest: [] });
    expect(restored).toEqual([expect.objectContaining({ name: 'data', sha256: hash })]);
  });
});

describe('a manifest that names another line’s key for a file', () => {
  it('keeps a line whose manifest names another line’s key for a file, as a conflict', async ({ s }) => {
    const local = await localStack(track, {
      lines: [
        { status: 'finished', fileSize: 1000 },
        { status: 'started', fileSize: 1000 },
      ],
    });
    const [id, other] = [...local.tokens.lines.keys()] as [string, string];
    const handler = createHandler(local.env);
    await handler({ archiveOnly: true });
    const restore = await pointManifestAt(local, id, other);
    s.fault('the manifest names the key of another line for data');
    const before = snapshot(local.tokens);

    const run = await settle(handler({}));

    expect(run.summary).toMatchObject({ dismantled: 0, conflicts: 1 });
    expect(run.summary?.failed[0]?.reason).toMatch(/unexpected key/);
    expect(local.tokens.deleteCount(id)).toBe(0);
    // The foreign manifest is left for an operator: restore it before the invariant judges the bucket.
    await restore();
    await checkInvariant(s, local, { before, runs: [run] });
  });

  // Guards what once failed: audit.ts calls archive.entryKey (which throws for a key that is not the file's own or
  // its version key) outside any catch, inside Promise.all: one odd manifest fails the whole audit.
  it('audits every line, and reports the one whose manifest names a foreign key, instead of failing whole', async ({
    s,
  }) => {
    const { local, ids } = await twoFinishedLines(track);
    const [id, other] = ids;
    const handler = createHandler(local.env);
    await handler({ archiveOnly: true });
    await pointManifestAt(local, id, other);
    s.fault('one manifest names the key of another line for its file');

    const audited = await handler({ audit: true }).then(
      (report) => ({ report }),
      (error: unknown) => ({ error }),
    );

    expect(audited).not.toHaveProperty('error');
    expect(JSON.stringify(audited)).toContain(id);
    expect(audited).toMatchObject({ report: { lines: 2, intactFiles: 1 } });
  });
});

/**
 * Rewrites line `id`'s manifest so that each file names the key of line `other` instead; returns
 * what puts the original back.
 */
async function pointManifestAt(local: LocalStack, id: string, other: string): Promise<() => Promise<void>> {
  const key = `tokens/${id}/manifest.json`;
  const manifest = await storedManifest(local, id);
  const foreign = {
    ...manifest,
    files: manifest.files.map((file) => ({ ...file, key: `tokens/${other}/${file.name}` })),
  };
  await put(local, key, JSON.stringify(foreign));
  return () => put(local, key, JSON.stringify(manifest));
}
