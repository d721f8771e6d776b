import pLimit, { type LimitFunction } from 'p-limit';
import type { Archive } from '../shared/ports/archive.ts';
import type { ReadKeptReply } from '../shared/ports/tokens.ts';
import {
  checkManifestEntries,
  embeddedDocumentBytes,
  type Manifest,
  type ManifestFile,
} from '../shared/records.ts';
import { shownWhole } from '../shared/redact.ts';
import { type ReceiptFound, readReceipt, receiptProblems, recordedDiscrepancy } from './audit-receipts.ts';

/** An object or record of the archive that is not what its manifest says. */
export interface AuditFinding {
  readonly id: string;
  /** The file's name; `deleted.json` for a receipt. */
  readonly file: string;
  readonly key: string;
  readonly problem: string;
}

/** What an audit found; every list empty (see {@link auditFindings}) means the archive is as recorded. */
export interface AuditReport {
  readonly lines: number;
  readonly files: number;
  readonly bytes: number;
  readonly intactFiles: number;
  readonly missing: readonly AuditFinding[];
  readonly damaged: readonly AuditFinding[];
  /** Line folders with objects but no readable manifest (an interrupted archive, or damage). */
  readonly withoutManifest: readonly string[];
  /** Manifest entries refused before use: a name, hash, size or key that is not this line's. */
  readonly unsafeEntries: readonly AuditFinding[];
  /** Receipts read (dismantled lines). */
  readonly receipts: number;
  /** Lines dismantled with a discrepancy their receipt records (the line changed at the last moment). */
  readonly discrepancies: readonly AuditFinding[];
  /**
   * Receipts that do not agree with their line's manifest: of another line, a DELETE reply stating
   * other files (and no discrepancy recorded), no manifest beside it, or not readable as a receipt.
   */
  readonly receiptMismatches: readonly AuditFinding[];
  readonly durationMs: number;
}

export interface AuditOptions {
  readonly archive: Archive;
  /** The service's reader of a DELETE reply a receipt kept (the tokens adapter's `readKeptReply`). */
  readonly readKeptReply: ReadKeptReply;
  /** Only these lines; all lines with objects under the prefix otherwise. */
  readonly ids?: readonly string[];
  readonly concurrency?: number;
  readonly now: () => number;
  /** Called after each file, for progress displays. */
  readonly onFile?: (done: { readonly bytes: number }) => void;
  /** Ends every read when it aborts: the audit then rejects (inconclusive), as on a failed read. */
  readonly signal?: AbortSignal;
}

/** How many findings a report holds: 0 when every archived byte and record is as recorded. */
export function auditFindings(report: AuditReport): number {
  return (
    report.missing.length +
    report.damaged.length +
    report.withoutManifest.length +
    report.unsafeEntries.length +
    report.discrepancies.length +
    report.receiptMismatches.length
  );
}

/**
 * One report of several audits of distinct lines (a restore drill audits line by line): counts
 * summed, findings joined and sorted as {@link auditArchive} sorts them; `durationMs` is the time
 * they took together (they may have run at once).
 */
export function combineAuditReports(reports: readonly AuditReport[], durationMs: number): AuditReport {
  const all = (pick: (report: AuditReport) => readonly AuditFinding[]) => reports.flatMap(pick);
  const sum = (key: 'lines' | 'files' | 'bytes' | 'intactFiles' | 'receipts') =>
    reports.reduce((total, report) => total + report[key], 0);
  const byKey = (a: AuditFinding, b: AuditFinding) => a.key.localeCompare(b.key);
  const byLine = (a: AuditFinding, b: AuditFinding) => a.id.localeCompare(b.id);
  return {
    lines: sum('lines'),
    files: sum('files'),
    bytes: sum('bytes'),
    intactFiles: sum('intactFiles'),
    missing: all((report) => report.missing).sort(byKey),
    damaged: all((report) => report.damaged).sort(byKey),
    withoutManifest: reports.flatMap((report) => report.withoutManifest).sort(),
    // Stable: entries keep the manifest's order within a line, as in one audit.
    unsafeEntries: all((report) => report.unsafeEntries).sort(byLine),
    receipts: sum('receipts'),
    discrepancies: all((report) => report.discrepancies).sort(byKey),
    receiptMismatches: all((report) => report.receiptMismatches).sort(byLine),
    durationMs,
  };
}

