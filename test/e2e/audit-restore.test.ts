import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import { type LocalStack, startLocalStack } from '../local/stack.ts';
import { objectJson, replaceObject } from '../support/archive-inspect.ts';
import { runCli } from '../support/run-cli.ts';

let stack: LocalStack | undefined;
let outDir: string | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
  if (outDir !== undefined) await rm(outDir, { recursive: true, force: true });
  outDir = undefined;
});

/** A local stack whose finished lines have been archived and dismantled by one pass. */
async function archivedStack(): Promise<{ local: LocalStack; ids: string[] }> {
  stack = await startLocalStack({
    lines: [
      { status: 'finished', analysis: 'metrics', fileSize: 50_000 },
      { status: 'finished', fileSize: 70_000 },
    ],
  });
  const ids = [...stack.tokens.lines.keys()];
  const summary = await createHandler(stack.env)({});
  expect(summary.dismantled).toBe(2);
  return { local: stack, ids };
}

interface AuditReport {
  lines: number;
  files: number;
  intactFiles: number;
  missing: { id: string; file: string }[];
  damaged: { id: string; file: string; problem: string }[];
  withoutManifest: string[];
}

describe('npm run audit', () => {
  it('reports every archived file intact after a pass', async () => {
    const { local } = await archivedStack();

    const result = await runCli([], local.env, 'lambda/entries/audit-cli.ts');

    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as AuditReport;
    expect(report).toMatchObject({
      lines: 2,
      files: 5,
      intactFiles: 5,
      missing: [],
      damaged: [],
      withoutManifest: [],
    });
  });

  it('finds a damaged and a missing object and exits 1', async () => {
    const { local, ids } = await archivedStack();
    const [metrics, plain] = ids as [string, string];
    await replaceObject(local.s3Client, local.bucket, `tokens/${metrics}/score`, Buffer.alloc(50_000, 1));
    await local.s3Client.send(new DeleteObjectCommand({ Bucket: local.bucket, Key: `tokens/${plain}/data` }));

    const result = await runCli([], local.env, 'lambda/entries/audit-cli.ts');

    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as AuditReport;
    expect(report.damaged).toEqual([expect.objectContaining({ id: metrics, file: 'score' })]);
    expect(report.missing).toEqual([expect.objectContaining({ id: plain, file: 'data' })]);
    expect(report.intactFiles).toBe(3);
  });

  it('runs the same audit as a Lambda event {"audit": true}', async () => {
    const { local, ids } = await archivedStack();
    const [metrics] = ids as [string];
    await replaceObject(local.s3Client, local.bucket, `tokens/${metrics}/delta`, Buffer.alloc(50_000, 2));

    const report = await createHandler(local.env)({ audit: true });

    expect(report).toMatchObject({ lines: 2, files: 5, intactFiles: 4, missing: [] });
    expect(report.damaged).toEqual([expect.objectContaining({ id: metrics, file: 'delta' })]);
  });

  it('refuses an audit event with fields of a pass', async () => {
    const { local } = await archivedStack();

    await expect(createHandler(local.env)({ audit: true, archiveOnly: true })).rejects.toThrow(/archiveOnly/);
  });

  it('audits only the given ids', async () => {
    const { local, ids } = await archivedStack();

    const result = await runCli(['--ids', ids[1] as string], local.env, 'lambda/entries/audit-cli.ts');

    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ lines: 1, files: 1, intactFiles: 1 });
  });
});

describe('npm run restore', () => {
  it('downloads a line and its manifest, each file verified against the stated hash', async () => {
    const { local, ids } = await archivedStack();
    const [metrics] = ids as [string];
    outDir = await mkdtemp(join(tmpdir(), 'restore-'));

    const result = await runCli(
      ['--id', metrics, '--out', outDir],
      local.env,
      'lambda/entries/restore-cli.ts',
    );

    expect(result.code).toBe(0);
    expect((await readdir(outDir)).sort()).toEqual(['analysis', 'data', 'delta', 'manifest.json', 'score']);
    for (const [name, stated] of local.tokens.lines.get(metrics)?.files ?? []) {
      const bytes = await readFile(join(outDir, name));
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(stated.sha256);
    }
  });

  it('refuses a damaged object, leaves no file for it, and exits 1', async () => {
    const { local, ids } = await archivedStack();
    const [, plain] = ids as [string, string];
    await replaceObject(local.s3Client, local.bucket, `tokens/${plain}/data`, Buffer.alloc(70_000, 7));
    outDir = await mkdtemp(join(tmpdir(), 'restore-'));

    const result = await runCli(['--id', plain, '--out', outDir], local.env, 'lambda/entries/restore-cli.ts');

    expect(result.code).toBe(1);
    expect(result.stderr).toContain('SHA-256');
    expect(await readdir(outDir)).toEqual([]);
  });
});

