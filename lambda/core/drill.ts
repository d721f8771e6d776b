import type { Logger } from '@aws-lambda-powertools/logger';
import pLimit from 'p-limit';
import { ArchiveError, describeError } from '../shared/errors.ts';
import type { Archive } from '../shared/ports/archive.ts';
import {
  type AuditOptions,
  type AuditReport,
  auditArchive,
  auditFindings,
  combineAuditReports,
} from './audit.ts';
import { nextDrillSince, selectDrillLines } from './drill-select.ts';
import type { DrillSettings, MetricsSink } from './types.ts';

/**
 * A restore drill: the lines archived since the last drill and a random sample of the others are
 * read back in full and re-hashed against their manifests, and their receipts read against their
 * manifests (the audit, line by line), within a deadline; what it found goes to
 * `{prefix}_drills/{date}/{drillId}.json` and to the `Drill...` metrics.
 */

/** `{prefix}_drills/{date}/{drillId}.json`. */
export interface DrillReport {
  readonly schemaVersion: 1;
  readonly drillId: string;
  readonly startedAt: string;
  readonly durationMs: number;
  readonly settings: DrillSettings;
  /** Hex. The same seed over the same archived lines draws the same sample (`--seed`). */
  readonly seed: string;
  /** The earlier drill report this drill's `since` comes from; null when there is none. */
  readonly previousDrill: string | null;
  /** Recent lines: archived (manifest or receipt written) at or after this. Null: none taken. */
  readonly since: string | null;
  /** Where the next drill's recent lines start (null: it takes none). */
  readonly nextSince: string | null;
  /** Recent lines audited (chosen), oldest first. */
  readonly recent: readonly string[];
  /** Lines drawn at random. */
  readonly sampled: readonly string[];
  /**
   * Recent lines beyond `maxLines` (the first {@link MAX_LISTED}; `counts.recentOverCap` counts them
   * all): not audited by this drill; `nextSince` leaves them to the next one.
   */
  readonly recentOverCap: readonly string[];
  /** Chosen lines not audited before the deadline (not started, or stopped by it). */
  readonly notReached: readonly string[];
  /** Why lines were not reached, when some were. */
  readonly deadline?: string;
  /** Chosen lines whose archive could not be read back (a read failed): a restore would fail too. */
  readonly unreadable: readonly { readonly id: string; readonly problem: string }[];
  readonly counts: {
    /** Lines in the archive with a manifest or a receipt. */
    readonly archivedLines: number;
    /** Recent lines found, over the cap included. */
    readonly recentFound: number;
    readonly recent: number;
    readonly sampled: number;
    readonly recentOverCap: number;
    /** Lines whose audit completed. */
    readonly audited: number;
    readonly notReached: number;
    readonly unreadable: number;
    /** The audit's findings plus the unreadable lines: the `DrillFindings` metric. */
    readonly findings: number;
  };
  /** The audit of the lines audited, as `npm run audit` reports it. */
  readonly audit: AuditReport;
}

export interface DrillOptions {
  readonly archive: Archive;
  /** The service's reader of the DELETE replies receipts kept (see {@link AuditOptions}). */
  readonly readKeptReply: AuditOptions['readKeptReply'];
  readonly drillId: string;
  readonly settings: DrillSettings;
  /** 32 random bytes (crypto), or an earlier drill's, to draw its sample again. */
  readonly seed: Uint8Array;
  readonly now: () => number;
  readonly logger: Logger;
  /** The drill's deadline: lines it stops, or that were not started, are reported `notReached`. */
  readonly signal?: AbortSignal;
  /** Write the report under `{prefix}_drills/` (the scheduled drill; `--write-report`). */
  readonly writeReport: boolean;
  readonly metrics?: MetricsSink;
  readonly onFile?: AuditOptions['onFile'];
}

/** The report, and where it was written (when it was). */
export interface DrillResult {
  readonly report: DrillReport;
  readonly key?: string;
}

