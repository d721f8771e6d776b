import type { Manifest, ManifestFile } from '../../../lambda/archive/archive.ts';
import { type AuditReport, auditArchive } from '../../../lambda/core/audit.ts';
import { readKeptReply } from '../../../lambda/tokens/document.ts';
import { type FakeArchive, NOW, sha256 } from '../../support/fakes.ts';

/** What the archive tests of the core share: a line as a pass leaves it in the archive. */

/** The run that archived the lines these helpers write. */
export const RUN_ID = '0b7e4c1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b';

/** The manifest entry of file `name` of line `id`, holding `body`, under its own key unless `key` says. */
export function manifestEntry(
  archive: FakeArchive,
  id: string,
  name: string,
  body: string,
  key = archive.fileKey(id, name),
): ManifestFile {
  return { name, key, size: Buffer.byteLength(body), sha256: sha256(body) };
}

/** Writes line `id`'s manifest naming `files`, as run {@link RUN_ID} wrote it at NOW, and returns it. */
export function writeManifest(
  archive: FakeArchive,
  id: string,
  files: ManifestFile[],
  extra: Partial<Manifest> = {},
): Manifest {
  const manifest: Manifest = {
    schemaVersion: 2,
    lineId: id,
    runId: RUN_ID,
    archivedAt: new Date(NOW).toISOString(),
    bucket: archive.bucket,
    files,
    ...extra,
  };
  archive.putJson(archive.manifestKey(id), manifest);
  return manifest;
}

/** A line archived whole: its files, and a manifest naming them. */
export function archiveLine(
  archive: FakeArchive,
  id: string,
  files: Record<string, string>,
  extra: Partial<Manifest> = {},
): Manifest {
  for (const [name, body] of Object.entries(files)) archive.put(archive.fileKey(id, name), body);
  const entries = Object.entries(files).map(([name, body]) => manifestEntry(archive, id, name, body));
  return writeManifest(archive, id, entries, extra);
}

/** Audits the fake archive at NOW: every line in it, or only `ids`. */
export function audit(archive: FakeArchive, ids?: string[]): Promise<AuditReport> {
  return auditArchive({ archive, readKeptReply, now: () => NOW, ...(ids ? { ids } : {}) });
}