/**
 * Re-reads archived objects (the files, their kept versions and the line's document) and
 * recomputes their SHA-256 against each manifest (the equivalent of `rclone check` for the
 * archive), and reads each dismantled line's receipt against its manifest. The line's document is
 * not counted in `files`, `intactFiles` or `bytes`; a problem with it is a finding like a file's. Every entry is checked before a key is built from it. Never writes or deletes anything.
 */
export async function auditArchive(options: AuditOptions): Promise<AuditReport> {
  const { archive } = options;
  const started = options.now();
  const ids = options.ids ?? (await archive.lineIds());
  const tally: AuditTally = {
    missing: [],
    damaged: [],
    withoutManifest: [],
    unsafeEntries: [],
    discrepancies: [],
    receiptMismatches: [],
    files: 0,
    bytes: 0,
    intactFiles: 0,
    receipts: 0,
  };
  const limit = pLimit(options.concurrency ?? 4);

  const records = await Promise.all(
    ids.map((id) =>
      limit(async () => ({
        id,
        manifest: await archive.readManifest(id, options.signal),
        receipt: await readReceipt(archive, id, options.signal),
      })),
    ),
  );
  const checks: Promise<void>[] = [];
  for (const { id, manifest, receipt } of records) {
    if (receipt.kind !== 'none')
      tallyReceipt(tally, archive.receiptKey(id), id, receipt, manifest, options.readKeptReply);
    if (manifest === undefined) {
      tally.withoutManifest.push(id);
      continue;
    }
    checks.push(...queueObjectChecks(options, limit, tally, id, manifest));
  }
  await Promise.all(checks);
  return sortedReport(tally, records.length, options.now() - started);
}

/** The findings and counts of one audit as it gathers them; each field the report's of the same name. */
interface AuditTally {
  readonly missing: AuditFinding[];
  readonly damaged: AuditFinding[];
  readonly withoutManifest: string[];
  readonly unsafeEntries: AuditFinding[];
  readonly discrepancies: AuditFinding[];
  readonly receiptMismatches: AuditFinding[];
  files: number;
  bytes: number;
  intactFiles: number;
  receipts: number;
}

/** Counts a line's receipt (at `key`): how it disagrees with its line and manifest, the discrepancy it records. */
function tallyReceipt(
  tally: AuditTally,
  key: string,
  id: string,
  receipt: Exclude<ReceiptFound, { kind: 'none' }>,
  manifest: Manifest | undefined,
  read: ReadKeptReply,
): void {
  tally.receipts += 1;
  const finding = (problem: string) => ({ id, file: 'deleted.json', key, problem });
  for (const problem of receiptProblems(id, receipt, manifest, read))
    tally.receiptMismatches.push(finding(problem));
  const discrepancy = receipt.kind === 'read' ? recordedDiscrepancy(receipt.stored) : undefined;
  if (discrepancy !== undefined) {
    tally.discrepancies.push(finding(`the line was dismantled with a discrepancy recorded: ${discrepancy}`));
  }
}

/**
 * Checks a line's manifest entries (the refused ones are findings) and queues, through `limit`, a
 * hash of each stored object they name; the promises settle when each object is counted.
 */
function queueObjectChecks(
  options: AuditOptions,
  limit: LimitFunction,
  tally: AuditTally,
  id: string,
  manifest: Manifest,
): Promise<void>[] {
  const { archive } = options;
  // Earlier versions kept beside the current ones (keep-both) are archive too.
  const { checked, refused } = checkManifestEntries(manifest, (file) => archive.entryKey(id, file));
  tally.files += checked.length + refused.length;
  for (const entry of refused) {
    tally.unsafeEntries.push({
      id,
      file: entry.name ?? entry.place,
      key: entry.key ?? '',
      problem: `${entry.place}: ${entry.problem}`,
    });
  }
  const checks: Promise<void>[] = [];
  const document = lineDocumentEntry(archive, id, manifest);
  if (document !== undefined && 'refused' in document) tally.unsafeEntries.push(document.refused);
  if (document !== undefined && 'expected' in document) {
    const { key, expected } = document;
    checks.push(
      limit(async () => {
        options.signal?.throwIfAborted();
        const problem = await checkObject(archive, key, expected, options.signal);
        if (problem === 'missing')
          tally.missing.push({ id, file: LINE_DOCUMENT, key, problem: 'no such object' });
        else if (problem !== undefined) tally.damaged.push({ id, file: LINE_DOCUMENT, key, problem });
      }),
    );
  }
  const files = checked.map(({ file, key }) =>
    limit(async () => {
      options.signal?.throwIfAborted();
      const problem = await checkObject(archive, key, file, options.signal);
      if (problem === undefined) {
        tally.intactFiles += 1;
        tally.bytes += file.size;
      } else if (problem === 'missing') {
        tally.missing.push({ id, file: file.name, key, problem: 'no such object' });
      } else {
        tally.damaged.push({ id, file: file.name, key, problem });
      }
      options.onFile?.({ bytes: file.size });
    }),
  );
  return [...checks, ...files];
}

