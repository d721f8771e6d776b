/**
 * The archive as the core uses it: a port. The core speaks of objects, versions and conditions
 * (`mustNotExist`, `mustMatch` a version), never of a store's own headers; `lambda/archive/` is
 * the S3 adapter that implements it (`class Archive implements ArchivePort`), and the unit tests'
 * fake implements it too. Types only: a leaf, so the core and the adapters both import it.
 */
import type { Readable } from 'node:stream';
import type { LineFile } from '../ids.ts';
import type { Manifest, ManifestFile, PendingMarker, Receipt, ReceiptWrite } from '../records.ts';

/**
 * A write that holds only if the object is as the writer saw it: `mustNotExist` (there is no
 * object), or `mustMatch` (the object there is still the `version` that was read). A write whose
 * condition fails is refused, and the caller is told so; the adapter maps it to its store's
 * conditional requests (S3: `If-None-Match: *`, `If-Match: <ETag>`).
 */
export type WriteCondition = { readonly mustNotExist: true } | { readonly mustMatch: string };

/**
 * What an object under a file's key holds, judged on its own, against the SHA-256 it was recorded
 * with (by the upload that verified it); `version` is the store's version of the object, for a
 * conditional write over it ({@link WriteCondition}):
 * - `verified`: its bytes are the recorded ones (read back and hashed, or checked by the store's
 *   own checksum), so it is an archive that is never to be overwritten;
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
      readonly version: string;
    }
  | {
      readonly kind: 'damaged';
      /** The version of the file the object records: only that version may replace it. */
      readonly recorded: { readonly size: number; readonly sha256: string };
      readonly problem: string;
      readonly version: string;
    }
  | { readonly kind: 'unrecorded'; readonly version: string };

/** Where and under which condition one file goes up. */
export interface UploadOptions {
  /** Default: the file's own key. */
  readonly key?: string;
  /** The run's deadline or the line's failure: stops the transfer. */
  readonly signal?: AbortSignal;
  /**
   * Write only where the plan saw no object, or only over the damaged one it saw: a verified
   * archive another pass wrote meanwhile is never overwritten.
   */
  readonly condition?: WriteCondition;
}

/** A stored JSON record with its version, for a conditional rewrite. */
export interface Versioned<T> {
  readonly version: string;
  readonly value: T;
}

/** The archive's key layout, as far as the core names objects (in plans, manifests, messages). */
export interface ArchiveLayout {
  /** `''` or ending in `/`. */
  readonly prefix: string;
  /** The folder of one line, ending in `/`; the other keys of the line are under it. */
  lineKey(lineId: string): string;
  fileKey(lineId: string, name: string): string;
  manifestKey(lineId: string): string;
  receiptKey(lineId: string): string;
  /** Where the line's document goes, under its own hash. */
  lineDocumentKey(lineId: string, sha256: string): string;
  /** Where a newer version of a file goes beside the original (keep-both). */
  versionKey(lineId: string, name: string, sha256: string): string;
  /** Where a manifest entry's bytes are; throws for a key that is not this file's (tampering). */
  entryKey(lineId: string, entry: ManifestFile): string;
  pendingMarkerKey(lineId: string): string;
  /** The folder of the restore drills' reports. */
  readonly drillsFolder: string;
}

/**
 * The archive the core writes to and reads back: verified uploads, records written
 * conditionally, reports and markers, listings. A failed request throws (an `ArchiveError`, or an
 * `ArchiveReadError` for a read that proves nothing); "not there" is `undefined`, never a throw.
 */
export interface Archive extends ArchiveLayout {
  /** Where the archive is (the manifest records it). */
  readonly bucket: string;

  // Files.
  /** What the object at `key` holds, judged against its own record. */
  inspect(key: string): Promise<StoredFile>;
  /**
   * Streams `body` verified into the archive and reads back what landed: the object is completed
   * only if its bytes are the file's stated size and SHA-256 (an `IntegrityError` otherwise).
   */
  uploadVerified(lineId: string, file: LineFile, body: Readable, options?: UploadOptions): Promise<void>;
  /** An object's bytes as a stream (the caller consumes or destroys it); undefined when there is none. */
  openObject(key: string, signal?: AbortSignal): Promise<Readable | undefined>;
  /** Streams an object back and hashes it; undefined when there is no such object. */
  storedDigest(
    key: string,
    signal?: AbortSignal,
  ): Promise<{ size: number; sha256: string; mismatch?: string } | undefined>;
  /** The names of the objects a line already has (`data`, `manifest.json`, ...). */
  lineObjects(lineId: string): Promise<ReadonlySet<string>>;

