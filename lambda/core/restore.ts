import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Archive } from '../archive/archive.ts';
import { ArchiveError } from '../shared/errors.ts';
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
 * against the manifest. A file is renamed into place only once verified; a mismatch leaves no
 * file behind and throws an IntegrityError.
 */
export async function restoreLine(options: RestoreOptions): Promise<readonly RestoredFile[]> {
  const { archive, id, outDir } = options;
  const manifest = await archive.readManifest(id);
  if (manifest === undefined) {
    throw new ArchiveError(archive.manifestKey(id), 'no readable manifest: nothing verified to restore');
  }
  await mkdir(outDir, { recursive: true });
  const restored: RestoredFile[] = [];
  const versions = [
    ...manifest.files.map((file) => ({ file, name: file.name })),
    // Earlier versions kept beside (keep-both) are restored too, named as in the archive.
    ...(manifest.superseded ?? []).map((file) => ({ file, name: `${file.name}.sha256-${file.sha256}` })),
  ];
  for (const { file, name } of versions) {
    const key = archive.entryKey(id, file);
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
