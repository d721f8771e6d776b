import { ARCHIVE_FOLDERS } from '../shared/contract.ts';
import { ArchiveError } from '../shared/errors.ts';
import { safeFileName, safeId } from '../shared/ids.ts';
import type { ManifestFile } from '../shared/records.ts';

/**
 * The archive's key layout: `{prefix}{id}/{file}`, `{file}.sha256-{hash}` (keep-both),
 * `line.sha256-{hash}.json`, `manifest.json`, `deleted.json`; `{prefix}_runs/`, `_queued/`,
 * `_pending/`, `_plans/`, `_drills/`. Ids and names are checked so nothing escapes `{prefix}{id}/`.
 */
export class ArchiveKeys {
  /** `''` or ending in `/`. */
  readonly prefix: string;

  constructor(prefix: string) {
    this.prefix = prefix;
  }

  /** The key prefix of one line; ids are checked so nothing escapes `{prefix}{id}/`. */
  lineKey(lineId: string): string {
    return `${this.prefix}${safeId(lineId)}/`;
  }

  fileKey(lineId: string, name: string): string {
    return `${this.lineKey(lineId)}${safeFileName(name)}`;
  }

  manifestKey(lineId: string): string {
    return `${this.lineKey(lineId)}manifest.json`;
  }

  receiptKey(lineId: string): string {
    return `${this.lineKey(lineId)}deleted.json`;
  }

  /**
   * `{prefix}{id}/line.sha256-{hash}.json`: the line's document as the service sent it, under its
   * own hash, so a manifest names exactly the document it was written from and no write of a newer
   * one can change what an older manifest points to.
   */
  lineDocumentKey(lineId: string, sha256: string): string {
    return `${this.lineKey(lineId)}line.sha256-${sha256}.json`;
  }

  /**
   * Where a newer version of a file goes when an operator keeps both: `{name}.sha256-{hash}` beside
   * the original (file names never hold a dot, so it cannot be another file's key).
   */
  versionKey(lineId: string, name: string, sha256: string): string {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new ArchiveError(name, `not a SHA-256: ${sha256}`);
    return `${this.fileKey(lineId, name)}.sha256-${sha256}`;
  }

  /**
   * Where a manifest entry's bytes are: its key, which must be the file's own key or its versioned
   * key (keep-both); anything else in a manifest is refused rather than read or trusted.
   */
  entryKey(lineId: string, entry: ManifestFile): string {
    const own = this.fileKey(lineId, entry.name);
    if (entry.key === own) return own;
    if (
      /^[0-9a-f]{64}$/.test(entry.sha256) &&
      entry.key === this.versionKey(lineId, entry.name, entry.sha256)
    ) {
      return entry.key;
    }
    throw new ArchiveError(
      this.manifestKey(lineId),
      `names ${JSON.stringify(entry.key)} for file ${entry.name}`,
    );
  }

  /** `{prefix}_pending/`: the pending DELETEs' markers. */
  get pendingFolder(): string {
    return `${this.prefix}${ARCHIVE_FOLDERS.pending}`;
  }

  /** `{prefix}_pending/{id}.json`. */
  pendingMarkerKey(lineId: string): string {
    return `${this.pendingFolder}${safeId(lineId)}.json`;
  }

  /** `{prefix}_runs/`: run reports, and the fan-out workers' line records. */
  get runsFolder(): string {
    return `${this.prefix}${ARCHIVE_FOLDERS.runs}`;
  }

  /** `{prefix}_queued/`: the fan-out planner's queued markers. */
  get queuedFolder(): string {
    return `${this.prefix}${ARCHIVE_FOLDERS.queued}`;
  }

  /** `{prefix}_queued/{lineId}.json`: the fan-out planner's note that a message for the line was sent. */
  queuedMarkerKey(lineId: string): string {
    return `${this.queuedFolder}${safeId(lineId)}.json`;
  }

  /**
   * `{prefix}_runs/{yyyy-mm-dd}/{runId}/lines/{lineId}.json`: what a fan-out worker did to one line
   * of a run (the date is the planner's, so the records sit beside the planner's report).
   */
  lineRecordKey(runId: string, planned: Date, lineId: string): string {
    const date = planned.toISOString().slice(0, 10);
    return `${this.runsFolder}${date}/${safeId(runId, 'run id')}/lines/${safeId(lineId)}.json`;
  }

  /** `{prefix}_plans/{yyyy-mm-dd}/{runId}.json`: a dry run's whole plan, when its reply holds only the first lines. */
  planKey(runId: string, started: Date): string {
    return `${this.prefix}${ARCHIVE_FOLDERS.plans}${started.toISOString().slice(0, 10)}/${safeId(runId, 'run id')}.json`;
  }

  /** `{prefix}_drills/`: the restore drills' reports. */
  get drillsFolder(): string {
    return `${this.prefix}${ARCHIVE_FOLDERS.drills}`;
  }

  /** `{prefix}_drills/{yyyy-mm-dd}/{drillId}.json`: what one restore drill found. */
  drillReportKey(drillId: string, started: Date): string {
    return `${this.drillsFolder}${started.toISOString().slice(0, 10)}/${safeId(drillId, 'drill id')}.json`;
  }

  /** `{prefix}_runs/{yyyy-mm-dd}/{runId}.json`: what one run did. */
  runReportKey(runId: string, started: Date): string {
    return `${this.runsFolder}${started.toISOString().slice(0, 10)}/${safeId(runId, 'run id')}.json`;
  }
}
