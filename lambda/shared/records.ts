/**
 * The records the archive keeps besides the files (manifests, receipts, pending markers), as the
 * core writes them and reads them back: their shapes, and the checks a record read back passes
 * before it is trusted. Shared by the core and the archive adapter (see shared/ports/archive.ts).
 */
import { createHash } from 'node:crypto';
import { FILE_NAME } from './ids.ts';
import { jsonUnredacted } from './redact.ts';

/** The indent of every JSON record the archive writes (ObjectStore#jsonObject). */
export const RECORD_INDENT = 2;

/**
 * Whether the archive would write `value` as JSON.stringify writes it: the session key, cut out of
 * the whole text of every record, is nowhere in it, not even across a name and a value (a key with
 * quotes can span the record's own text and what the service sent, and its cut would leave no JSON).
 */
export function keptAsWritten(value: unknown): boolean {
  return jsonUnredacted(value, RECORD_INDENT);
}

/** One archived file, as the manifest records it. */
export interface ManifestFile {
  readonly name: string;
  readonly key: string;
  readonly size: number;
  readonly sha256: string;
}

/** An earlier version of a file, kept beside the current one when an operator chose `keep-both`. */
export interface SupersededFile extends ManifestFile {
  /** The run that archived the newer version beside it. */
  readonly supersededBy: string;
  readonly supersededAt: string;
}

/**
 * The line's document as the service sent it, kept in the manifest (version 3): its size and
 * SHA-256, and its bytes as `body` (UTF-8 text, as JSON always is) or `bodyBase64` (any other
 * bytes), so that the bytes decoded hash to `sha256`.
 */
export interface EmbeddedLineDocument {
  readonly size: number;
  readonly sha256: string;
  readonly body?: string;
  readonly bodyBase64?: string;
}

/** Version 2's pointer to the line's document, stored apart: `line.sha256-{hash}.json`. */
export interface LineDocumentObject {
  readonly key: string;
  readonly size: number;
  readonly sha256: string;
}

/**
 * `{prefix}{id}/manifest.json`: proof of what was archived for a line, written after all files.
 * Version 1 (earlier releases) embedded the line's document re-serialized; version 2 points to
 * `line.sha256-{hash}.json`, the document as the service sent it, byte for byte, stored apart;
 * version 3 holds those bytes itself ({@link EmbeddedLineDocument}): one object where two were.
 */
export interface Manifest {
  readonly schemaVersion: 1 | 2 | 3;
  readonly lineId: string;
  readonly runId: string;
  readonly archivedAt: string;
  readonly bucket: string;
  /** The files the line states, each where its verified bytes are. */
  readonly files: readonly ManifestFile[];
  /** Versions the service stated before and that were replaced in its statement (never in S3). */
  readonly superseded?: readonly SupersededFile[];
  /** The line's document as received: in the manifest (version 3) or apart (version 2). */
  readonly lineDocument?: EmbeddedLineDocument | LineDocumentObject;
  /** Version 1 only: the document, re-serialized. */
  readonly line?: unknown;
}

/** The line's document as a manifest of version 3 keeps it: text when it is UTF-8, base64 otherwise. */
export function embedLineDocument(bytes: Buffer): EmbeddedLineDocument {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes)
    ? { size: bytes.length, sha256, body: text }
    : { size: bytes.length, sha256, bodyBase64: bytes.toString('base64') };
}

/**
 * The bytes a manifest's embedded line document holds, checked against its own size and SHA-256:
 * the bytes, or why they are not the document it records.
 */
export function embeddedDocumentBytes(
  document: Record<string, unknown>,
): { readonly bytes: Buffer } | { readonly problem: string } {
  const { body, bodyBase64, size, sha256 } = document;
  let bytes: Buffer;
  if (typeof body === 'string' && bodyBase64 === undefined) bytes = Buffer.from(body, 'utf8');
  else if (typeof bodyBase64 === 'string' && body === undefined) bytes = Buffer.from(bodyBase64, 'base64');
  else return { problem: 'holds neither one text body nor one base64 body' };
  if (bytes.length !== size) return { problem: `holds ${bytes.length} bytes, records ${String(size)}` };
  const hash = createHash('sha256').update(bytes).digest('hex');
  if (hash !== sha256) return { problem: `its bytes hash to ${hash}, recorded ${String(sha256)}` };
  return { bytes };
}