  // The line's records.
  /** The manifest of a line, or undefined when there is none or it cannot be read as one. */
  readManifest(lineId: string, signal?: AbortSignal): Promise<Manifest | undefined>;
  /**
   * The manifest there with its version: `undefined` when there is none; `manifest: undefined`
   * when there is one this release cannot read (never to be overwritten).
   */
  readManifestForUpdate(
    lineId: string,
  ): Promise<{ readonly manifest: Manifest | undefined; readonly version: string } | undefined>;
  /** Writes the manifest under `over`: false when the condition failed (another pass wrote it). */
  writeManifest(manifest: Manifest, over: WriteCondition): Promise<boolean>;
  /** Stores the proof of dismantling, never replacing a stronger one. */
  writeReceipt(receipt: Receipt, signal?: AbortSignal): Promise<ReceiptWrite>;
  hasReceipt(lineId: string): Promise<boolean>;
  /** The run that wrote the line's receipt; `undefined` when there is none, `null` when it names none. */
  receiptRunId(lineId: string, signal?: AbortSignal): Promise<string | null | undefined>;
  /** Notes a DELETE that was taken, or sent with no reply, but not yet seen done. */
  writePendingMarker(marker: PendingMarker, signal?: AbortSignal): Promise<void>;
  readPendingMarker(lineId: string): Promise<PendingMarker | undefined>;
  /** Rewrites the line's pending marker as `amend` makes it, only over the marker it read. */
  amendPendingMarker(
    lineId: string,
    amend: (marker: PendingMarker) => PendingMarker,
    signal?: AbortSignal,
  ): Promise<'amended' | 'absent' | 'contended'>;
  /** The lines with a pending DELETE and still no receipt. */
  pendingLineIds(): Promise<string[]>;

  // Runs, fan-out and drills.
  /** Writes a dry run's whole plan; returns its key. */
  writePlan(runId: string, started: Date, plan: unknown, signal?: AbortSignal): Promise<string>;
  /** Writes what one run did; returns its key. */
  writeRunReport(runId: string, started: Date, report: unknown): Promise<string>;
  /** A fan-out worker's record of a line, with its version; `value: undefined` when it is not JSON. */
  readLineRecordForUpdate(
    runId: string,
    planned: Date,
    lineId: string,
  ): Promise<Versioned<unknown> | undefined>;
  /** Writes a fan-out worker's record of a line under `over`: false when the condition failed. */
  writeLineRecordIf(
    runId: string,
    planned: Date,
    lineId: string,
    record: unknown,
    over: WriteCondition,
  ): Promise<boolean>;
  /** A line's queued marker, with its version; `value: undefined` when it is not JSON. */
  readQueuedMarkerForUpdate(lineId: string): Promise<Versioned<unknown> | undefined>;
  /** Marks a line as enqueued by `runId` at `at` (ISO 8601) under `over`: false when the condition failed. */
  writeQueuedMarkerIf(
    lineId: string,
    marker: { readonly runId: string; readonly at: string },
    over: WriteCondition,
  ): Promise<boolean>;
  /** When each line was last enqueued, by the time its queued marker was stored. */
  queuedMarkers(): Promise<Map<string, Date>>;
  /** The line ids that have objects in the archive, for the audit. */
  lineIds(): Promise<string[]>;
  /** Every archived line, with when it was last archived or dismantled (ms since the epoch). */
  archivedLines(signal?: AbortSignal): Promise<Map<string, number>>;
  /** The keys of the restore drills' reports, the most recently written first. */
  drillReportKeys(): Promise<string[]>;
  /** A document of the archive parsed as JSON; undefined when there is none or it is not JSON. */
  readJson(key: string): Promise<unknown>;
  /** Writes a restore drill's report; returns its key. */
  writeDrillReport(drillId: string, started: Date, report: unknown): Promise<string>;
}
