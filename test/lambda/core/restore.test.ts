import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Manifest, ManifestFile } from '../../../lambda/archive/archive.ts';
import { restoreLine } from '../../../lambda/core/restore.ts';
import { ArchiveError, IntegrityError, UnsafeReferenceError } from '../../../lambda/shared/errors.ts';
import { FakeArchive, sha256 } from '../../support/fakes.ts';
import { manifestEntry, RUN_ID, writeManifest as writeManifestOf } from './archived-line.ts';

const ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const OTHER = '9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d';
const DATA = 'the tokens of the line\n';
const SCORE = '42\n';

/** The manifest entry of line `ID`'s file `name`, holding `body`. */
const entry = (archive: FakeArchive, name: string, body: string, key?: string): ManifestFile =>
  manifestEntry(archive, ID, name, body, key);

/** Writes line `ID`'s manifest naming `files`. */
const writeManifest = (
  archive: FakeArchive,
  files: ManifestFile[],
  extra: Partial<Manifest> = {},
): Manifest => writeManifestOf(archive, ID, files, extra);

describe('restoreLine', () => {
  let outDir: string;
  beforeEach(async () => {
    outDir = join(await mkdtemp(join(tmpdir(), 'restore-test-')), 'out');
  });
  afterEach(async () => {
    await rm(join(outDir, '..'), { recursive: true, force: true });
  });

  it('writes each verified file and the manifest into the directory, counting the bytes', async () => {
    const archive = new FakeArchive();
    archive.put(archive.fileKey(ID, 'data'), DATA).put(archive.fileKey(ID, 'score'), SCORE);
    const manifest = writeManifest(archive, [entry(archive, 'data', DATA), entry(archive, 'score', SCORE)]);
    let bytes = 0;

    const restored = await restoreLine({
      archive: archive,
      id: ID,
      outDir,
      onBytes: (count) => {
        bytes += count;
      },
    });

    expect(restored).toEqual([
      { name: 'data', path: join(outDir, 'data'), size: DATA.length, sha256: sha256(DATA) },
      { name: 'score', path: join(outDir, 'score'), size: SCORE.length, sha256: sha256(SCORE) },
    ]);
    expect(await readFile(join(outDir, 'data'), 'utf8')).toBe(DATA);
    expect(await readFile(join(outDir, 'score'), 'utf8')).toBe(SCORE);
    expect(JSON.parse(await readFile(join(outDir, 'manifest.json'), 'utf8'))).toEqual(manifest);
    expect(bytes).toBe(DATA.length + SCORE.length);
  });

  it('refuses a file that does not hash to its manifest and leaves no file of it behind', async () => {
    const archive = new FakeArchive();
    archive.put(archive.fileKey(ID, 'data'), 'bit rot in the archive\n');
    writeManifest(archive, [entry(archive, 'data', DATA)]);

    const restoring = restoreLine({ archive: archive, id: ID, outDir });

    await expect(restoring).rejects.toBeInstanceOf(IntegrityError);
    await expect(restoring).rejects.toMatchObject({ lineId: ID, file: 'data' });
    expect(await readdir(outDir)).toEqual([]);
  });

  it('restores the superseded versions under {name}.sha256-{hash}, beside the current one', async () => {
    const archive = new FakeArchive();
    const older = 'the tokens as first archived\n';
    const versionKey = archive.versionKey(ID, 'data', sha256(DATA));
    archive.put(archive.fileKey(ID, 'data'), older).put(versionKey, DATA);
    writeManifest(archive, [entry(archive, 'data', DATA, versionKey)], {
      superseded: [
        { ...entry(archive, 'data', older), supersededBy: RUN_ID, supersededAt: '2026-05-01T10:00:00.000Z' },
      ],
    });

    const restored = await restoreLine({ archive: archive, id: ID, outDir });

    const olderName = `data.sha256-${sha256(older)}`;
    expect(restored.map((file) => file.name)).toEqual(['data', olderName]);
    expect(await readFile(join(outDir, 'data'), 'utf8')).toBe(DATA);
    expect(await readFile(join(outDir, olderName), 'utf8')).toBe(older);
  });

  it('refuses a line without a readable manifest, naming its key, and creates nothing', async () => {
    const archive = new FakeArchive();
    archive.put(archive.fileKey(ID, 'data'), DATA);

    const restoring = restoreLine({ archive: archive, id: ID, outDir });

    await expect(restoring).rejects.toBeInstanceOf(ArchiveError);
    await expect(restoring).rejects.toMatchObject({ key: archive.manifestKey(ID) });
    expect(await readdir(join(outDir, '..'))).toEqual([]);
  });
});

