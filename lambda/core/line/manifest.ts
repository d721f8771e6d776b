import { ArchiveChangedError, SessionKeyEchoError } from '../../shared/errors.ts';
import type { ReadLine } from '../../shared/ports/tokens.ts';
import {
  embedLineDocument,
  keptAsWritten,
  type Manifest,
  type ManifestFile,
  type SupersededFile,
} from '../../shared/records.ts';
import { jsonHoldsSecret } from '../../shared/redact.ts';
import { sameEntries } from './compare.ts';
import type { LineContext } from './context.ts';
import type { FilePlan } from './plan.ts';

/**
 * Whether the line's document cannot be kept as received: it echoes the session key, or text in
 * it reads as one of the forms the archive cuts out of every record it writes (a key written
 * escaped, in a string that decodes to other text), so that the manifest stored would not hold
 * the bytes it records, and would not be read back as one. Checked on the lines the manifest writes
 * it in (its last member), so that a key spanning their names and the document is found too.
 */
export function documentHoldsKey(bytes: Buffer, embedded = embedLineDocument(bytes)): boolean {
  if (jsonHoldsSecret(bytes.toString('utf8'))) return true;
  return !keptAsWritten({ lineDocument: embedded });
}

/**
 * Writes the manifest, holding the line's document as received, unless the manifest there already
 * states the same files (one of an earlier version, with its document apart, is kept as it is).
 * A manifest is only ever replaced by one that states every file it stated (the plan saw to
 * that), or moves them to `superseded` (keep-both). A document that echoes the session key is
 * never stored: {@link SessionKeyEchoError}, and the line is kept.
 */
export async function ensureManifest(
  ctx: LineContext,
  read: ReadLine,
  plans: readonly FilePlan[],
  found: { readonly manifest: Manifest | undefined; readonly version: string } | undefined,
): Promise<Manifest> {
  const existing = found?.manifest;
  const { archive, runId, now } = ctx;
  const id = read.line.id;
  // Kept byte for byte, so it cannot be stored with the key cut out: refused, whether or not this
  // round would write it, so that a line whose service echoes the key is never dismantled unseen.
  // The document as received, as the manifest would hold it: checked, then kept, from one hashing.
  const lineDocument = embedLineDocument(read.bytes);
  if (documentHoldsKey(read.bytes, lineDocument)) throw new SessionKeyEchoError(id, "the line's document");
  const files: ManifestFile[] = plans.map(({ file, key }) => ({
    name: file.name,
    key,
    size: file.size,
    sha256: file.sha256,
  }));
  const at = new Date(now()).toISOString();
  const stated = new Set(files.map((file) => file.name));
  const newlySuperseded: ManifestFile[] = [
    ...plans.flatMap((plan) => plan.supersedes),
    ...(existing?.files ?? []).filter((entry) => !stated.has(entry.name)),
  ];
  const superseded: SupersededFile[] = [...(existing?.superseded ?? [])];
  for (const entry of newlySuperseded) {
    if (superseded.some((kept) => kept.key === entry.key && kept.sha256 === entry.sha256)) continue;
    const { name, key, size, sha256 } = entry;
    superseded.push({ name, key, size, sha256, supersededBy: runId, supersededAt: at });
  }
  if (
    existing !== undefined &&
    sameEntries(existing.files, files) &&
    superseded.length === (existing.superseded?.length ?? 0)
  ) {
    return existing;
  }
  const manifest: Manifest = {
    schemaVersion: 3,
    lineId: id,
    runId,
    archivedAt: at,
    bucket: archive.bucket,
    files,
    ...(superseded.length === 0 ? {} : { superseded }),
    // The document as received, in the manifest itself: one object where version 2 wrote two.
    lineDocument,
  };
  // The whole manifest as the archive writes it: no record is kept that its redaction would change.
  if (!keptAsWritten(manifest)) throw new SessionKeyEchoError(id, "the line's document");
  // Only over the manifest this round was planned against: another pass may have written one since.
  const written = await archive.writeManifest(
    manifest,
    found === undefined ? { mustNotExist: true } : { mustMatch: found.version },
  );
  if (!written) throw new ArchiveChangedError(archive.manifestKey(id), 'written by another pass meanwhile');
  return manifest;
}