/** A receipt of dismantling, `{prefix}{id}/deleted.json`. */
export interface Receipt {
  readonly schemaVersion: 2;
  readonly lineId: string;
  readonly runId: string;
  readonly at: string;
  /** The service's reply to the DELETE as received, when it took the DELETE (2xx). */
  readonly reply?: {
    readonly status: number;
    readonly contentType: string;
    /** The body as received, when it is UTF-8 text (JSON always is). */
    readonly body?: string;
    /** The body as received, base64, when it is not UTF-8. */
    readonly bodyBase64?: string;
    /**
     * Set when the service echoed the session key in its reply: the body (and content type) are
     * kept with the key replaced by `[session key removed]`, and are otherwise as received.
     */
    readonly sessionKeyRedacted?: true;
  };
  /** How the line was seen to be gone: "the reply", "GET answered 404", ... */
  readonly confirmation: string;
  /** Set when the reply differs from the manifest (the line changed in its last moments). */
  readonly discrepancy?: string;
}

/** How a receipt write ended. */
export type ReceiptWrite = 'written' | 'kept-existing' | 'replaced-weaker';

/** `{prefix}_pending/{id}.json`: a DELETE that was taken (202) but not yet seen done. */
export interface PendingMarker {
  readonly lineId: string;
  readonly runId: string;
  readonly at: string;
  /** The 202 reply; absent when the DELETE was sent but no reply came (a timeout, the deadline). */
  readonly reply?: NonNullable<Receipt['reply']>;
  readonly note?: string;
  /**
   * The files the line stated when a later run read it still there and could not archive them
   * (a conflict, a failure): the DELETE, if the service carries it out late, loses them.
   */
  readonly statedSince?: readonly { readonly name: string; readonly size: number; readonly sha256: string }[];
  /**
   * A discrepancy found when the DELETE was seen done by a run that could not write the receipt
   * (what confirmed it stated files other than the archive): the receipt written later keeps it.
   */
  readonly discrepancy?: string;
}

/**
 * The value as a manifest of this line this version reads, or undefined. A version 3 manifest is
 * read only when it holds the line's document whole (its bytes hash to what it records).
 */
export function asManifest(value: unknown, lineId: string): Manifest | undefined {
  const manifest = value as Partial<Manifest> | undefined;
  if (
    (manifest?.schemaVersion !== 1 && manifest?.schemaVersion !== 2 && manifest?.schemaVersion !== 3) ||
    typeof manifest.lineId !== 'string' ||
    manifest.lineId.toLowerCase() !== lineId.toLowerCase() ||
    !Array.isArray(manifest.files)
  ) {
    return undefined;
  }
  if (manifest.schemaVersion === 3) {
    const document: unknown = manifest.lineDocument;
    if (typeof document !== 'object' || document === null) return undefined;
    if (!('bytes' in embeddedDocumentBytes(document as Record<string, unknown>))) return undefined;
  }
  return manifest as Manifest;
}

/** A lower-case hex SHA-256, as manifests record it. */
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** A manifest entry checked before any key or path is built from it. */
export interface CheckedEntry {
  /** Where the manifest lists it: `files[0]`, `superseded[1]`. */
  readonly place: string;
  readonly file: ManifestFile;
  /** An earlier version kept beside the current one (keep-both). */
  readonly superseded: boolean;
  /** Where its bytes are: the file's own key or its versioned key, in the line's folder. */
  readonly key: string;
}

/** A manifest entry refused: where it is listed, its name and key when they are text, and why. */
export interface RefusedEntry {
  readonly place: string;
  readonly name: string | undefined;
  readonly key: string | undefined;
  readonly problem: string;
}

/**
 * Checks every entry of a manifest (`files`, then `superseded`) before a key or a path is built
 * from it: the name a safe file name, the SHA-256 64 lower-case hex digits, the size a byte count,
 * the key the one `entryKey` gives for it (the file's own or versioned key in the line's folder;
 * it throws otherwise). A manifest is our record, but a bucket can be written by others: a
 * tampered entry must be refused by name, never followed.
 */
