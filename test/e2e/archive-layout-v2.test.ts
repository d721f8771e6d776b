import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import { V2_LINES } from '../fixtures/archive-v2-lines.ts';
import type { LocalStack } from '../local/stack.ts';
import { closeAfterEach, localStack } from '../reliability/harness.ts';
import { listKeys, objectDigest, objectJson, objectText } from '../support/archive-inspect.ts';
import { runCli } from '../support/run-cli.ts';

/** What `test/fixtures/generate-archive-v2.ts` wrote with the release before the one-record layout. */
interface V2Archive {
  readonly writtenBy: string;
  readonly prefix: string;
  readonly objects: readonly {
    readonly key: string;
    readonly contentType?: string;
    readonly metadata: Record<string, string>;
    readonly body: string;
  }[];
}

const track = closeAfterEach();
/**
 * The simulator serving the lines the fixture archived (same ids, same bytes), over a bucket holding
 * what the earlier release wrote for them, object for object.
 */
async function previousReleaseArchive(): Promise<{ local: LocalStack; fixture: V2Archive }> {
  const fixture = JSON.parse(
    await readFile(join(import.meta.dirname, '../fixtures/archive-v2.json'), 'utf8'),
  ) as V2Archive;
  const local = await localStack(track, { lines: [...V2_LINES.archived] });
  expect(local.env.ARCHIVE_PREFIX).toBe(fixture.prefix);
  for (const object of fixture.objects) {
    await local.s3Client.send(
      new PutObjectCommand({
        Bucket: local.bucket,
        Key: object.key,
        Body: Buffer.from(object.body, 'base64'),
        ContentType: object.contentType,
        Metadata: object.metadata,
      }),
    );
  }
  return { local, fixture };
}

const [plainLine, analysedLine] = V2_LINES.archived.map((line) => line.id) as [string, string];
const dismantledLine = V2_LINES.dismantled.id;

describe('an archive the previous layout wrote (manifest version 2, the line document apart)', () => {
  it('is resumed: its lines are dismantled from the archive as it is, nothing uploaded or rewritten', async () => {
    const { local, fixture } = await previousReleaseArchive();
    const manifestBefore = await objectText(
      local.s3Client,
      local.bucket,
      `tokens/${plainLine}/manifest.json`,
    );

    const summary = await createHandler(local.env)({});

    expect(summary).toMatchObject({ dismantled: 2, filesUploaded: 0, filesReused: 5, failed: [] });
    expect(await objectText(local.s3Client, local.bucket, `tokens/${plainLine}/manifest.json`)).toBe(
      manifestBefore,
    );
    expect(
      await objectJson(local.s3Client, local.bucket, `tokens/${analysedLine}/deleted.json`),
    ).toMatchObject({
      lineId: analysedLine,
      runId: summary.runId,
    });
    // Every object the earlier release wrote is still there, byte for byte.
    for (const object of fixture.objects) {
      const stored = await objectDigest(local.s3Client, local.bucket, object.key);
      const written = Buffer.from(object.body, 'base64');
      expect(stored, object.key).toEqual({
        sha256: createHash('sha256').update(written).digest('hex'),
        size: written.length,
      });
    }
  });

  it('takes a file the line gained since into a manifest of version 3 that keeps every earlier entry', async () => {
    const { local } = await previousReleaseArchive();
    local.tokens.addFile(analysedLine, 'extra', 700);

    const summary = await createHandler(local.env)({ ids: [analysedLine] });

    expect(summary).toMatchObject({ dismantled: 1, filesUploaded: 1, filesReused: 4, failed: [] });
    const manifest = (await objectJson(
      local.s3Client,
      local.bucket,
      `tokens/${analysedLine}/manifest.json`,
    )) as {
      schemaVersion: number;
      files: { name: string }[];
      lineDocument: { body?: string; key?: string };
    };
    expect(manifest.schemaVersion).toBe(3);
    expect(manifest.files.map((file) => file.name).sort()).toEqual([
      'analysis',
      'data',
      'delta',
      'extra',
      'score',
    ]);
    expect(manifest.lineDocument.key).toBeUndefined();
    expect(JSON.parse(manifest.lineDocument.body ?? '')).toMatchObject({ data: { id: analysedLine } });
  });

  it('is audited intact and restored file by file, the dismantled line and the archived ones alike', async () => {
    const { local } = await previousReleaseArchive();
    await createHandler(local.env)({});
    // Written by this release meanwhile: the folders hold both layouts side by side.
    expect((await listKeys(local.s3Client, local.bucket, `tokens/${plainLine}/`)).length).toBe(4);

    const audit = await runCli([], local.env, 'lambda/entries/audit-cli.ts');

    expect(audit.code).toBe(0);
    expect(JSON.parse(audit.stdout)).toMatchObject({
      lines: 3,
      files: 7,
      intactFiles: 7,
      missing: [],
      damaged: [],
      withoutManifest: [],
      unsafeEntries: [],
      receiptMismatches: [],
    });
    const outDir = await mkdtemp(join(tmpdir(), 'restore-v2-'));
    track({ close: () => rm(outDir, { recursive: true, force: true }) });
    const restore = await runCli(
      ['--id', dismantledLine, '--out', outDir],
      local.env,
      'lambda/entries/restore-cli.ts',
    );
    expect(restore.code).toBe(0);
    expect((await readdir(outDir)).sort()).toEqual(['data', 'extra', 'manifest.json']);
    const manifest = JSON.parse(await readFile(join(outDir, 'manifest.json'), 'utf8')) as {
      files: { name: string; sha256: string }[];
    };
    for (const file of manifest.files) {
      const bytes = await readFile(join(outDir, file.name));
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(file.sha256);
    }
  });
});
