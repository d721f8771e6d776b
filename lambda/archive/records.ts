/** The documents the archive keeps besides the files: manifests, receipts, pending markers. */

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
 * `{prefix}{id}/manifest.json`: proof of what was archived for a line, written after all files.
 * Version 1 (earlier releases) embedded the line's document re-serialized; version 2 points to
 * `line.sha256-{hash}.json`, the document as the service sent it, byte for byte.
 */
export interface Manifest {
  readonly schemaVersion: 1 | 2;
  readonly lineId: string;
  readonly runId: string;
  readonly archivedAt: string;
  readonly bucket: string;
  /** The files the line states, each where its verified bytes are. */
  readonly files: readonly ManifestFile[];
  /** Versions the service stated before and that were replaced in its statement (never in S3). */
  readonly superseded?: readonly SupersededFile[];
  /** `line.sha256-{hash}.json`: the line's document as received, with its size and SHA-256. */
  readonly lineDocument?: { readonly key: string; readonly size: number; readonly sha256: string };
  /** Version 1 only: the document, re-serialized. */
  readonly line?: unknown;
}

/**
 * What an object under a file's key holds, judged on its own, against the SHA-256 it was recorded
 * with (its `sha256` metadata, set by the upload that verified it):
 * - `verified`: its bytes are the recorded ones (read back and hashed with `full`; with `head`, its
 *   size and S3's own checksum), so it is an archive that is never to be overwritten;
 * - `damaged`: a read that completed shows bytes other than the recorded ones; only the version it
 *   records may be uploaded over it (a read that failed is no proof: `inspect` throws instead);
 * - `unrecorded`: an object with no record of ours: not ours to overwrite;
 * - `missing`.
 */
export type StoredFile =
  | { readonly kind: 'missing' }
  | {
      readonly kind: 'verified';
      readonly recorded: { readonly size: number; readonly sha256: string };
      readonly etag: string;
    }
  | {
      readonly kind: 'damaged';
      /** The version of the file the object records: only that version may replace it. */
      readonly recorded: { readonly size: number; readonly sha256: string };
      readonly problem: string;
      readonly etag: string;
    }
  | { readonly kind: 'unrecorded'; readonly etag: string };

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
}

/** A conditional write: only where there is no object, or only over the one with this ETag. */
export type WriteCondition = { readonly IfNoneMatch: '*' } | { readonly IfMatch: string };

/** The value as a manifest of this line this version reads, or undefined. */
export function asManifest(value: unknown, lineId: string): Manifest | undefined {
  const manifest = value as Partial<Manifest> | undefined;
  if (
    (manifest?.schemaVersion !== 1 && manifest?.schemaVersion !== 2) ||
    typeof manifest.lineId !== 'string' ||
    manifest.lineId.toLowerCase() !== lineId.toLowerCase() ||
    !Array.isArray(manifest.files)
  ) {
    return undefined;
  }
  return manifest as Manifest;
}