export function checkManifestEntries(
  manifest: Manifest,
  entryKey: (file: ManifestFile) => string,
): { readonly checked: readonly CheckedEntry[]; readonly refused: readonly RefusedEntry[] } {
  const checked: CheckedEntry[] = [];
  const refused: RefusedEntry[] = [];
  const lists: [string, unknown][] = [
    ['files', manifest.files],
    ['superseded', manifest.superseded ?? []],
  ];
  for (const [list, entries] of lists) {
    if (!Array.isArray(entries)) {
      refused.push({
        place: list,
        name: undefined,
        key: undefined,
        problem: `${quote(entries)} is not a list of entries`,
      });
      continue;
    }
    entries.forEach((raw: unknown, index) => {
      const place = `${list}[${index}]`;
      const entry = isRecord(raw) ? raw : undefined;
      const text = (value: unknown) => (typeof value === 'string' ? value : undefined);
      const name = text(entry?.name);
      const key = text(entry?.key);
      const problem = entryProblem(raw, entryKey);
      if (problem === undefined) {
        checked.push({ place, file: raw as ManifestFile, superseded: list === 'superseded', key: key ?? '' });
      } else {
        refused.push({ place, name, key, problem });
      }
    });
  }
  return { checked, refused };
}

/** What is wrong with one manifest entry, in words; undefined when it is sound. */
function entryProblem(raw: unknown, entryKey: (file: ManifestFile) => string): string | undefined {
  if (!isRecord(raw)) return `${quote(raw)} is not a manifest entry`;
  const { name, key, size, sha256 } = raw;
  const problems: string[] = [];
  if (typeof name !== 'string' || !FILE_NAME.test(name)) {
    problems.push(`name ${quote(name)} is not a safe file name`);
  }
  if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256)) {
    problems.push(`sha256 ${quote(sha256)} is not 64 lower-case hex digits`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    problems.push(`size ${quote(size)} is not a byte count`);
  }
  if (typeof key !== 'string') problems.push(`key ${quote(key)} is not text`);
  if (problems.length > 0) return problems.join('; ');
  try {
    // Only now: the name and hash are safe to build this line's keys from.
    if (entryKey(raw as unknown as ManifestFile) !== key) throw new Error('another key');
  } catch {
    return `key ${quote(key)} is not this file's key in the line's folder`;
  }
  return undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A value from a stored record, quoted for a message, and cut short: it may be anything. */
function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * The receipt the release before schema 2 wrote: the DELETE reply's document itself (`reply`),
 * or how the line was found gone (`alreadyGone`).
 */
export interface LegacyReceipt {
  readonly lineId: string;
  readonly runId: string;
  readonly at: string;
  readonly reply?: unknown;
  readonly alreadyGone?: string;
}

/** A receipt read back: this version's, or the previous release's. */
export type StoredReceipt =
  | { readonly schemaVersion: 2; readonly receipt: Receipt }
  | { readonly schemaVersion: 1; readonly receipt: LegacyReceipt };

/** The value as a receipt this version reads (its own or the previous release's), or undefined. */
export function asReceipt(value: unknown): StoredReceipt | undefined {
  if (!isRecord(value)) return undefined;
  const { lineId, runId, at } = value;
  if (typeof lineId !== 'string' || typeof runId !== 'string' || typeof at !== 'string') return undefined;
  if (!('schemaVersion' in value)) {
    const legacy = 'reply' in value || typeof value.alreadyGone === 'string';
    return legacy ? { schemaVersion: 1, receipt: value as unknown as LegacyReceipt } : undefined;
  }
  const { schemaVersion, confirmation, discrepancy, reply } = value;
  if (schemaVersion !== 2 || typeof confirmation !== 'string') return undefined;
  if (discrepancy !== undefined && typeof discrepancy !== 'string') return undefined;
  if (reply !== undefined) {
    if (!isRecord(reply) || typeof reply.status !== 'number' || typeof reply.contentType !== 'string') {
      return undefined;
    }
    if (reply.body !== undefined && typeof reply.body !== 'string') return undefined;
    if (reply.bodyBase64 !== undefined && typeof reply.bodyBase64 !== 'string') return undefined;
  }
  return { schemaVersion: 2, receipt: value as unknown as Receipt };
}
