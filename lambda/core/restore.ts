import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ArchiveError, UnsafeReferenceError } from '../shared/errors.ts';
import { safeId } from '../shared/ids.ts';
import type { Archive } from '../shared/ports/archive.ts';
import { checkManifestEntries, type Manifest, type ManifestFile } from '../shared/records.ts';
import { Verifier } from '../shared/verify.ts';

export interface RestoredFile {
  readonly name: string;
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

export interface RestoreOptions {
  readonly archive: Archive;
  readonly id: string;
  readonly outDir: string;
  /** Called as bytes arrive, for progress displays. */
  readonly onBytes?: (bytes: number) => void;
}

/**
 * Downloads a line's files and manifest from the archive into `outDir`, verifying every file
 * against the manifest. Every entry of the manifest is checked before a path is built from any
 * of them: a tampered one (a name or hash that would leave `outDir`, a key outside the line) is an
 * {@link UnsafeReferenceError} naming the line and the entry, and nothing is written. A file is
 * renamed into place only once verified; a mismatch leaves no file behind and throws an
 * IntegrityError.
 */
export async function restoreLine(options: RestoreOptions): Promise<readonly RestoredFile[]> {
  const { archive, outDir } = options;
  const id = safeId(options.id);
  const manifest = await archive.readManifest(id);
  if (manifest === undefined) {
    throw new ArchiveError(archive.manifestKey(id), 'no readable manifest: nothing verified to restore');
  }
  const versions = restorePlan(archive, id, manifest);
  await mkdir(outDir, { recursive: true });
  const restored: RestoredFile[] = [];
  for (const { file, key, name } of versions) {
    const path = join(outDir, name);
    const partial = `${path}.partial`;
    const body = await archive.openObject(key);
    if (body === undefined) throw new ArchiveError(key, 'no such object: the manifest names it');
    const verifier = new Verifier({ lineId: id, file: file.name, size: file.size, sha256: file.sha256 });
    if (options.onBytes !== undefined) {
      const onBytes = options.onBytes;
      verifier.on('data', (chunk: Buffer) => onBytes(chunk.length));
    }
    try {
      await pipeline(body, verifier, createWriteStream(partial));
    } catch (error) {
      await rm(partial, { force: true });
      throw error;
    }
    await rename(partial, path);
    restored.push({ name, path, size: file.size, sha256: file.sha256 });
  }
  await writeFile(join(outDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return restored;
}

/**
 * Every version to restore, each with the key of its bytes and its name in `outDir`: current
 * files by their name, earlier versions kept beside them (keep-both) as in the archive,
 * `{name}.sha256-{hash}`. Built only from entries whose name and hash were checked, so no name
 * can hold a separator or `..`; a name that would receive two different files is refused too.
 */
function restorePlan(
  archive: Archive,
  id: string,
  manifest: Manifest,
): readonly { readonly file: ManifestFile; readonly key: string; readonly name: string }[] {
  const { checked, refused } = checkManifestEntries(manifest, (file) => archive.entryKey(id, file));
  const [first] = refused;
  if (first !== undefined) throw unsafeEntry(archive, id, first.place, first.problem, refused.length);
  const plan = new Map<
    string,
    { readonly file: ManifestFile; readonly key: string; readonly name: string }
  >();
  for (const { place, file, key, superseded } of checked) {
    const name = superseded ? `${file.name}.sha256-${file.sha256}` : file.name;
    const planned = plan.get(name);
    if (planned === undefined) {
      plan.set(name, { file, key, name });
      continue;
    }
    // The same earlier version listed twice is restored once; two files under one name, never.
    const sameVersion = planned.file.size === file.size && planned.file.sha256 === file.sha256;
    if (!superseded || !sameVersion) throw unsafeEntry(archive, id, place, `names ${name} a second time`, 1);
  }
  return [...plan.values()];
}

function unsafeEntry(
  archive: Archive,
  id: string,
  place: string,
  problem: string,
  count: number,
): UnsafeReferenceError {
  const more = count > 1 ? ` (and ${count - 1} more)` : '';
  return new UnsafeReferenceError(
    `line ${id}: manifest entry ${place}: ${problem}${more}; ${archive.manifestKey(id)} is refused, nothing was restored`,
  );
}