/** How many ids of a list that may be long (recent lines over the cap) a report names. */
export const MAX_LISTED = 1000;
/** Lines audited at once; each reads up to {@link FILES_AT_ONCE} objects at once. */
const LINES_AT_ONCE = 4;
const FILES_AT_ONCE = 4;
/** Earlier reports read, newest first, to find where recent lines start. */
const PREVIOUS_REPORTS_READ = 5;

/**
 * Runs one restore drill. Reads the archive only, and writes only its report (when asked).
 * Findings, unreadable lines and lines not reached are reported, never thrown; a failed listing of
 * the archive or of the earlier reports, or a report that cannot be written, is thrown.
 */
export async function runRestoreDrill(options: DrillOptions): Promise<DrillResult> {
  const { archive, settings, logger, now } = options;
  const started = now();
  const previous = await lastDrill(archive, logger);
  const since = settings.recentLines ? previous?.nextSince : undefined;
  const listedAt = now();
  const archived = await archive.archivedLines(options.signal);
  const selection = selectDrillLines({ archived, since, settings, seed: options.seed });
  logger.info('drill started', {
    drillId: options.drillId,
    since: isoOrNull(since),
    archivedLines: archived.size,
    recent: selection.recent.length,
    recentOverCap: selection.recentOverCap.length,
    sampled: selection.sampled.length,
  });

  const chosen = [...selection.recent, ...selection.sampled];
  const auditStarted = now();
  const outcome = await auditLines(options, chosen);
  const audit = combineAuditReports(outcome.reports, now() - auditStarted);
  const isRecent = new Set(selection.recent);
  const nextSince = settings.recentLines
    ? nextDrillSince({
        archived,
        since,
        left: [...selection.recentOverCap, ...outcome.notReached.filter((id) => isRecent.has(id))],
        listedAt,
      })
    : previous?.nextSince;
  const findings = auditFindings(audit) + outcome.unreadable.length;
  const report: DrillReport = {
    schemaVersion: 1,
    drillId: options.drillId,
    startedAt: new Date(started).toISOString(),
    durationMs: now() - started,
    settings,
    seed: Buffer.from(options.seed).toString('hex'),
    previousDrill: previous?.key ?? null,
    since: isoOrNull(since),
    nextSince: isoOrNull(nextSince),
    recent: selection.recent,
    sampled: selection.sampled,
    recentOverCap: selection.recentOverCap.slice(0, MAX_LISTED),
    notReached: outcome.notReached,
    ...(outcome.deadline === undefined ? {} : { deadline: outcome.deadline }),
    unreadable: outcome.unreadable,
    counts: {
      archivedLines: archived.size,
      recentFound: selection.recent.length + selection.recentOverCap.length,
      recent: selection.recent.length,
      sampled: selection.sampled.length,
      recentOverCap: selection.recentOverCap.length,
      audited: outcome.reports.length,
      notReached: outcome.notReached.length,
      unreadable: outcome.unreadable.length,
      findings,
    },
    audit,
  };
  // Before the write: a report that cannot be written must not hide what the drill found.
  options.metrics?.addMetric('DrillFindings', 'Count', findings);
  options.metrics?.addMetric('DrillLinesAudited', 'Count', report.counts.audited);
  options.metrics?.addMetric('DrillLinesNotReached', 'Count', report.counts.notReached);
  logFindings(logger, report);
  if (!options.writeReport) return { report };
  const key = await archive.writeDrillReport(options.drillId, new Date(started), report);
  logger.info('drill report written', { key, ...report.counts });
  return { report, key };
}

/** What auditing the chosen lines came to. */
interface LinesOutcome {
  readonly reports: AuditReport[];
  readonly notReached: string[];
  readonly unreadable: { readonly id: string; readonly problem: string }[];
  readonly deadline: string | undefined;
}

/**
 * Audits each line on its own, a few at once, so that one unreadable line does not stop the
 * others and the deadline is seen between lines; a line the deadline stops is not reached.
 */