/** The report of an audit's tally over `lines` lines, its findings sorted. */
function sortedReport(tally: AuditTally, lines: number, durationMs: number): AuditReport {
  const byKey = (a: AuditFinding, b: AuditFinding) => a.key.localeCompare(b.key);
  // Entries keep the manifest's order within a line: `files[2]` after `files[1]`.
  const byLine = (a: AuditFinding, b: AuditFinding) => a.id.localeCompare(b.id);
  return {
    lines,
    files: tally.files,
    bytes: tally.bytes,
    intactFiles: tally.intactFiles,
    missing: tally.missing.sort(byKey),
    damaged: tally.damaged.sort(byKey),
    withoutManifest: tally.withoutManifest.sort(),
    unsafeEntries: tally.unsafeEntries.sort(byLine),
    receipts: tally.receipts,
    discrepancies: tally.discrepancies.sort(byKey),
    receiptMismatches: tally.receiptMismatches.sort(byLine),
    durationMs,
  };
}

/** The `file` of a finding about the line's document (`line.sha256-{hash}.json`). */
const LINE_DOCUMENT = 'line document';

/**
 * The manifest's `lineDocument` (the line's document as received), checked before a key is read
 * from it: what its object must hash to (version 2, stored apart), or why the entry is refused (a
 * hash, size or key that is not this line's document's, or, in the manifest itself (version 3),
 * bytes that are not the ones it records). Undefined when there is nothing more to read: none
 * (version 1), or held whole in the manifest.
 */
function lineDocumentEntry(
  archive: Archive,
  id: string,
  manifest: Manifest,
):
  | { readonly key: string; readonly expected: ManifestFile }
  | { readonly refused: AuditFinding }
  | undefined {
  const raw: unknown = manifest.lineDocument;
  if (raw === undefined && manifest.schemaVersion === 3) {
    const problem = "lineDocument: none, where a version 3 manifest holds the line's document";
    return { refused: { id, file: LINE_DOCUMENT, key: archive.manifestKey(id), problem } };
  }
  if (raw === undefined) return undefined;
  const entry = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const { key, size, sha256 } = entry;
  const quote = (value: unknown) => JSON.stringify(shownWhole(String(value), 200));
  const refused = (problem: string, where = typeof key === 'string' ? key : '') => ({
    refused: { id, file: LINE_DOCUMENT, key: where, problem: `lineDocument: ${problem}` },
  });
  if (typeof sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(sha256)) {
    return refused(`sha256 ${quote(sha256)} is not 64 lower-case hex digits`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    return refused(`size ${quote(size)} is not a byte count`);
  }
  if (manifest.schemaVersion === 3) {
    const held = embeddedDocumentBytes(entry);
    return 'problem' in held ? refused(held.problem, archive.manifestKey(id)) : undefined;
  }
  if (typeof key !== 'string' || key !== archive.lineDocumentKey(id, sha256)) {
    return refused(`key ${quote(key)} is not this line's document key`);
  }
  return { key, expected: { name: LINE_DOCUMENT, key, size, sha256 } };
}

/** Hashes the stored object; 'missing', a description of the damage, or undefined when intact. */
async function checkObject(
  archive: Archive,
  key: string,
  expected: ManifestFile,
  signal: AbortSignal | undefined,
): Promise<string | undefined> {
  // A read that fails throws (ArchiveReadError, naming the key): inconclusive, never "intact".
  const stored = await archive.storedDigest(key, signal);
  if (stored === undefined) return 'missing';
  if (stored.mismatch !== undefined)
    return `its bytes, read whole, do not match the store's checksum: ${stored.mismatch}`;
  if (stored.size !== expected.size || stored.sha256 !== expected.sha256) {
    return `holds ${stored.size} bytes hashing to ${stored.sha256}; manifest says ${expected.size} bytes, ${expected.sha256}`;
  }
  return undefined;
}