describe('restoreLine over a tampered manifest', () => {
  let base: string;
  let outDir: string;
  beforeEach(async () => {
    // --out is base/out; base also holds a file a path escaping --out could reach.
    base = await mkdtemp(join(tmpdir(), 'restore-tampered-'));
    outDir = join(base, 'out');
    await writeFile(join(base, 'victim.partial'), 'precious\n');
    await writeFile(join(base, 'victim'), 'precious\n');
  });
  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  /** A line with two files whose manifest is sound but for one entry, changed by `tamper`. */
  function tamperedArchive(tamper: (manifest: Manifest) => unknown): FakeArchive {
    const archive = new FakeArchive();
    archive.put(archive.fileKey(ID, 'data'), DATA).put(archive.fileKey(ID, 'score'), SCORE);
    archive.put(archive.fileKey(OTHER, 'score'), SCORE);
    const manifest = writeManifest(archive, [entry(archive, 'data', DATA), entry(archive, 'score', SCORE)]);
    archive.putJson(archive.manifestKey(ID), tamper(manifest));
    return archive;
  }

  const score = (manifest: Manifest) => manifest.files[1] as ManifestFile;
  const withScore = (manifest: Manifest, change: Partial<ManifestFile>) => ({
    ...manifest,
    files: [manifest.files[0], { ...score(manifest), ...change }],
  });

  it.for([
    [
      'a name that climbs out of --out',
      (m: Manifest) => withScore(m, { name: '../../victim', key: `tokens/${ID}/../../victim` }),
      'files[1]',
    ],
    [
      'a name with a slash',
      (m: Manifest) => withScore(m, { name: 'a/b', key: `tokens/${ID}/a/b` }),
      'files[1]',
    ],
    [
      'an absolute name',
      (m: Manifest) => withScore(m, { name: '/tmp/x', key: `tokens/${ID}//tmp/x` }),
      'files[1]',
    ],
    ['a hash with a slash', (m: Manifest) => withScore(m, { sha256: '/../../victim' }), 'files[1]'],
    ['a key outside the line', (m: Manifest) => withScore(m, { key: `tokens/${OTHER}/score` }), 'files[1]'],
    ['an entry that is not one', (m: Manifest) => ({ ...m, files: [...m.files, null] }), 'files[2]'],
    ['a name listed twice', (m: Manifest) => withScore(m, { name: 'data' }), 'files[1]'],
    [
      'a superseded version whose hash climbs out of --out',
      (m: Manifest) => ({
        ...m,
        superseded: [
          {
            ...score(m),
            sha256: '/../../victim',
            supersededBy: RUN_ID,
            supersededAt: '2026-05-01T10:00:00.000Z',
          },
        ],
      }),
      'superseded[0]',
    ],
    ['a superseded list that is not a list', (m: Manifest) => ({ ...m, superseded: 'x' }), 'superseded'],
  ] as const)(
    'refuses a manifest with %s, naming the line and the entry, and writes nothing',
    async ([, tamper, place]) => {
      const archive = tamperedArchive(tamper);

      const restoring = restoreLine({ archive: archive, id: ID, outDir });

      await expect(restoring).rejects.toBeInstanceOf(UnsafeReferenceError);
      await expect(restoring).rejects.toThrow(`line ${ID}: manifest entry ${place}`);
      // Nothing written, in --out or beside it: the entry was refused before any path was built.
      expect((await readdir(base)).sort()).toEqual(['victim', 'victim.partial']);
      expect(await readFile(join(base, 'victim.partial'), 'utf8')).toBe('precious\n');
      expect(await readFile(join(base, 'victim'), 'utf8')).toBe('precious\n');
    },
  );
});