async function auditLines(options: DrillOptions, chosen: readonly string[]): Promise<LinesOutcome> {
  const { signal } = options;
  // A function, not a narrowed property: the deadline may fire while a line is audited.
  const pastDeadline = () => signal?.aborted === true;
  const limit = pLimit(LINES_AT_ONCE);
  const reports: AuditReport[] = [];
  const notReached = new Set<string>();
  const unreadable = new Map<string, string>();
  await Promise.all(
    chosen.map((id) =>
      limit(async () => {
        if (pastDeadline()) {
          notReached.add(id);
          return;
        }
        // Its own signal too: when one of its reads fails, the line's other reads stop.
        const line = new AbortController();
        try {
          reports.push(
            await auditArchive({
              archive: options.archive,
              readKeptReply: options.readKeptReply,
              ids: [id],
              now: options.now,
              concurrency: FILES_AT_ONCE,
              signal: signal === undefined ? line.signal : AbortSignal.any([signal, line.signal]),
              ...(options.onFile === undefined ? {} : { onFile: options.onFile }),
            }),
          );
        } catch (error) {
          line.abort();
          if (pastDeadline()) notReached.add(id);
          else unreadable.set(id, describeError(error));
        }
      }),
    ),
  );
  const reason: unknown = signal?.reason;
  return {
    reports,
    notReached: chosen.filter((id) => notReached.has(id)),
    unreadable: chosen.flatMap((id) => {
      const problem = unreadable.get(id);
      return problem === undefined ? [] : [{ id, problem }];
    }),
    deadline: notReached.size === 0 ? undefined : reason instanceof Error ? reason.message : String(reason),
  };
}

/**
 * The latest earlier drill report that can be read: its key and the `nextSince` it left; undefined
 * when there is none. When there are reports and none of the newest few can be read as one, this
 * throws: taking it for the first drill would skip, silently and for good, the lines archived
 * since the last drill that can be read.
 */
async function lastDrill(
  archive: Archive,
  logger: Logger,
): Promise<{ readonly key: string; readonly nextSince: number | undefined } | undefined> {
  const newest = (await archive.drillReportKeys()).slice(0, PREVIOUS_REPORTS_READ);
  for (const key of newest) {
    const found = reportSince(await archive.readJson(key));
    if (found !== 'unreadable') return { key, nextSince: found };
    logger.warn('drill report cannot be read as one; an earlier one is taken', { key });
  }
  if (newest.length === 0) return undefined;
  throw new ArchiveError(
    archive.drillsFolder,
    `the ${newest.length} newest objects (${newest.join(', ')}) cannot be read as a drill report, so where the last drill stopped is unknown; ` +
      'move what is not a drill report out of the folder',
  );
}

/** The `nextSince` of a drill report (undefined when it says none), or `unreadable`. */
function reportSince(value: unknown): number | undefined | 'unreadable' {
  const report = value as Partial<DrillReport> | undefined;
  if (report?.schemaVersion !== 1) return 'unreadable';
  if (report.nextSince === null) return undefined;
  const at = typeof report.nextSince === 'string' ? Date.parse(report.nextSince) : Number.NaN;
  return Number.isNaN(at) ? 'unreadable' : at;
}

/** One warning per finding, so the logs name each line and key as the report does. */
function logFindings(logger: Logger, report: DrillReport): void {
  const { audit } = report;
  for (const [kind, list] of [
    ['missing', audit.missing],
    ['damaged', audit.damaged],
    ['unsafeEntry', audit.unsafeEntries],
    ['discrepancy', audit.discrepancies],
    ['receiptMismatch', audit.receiptMismatches],
  ] as const) {
    for (const finding of list) logger.warn('drill finding', { kind, ...finding });
  }
  for (const id of audit.withoutManifest) logger.warn('drill finding', { kind: 'withoutManifest', id });
  for (const line of report.unreadable) logger.warn('drill finding', { kind: 'unreadable', ...line });
}

function isoOrNull(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}
