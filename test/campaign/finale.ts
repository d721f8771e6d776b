/**
 * The end of a schedule: the archive tampered with (maybe), then the real audit and a restore of
 * one line, each judged against what the store really holds: the audit is clean exactly when
 * every manifest is readable and every file it names holds its bytes (and no receipt records a
 * discrepancy); the restore succeeds exactly when the line's archive is intact, writes exactly
 * its files, and never writes outside its directory.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { archiveAccess } from '../../lambda/app/deps.ts';
import { createHandler } from '../../lambda/app/invoke.ts';
import { restoreLine } from '../../lambda/core/restore.ts';
import { capturingLogger } from './logs.ts';
import { replyFiles } from './records.ts';
import type { Schedule, Tamper } from './schedule.ts';
import { type BucketView, readJson, readObject } from './store-read.ts';
import { PREFIX, type Stage } from './world.ts';

interface Entry {
  readonly name?: unknown;
  readonly key?: unknown;
  readonly size?: unknown;
  readonly sha256?: unknown;
}

interface ManifestShape {
  readonly schemaVersion?: unknown;
  readonly lineId?: unknown;
  files?: Entry[];
  readonly superseded?: Entry[];
}

const manifestKey = (id: string) => `${PREFIX}${id}/manifest.json`;

/** Damages the archive of a line directly in the store; the keys it changed, or undefined when it did not apply. */
export async function tamper(stage: Stage, schedule: Schedule, t: Tamper): Promise<string[] | undefined> {
  const client = stage.world.s3Client;
  const id = schedule.lines[t.line]?.id ?? '';
  const manifest = (await readJson(client, stage.bucket, manifestKey(id))) as ManifestShape | undefined;
  const entry = manifest?.files?.[0];
  if (manifest === undefined || entry === undefined || typeof entry.key !== 'string') return undefined;
  const put = (key: string, body: Buffer | string) =>
    client.send(new PutObjectCommand({ Bucket: stage.bucket, Key: key, Body: body }));
  switch (t.kind) {
    case 'overwrite': {
      const stored = await readObject(client, stage.bucket, entry.key);
      const bytes = Buffer.from(stored?.bytes ?? Buffer.alloc(0));
      if (bytes.length > 0) bytes.writeUInt8(bytes.readUInt8(0) ^ 0xff, 0);
      await put(entry.key, bytes.length > 0 ? bytes : 'tampered');
      return [entry.key];
    }
    case 'delete-object':
      await client.send(new DeleteObjectCommand({ Bucket: stage.bucket, Key: entry.key }));
      return [entry.key];
    case 'manifest-hash':
      manifest.files = [
        { ...entry, sha256: createHash('sha256').update('tampered').digest('hex') },
        ...(manifest.files ?? []).slice(1),
      ];
      await put(manifestKey(id), JSON.stringify(manifest));
      return [manifestKey(id)];
    case 'manifest-name':
      manifest.files = [
        { ...entry, name: '../../escaped', key: `${PREFIX}${id}/../../escaped` },
        ...(manifest.files ?? []).slice(1),
      ];
      await put(manifestKey(id), JSON.stringify(manifest));
      return [manifestKey(id)];
    case 'delete-manifest':
      await client.send(new DeleteObjectCommand({ Bucket: stage.bucket, Key: manifestKey(id) }));
      return [manifestKey(id)];
  }
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const HASH = /^[0-9a-f]{64}$/;

/** What is wrong with one line's archive as the store holds it (empty: intact). */
async function lineDamage(view: BucketView, id: string): Promise<string[]> {
  const manifest = (await view.json(manifestKey(id))) as ManifestShape | undefined;
  if (
    manifest === undefined ||
    !Array.isArray(manifest.files) ||
    String(manifest.lineId).toLowerCase() !== id
  ) {
    return [`${id}: no readable manifest`];
  }
  const problems: string[] = [];
  for (const entry of [...manifest.files, ...(manifest.superseded ?? [])]) {
    const name = String(entry.name);
    const sha256 = String(entry.sha256);
    const own = [`${PREFIX}${id}/${name}`, `${PREFIX}${id}/${name}.sha256-${sha256}`];
    if (!NAME.test(name) || !HASH.test(sha256) || !own.includes(String(entry.key))) {
      problems.push(`${id}: manifest entry ${JSON.stringify(name)} names ${String(entry.key)}`);
      continue;
    }
    const stored = await view.object(String(entry.key));
    if (stored?.sha256 !== sha256 || stored.size !== entry.size)
      problems.push(`${id}/${name}: not its recorded bytes`);
  }
  const receipt = (await view.json(`${PREFIX}${id}/deleted.json`)) as
    | { discrepancy?: unknown; reply?: { body?: unknown } }
    | undefined;
  if (receipt?.discrepancy !== undefined) problems.push(`${id}: its receipt records a discrepancy`);
  // The DELETE reply a receipt keeps, when it is the line's deleted document, states no file the
  // manifest lacks (one dropped at the last moment loses nothing).
  const archived = new Map(manifest.files.map((f) => [String(f.name), String(f.sha256)]));
  const unarchived = [...(replyFiles(receipt?.reply?.body, id) ?? [])].filter(
    ([n, h]) => archived.get(n) !== h,
  );
  if (unarchived.length > 0)
    problems.push(`${id}: its receipt's DELETE reply states files the manifest lacks`);
  return problems;
}

/** Line folders of the archive (not the run reports, markers or queue notes). */
function lineFolders(view: BucketView): string[] {
  const ids = new Set<string>();
  for (const key of view.tags.keys()) {
    if (!key.startsWith(PREFIX)) continue;
    const [head = ''] = key.slice(PREFIX.length).split('/');
    if (!head.startsWith('_')) ids.add(head);
  }
  return [...ids].sort();
}

/** Whether an audit report found nothing: every list in it is empty (whatever lists a later version adds). */
function auditClean(report: unknown): boolean {
  return Object.values(report as Record<string, unknown>).every((v) => !Array.isArray(v) || v.length === 0);
}

async function hashFile(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

/** Audit and restore, judged; the problems found. */
export async function finale(stage: Stage, schedule: Schedule, view: BucketView): Promise<string[]> {
  const problems: string[] = [];
  const before = new Map(await view.refresh());
  const damage = new Map<string, string[]>();
  for (const id of lineFolders(view)) damage.set(id, await lineDamage(view, id));
  const expectedClean = [...damage.values()].every((d) => d.length === 0);

  const logs: string[] = [];
  try {
    const report = await createHandler(stage.env, { logger: capturingLogger(logs) })({ audit: true });
    if (auditClean(report) !== expectedClean) {
      const found = [...damage.values()].flat().slice(0, 3).join('; ');
      problems.push(
        `audit: says ${auditClean(report) ? 'intact' : 'damaged'}, the store holds ${expectedClean ? 'an intact archive' : `damage (${found})`}`,
      );
    }
    if (JSON.stringify(report).includes(stage.sessionKey))
      problems.push('audit: its report holds the session key');
  } catch (error) {
    problems.push(
      `audit: failed to run: ${String(error).replaceAll(stage.sessionKey, '<KEY>').slice(0, 300)}`,
    );
  }

  const id = schedule.lines[schedule.restore]?.id ?? '';
  const base = await mkdtemp(join(tmpdir(), 'campaign-restore-'));
  const outDir = join(base, 'out');
  try {
    let restored: readonly { name: string; path: string; sha256: string }[] | undefined;
    let failure: unknown;
    try {
      restored = await restoreLine({ archive: archiveAccess(stage.env), id, outDir });
    } catch (error) {
      failure = error;
    }
    // What the receipt says is the audit's to report; the files themselves may be intact.
    const filesIntact = damage.has(id) && (damage.get(id) ?? []).every((d) => d.includes('its receipt'));
    if (restored !== undefined && !filesIntact)
      problems.push(`restore: restored line ${id}, whose archive is damaged`);
    if (restored === undefined && filesIntact) {
      problems.push(`restore: refused line ${id}, whose archive is intact: ${String(failure).slice(0, 200)}`);
    }
    for (const file of restored ?? []) {
      if (!file.path.startsWith(`${outDir}/`) || (await hashFile(file.path)) !== file.sha256) {
        problems.push(`restore: ${file.name} is not its verified bytes inside the out directory`);
      }
    }
    const outside = (await readdir(base)).filter((name) => name !== 'out');
    if (outside.length > 0) problems.push(`restore: wrote outside --out: ${outside.join(', ')}`);
    if (String(failure ?? '').includes(stage.sessionKey))
      problems.push('restore: its error holds the session key');
  } finally {
    await rm(base, { recursive: true, force: true });
  }

  const after = await view.refresh();
  if (JSON.stringify([...before]) !== JSON.stringify([...after]))
    problems.push('audit or restore changed the archive');
  for (const line of logs) {
    if (line.includes(stage.sessionKey)) problems.push('audit: a log line holds the session key');
  }
  return problems;
}
