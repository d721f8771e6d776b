import pLimit from 'p-limit';
import type { Archive, Manifest } from '../archive/archive.ts';
import { ArchiveError, describeError } from '../shared/errors.ts';

/** A file of the archive that is not what its manifest says. */
export interface AuditFinding {
  readonly id: string;
  readonly file: string;
  readonly key: string;
  readonly problem: string;
}

/** What an audit found; `damaged` and `missing` empty means every archived byte is intact. */
export interface AuditReport {
  readonly lines: number;
  readonly files: number;
  readonly bytes: number;
  readonly intactFiles: number;
  readonly missing: readonly AuditFinding[];
  readonly damaged: readonly AuditFinding[];
  /** Line folders with objects but no readable manifest (an interrupted archive, or damage). */
  readonly withoutManifest: readonly string[];
  readonly durationMs: number;
}

export interface AuditOptions {
  readonly archive: Archive;
  /** Only these lines; all lines with objects under the prefix otherwise. */
  readonly ids?: readonly string[];
  readonly concurrency?: number;
  readonly now: () => number;
  /** Called after each file, for progress displays. */
  readonly onFile?: (done: { readonly bytes: number }) => void;
}

/**
 * Re-reads archived objects and recomputes their SHA-256 against each manifest: the
 * equivalent of `rclone check` for the archive. Never writes or deletes anything.
 */
export async function auditArchive(options: AuditOptions): Promise<AuditReport> {
  const started = options.now();
  const ids = options.ids ?? (await options.archive.lineIds());
  const missing: AuditFinding[] = [];
  const damaged: AuditFinding[] = [];
  const withoutManifest: string[] = [];
  let files = 0;
  let bytes = 0;
  let intactFiles = 0;
  const limit = pLimit(options.concurrency ?? 4);

  const manifests = await Promise.all(
    ids.map((id) => limit(async () => ({ id, manifest: await options.archive.readManifest(id) }))),
  );
  const checks: Promise<void>[] = [];
  for (const { id, manifest } of manifests) {
    if (manifest === undefined) {
      withoutManifest.push(id);
      continue;
    }
    // Earlier versions kept beside the current ones (keep-both) are archive too.
    for (const file of [...manifest.files, ...(manifest.superseded ?? [])]) {
      checks.push(
        limit(async () => {
          files += 1;
          let key: string;
          try {
            key = options.archive.entryKey(id, file);
          } catch (error) {
            // A manifest naming a key outside its line is damage to report, not a reason to stop.
            damaged.push({ id, file: file.name, key: String(file.key), problem: describeError(error) });
            return;
          }
          const problem = await checkObject(options.archive, key, file);
          if (problem === undefined) {
            intactFiles += 1;
            bytes += file.size;
          } else if (problem === 'missing') {
            missing.push({ id, file: file.name, key, problem: 'no such object' });
          } else {
            damaged.push({ id, file: file.name, key, problem });
          }
          options.onFile?.({ bytes: file.size });
        }),
      );
    }
  }
  await Promise.all(checks);
  const byKey = (a: AuditFinding, b: AuditFinding) => a.key.localeCompare(b.key);
  return {
    lines: manifests.length,
    files,
    bytes,
    intactFiles,
    missing: missing.sort(byKey),
    damaged: damaged.sort(byKey),
    withoutManifest: withoutManifest.sort(),
    durationMs: options.now() - started,
  };
}

/** Hashes the stored object; 'missing', a description of the damage, or undefined when intact. */
async function checkObject(
  archive: Archive,
  key: string,
  expected: Manifest['files'][number],
): Promise<string | undefined> {
  let stored: { size: number; sha256: string } | undefined;
  try {
    stored = await archive.storedDigest(key);
  } catch (error) {
    throw new ArchiveError(key, `GetObject failed: ${describeError(error)}`, { cause: error });
  }
  if (stored === undefined) return 'missing';
  if (stored.size !== expected.size || stored.sha256 !== expected.sha256) {
    return `holds ${stored.size} bytes hashing to ${stored.sha256}; manifest says ${expected.size} bytes, ${expected.sha256}`;
  }
  return undefined;
}