describe('a line resolved with keep-both', () => {
  it('is audited and restored in both versions: the current one by its name, the earlier one by its hash', async () => {
    stack = await startLocalStack({ lines: [{ status: 'finished', fileSize: 4000 }] });
    const local = stack;
    const [id] = [...local.tokens.lines.keys()] as [string];
    const handler = createHandler(local.env);
    await handler({ archiveOnly: true });
    const original = local.tokens.lines.get(id)?.files.get('data');
    local.tokens.restateFile(id, 'data', 4500);
    const restated = local.tokens.lines.get(id)?.files.get('data');
    expect((await handler({})).conflicts).toBe(1);
    expect(await handler({ ids: [id], onConflict: 'keep-both' })).toMatchObject({ dismantled: 1 });

    const audit = await runCli(['--ids', id], local.env, 'lambda/entries/audit-cli.ts');
    outDir = await mkdtemp(join(tmpdir(), 'restore-both-'));
    const restore = await runCli(['--id', id, '--out', outDir], local.env, 'lambda/entries/restore-cli.ts');

    expect(audit.code).toBe(0);
    expect(JSON.parse(audit.stdout)).toMatchObject({ files: 2, intactFiles: 2, damaged: [], missing: [] });
    expect(restore.code).toBe(0);
    const sha = async (name: string) =>
      createHash('sha256')
        .update(await readFile(join(outDir ?? '', name)))
        .digest('hex');
    expect(await sha('data')).toBe(restated?.sha256);
    expect(await sha(`data.sha256-${original?.sha256}`)).toBe(original?.sha256);
  });
});

describe('a tampered manifest', () => {
  it('is refused by restore by name, with nothing written outside --out, and reported by the audit', async () => {
    const { local, ids } = await archivedStack();
    const [id] = ids as [string];
    const manifestKey = `tokens/${id}/manifest.json`;
    const manifest = (await objectJson(local.s3Client, local.bucket, manifestKey)) as {
      files: { name: string; key: string; size: number; sha256: string }[];
    };
    const data = manifest.files.find((file) => file.name === 'data');
    // An earlier version whose hash is a path: restored as `data.sha256-{hash}`, it would climb out of --out.
    const tampered = {
      ...manifest,
      superseded: [
        { ...data, sha256: '/../../victim', supersededBy: id, supersededAt: '2026-05-01T10:00:00.000Z' },
      ],
    };
    await local.s3Client.send(
      new PutObjectCommand({ Bucket: local.bucket, Key: manifestKey, Body: JSON.stringify(tampered) }),
    );
    outDir = await mkdtemp(join(tmpdir(), 'restore-tampered-'));
    await writeFile(join(outDir, 'victim.partial'), 'precious\n');

    const restore = await runCli(
      ['--id', id, '--out', join(outDir, 'out')],
      local.env,
      'lambda/entries/restore-cli.ts',
    );
    const audit = await runCli(['--ids', id], local.env, 'lambda/entries/audit-cli.ts');

    expect(restore.code).toBe(1);
    expect(restore.stderr).toContain(`line ${id}: manifest entry superseded[0]: sha256 "/../../victim"`);
    expect(await readdir(outDir)).toEqual(['victim.partial']);
    expect(await readFile(join(outDir, 'victim.partial'), 'utf8')).toBe('precious\n');
    expect(audit.code).toBe(1);
    expect(JSON.parse(audit.stdout)).toMatchObject({
      damaged: [],
      missing: [],
      unsafeEntries: [
        {
          id,
          file: 'data',
          key: data?.key,
          problem: 'superseded[0]: sha256 "/../../victim" is not 64 lower-case hex digits',
        },
      ],
    });
  });
});
