import { PASS_METRIC_NAMES, type PassMetricName } from '../shared/contract.ts';
import { redactText } from '../shared/redact.ts';
import type { LineReport, LineResult, MetricsSink, PlannedLine, Summary, Tally } from './types.ts';
/** What a summary counts besides its line results. */
export interface SummaryCounts {
  readonly runId: string;
  readonly dryRun: boolean;
  readonly archiveOnly: boolean;
  /** Lines looked at (listed, named in `ids`, or sent to a worker). */
  readonly listed: number;
  /** Of those, the finished ones (a line found not finished when read is taken off). */
  readonly finished: number;
  /** Lines skipped before any was read (malformed list items). */
  readonly skipped: readonly LineReport[];
  readonly deferred: number;
  readonly tally: Tally;
  readonly durationMs: number;
  /** Why no line was looked at (see {@link Summary.notStarted}). */
  readonly notStarted?: string;
  /** Why the dismantle guard holds every line of the run (its share), whether or not a line reached it. */
  readonly guardTripped?: string;
}

/**
 * The {@link Summary} of a run's (or a fan-out worker's batch's) line results and counts. A reason
 * can quote the service, so each is cleaned of the session key: the summary is printed, logged,
 * stored and returned.
 */
export function summarize(results: readonly LineResult[], counts: SummaryCounts): Summary {
  const { runId, dryRun, archiveOnly, listed, tally, durationMs, deferred } = counts;
  const totals: LineTotals = {
    skipped: counts.skipped.map(({ id, reason }) => ({ id, reason: redactText(reason) })),
    failed: [],
    pending: [],
    held: [],
    guardTripped: counts.guardTripped,
    plan: [],
    conflicts: 0,
    waiting: 0,
    finished: counts.finished,
    archived: 0,
    dismantled: 0,
    bytes: 0,
    filesUploaded: 0,
    filesReused: 0,
  };
  for (const result of results) countResult(totals, result);
  const { skipped, failed, pending, held, guardTripped, plan } = totals;
  return {
    runId,
    dryRun,
    archiveOnly,
    listed,
    finished: totals.finished,
    archived: totals.archived,
    dismantled: totals.dismantled,
    bytes: totals.bytes,
    filesUploaded: totals.filesUploaded,
    filesReused: totals.filesReused,
    deferred,
    waiting: totals.waiting,
    retries: tally.retries,
    hashMismatches: tally.hashMismatches,
    hashMismatchAttempts: tally.hashMismatchAttempts,
    conflicts: totals.conflicts,
    skipped: sortById(skipped),
    failed: sortById(failed),
    pending: sortById(pending),
    held: sortById(held),
    ...(guardTripped === undefined ? {} : { guardTripped: redactText(guardTripped) }),
    ...(dryRun ? { plan: sortById(plan) } : {}),
    ...(counts.notStarted === undefined ? {} : { notStarted: redactText(counts.notStarted) }),
    durationMs,
  };
}

/** What {@link summarize} adds up over the line results, each field the summary's of the same name. */
interface LineTotals {
  readonly skipped: LineReport[];
  readonly failed: LineReport[];
  readonly pending: LineReport[];
  readonly held: LineReport[];
  guardTripped: string | undefined;
  readonly plan: PlannedLine[];
  conflicts: number;
  waiting: number;
  finished: number;
  archived: number;
  dismantled: number;
  bytes: number;
  filesUploaded: number;
  filesReused: number;
}

/** Counts one line result into `totals`, its reason cleaned of the session key. */
function countResult(totals: LineTotals, result: LineResult): void {
  switch (result.outcome) {
    case 'planned':
      totals.plan.push(redactedPlan(result.plan));
      totals.guardTripped ??= result.plan.held;
      break;
    case 'waiting':
      totals.waiting += 1;
      break;
    case 'skipped':
      if (result.notFinished) totals.finished -= 1;
      totals.skipped.push({ id: result.id, reason: redactText(result.reason) });
      break;
    case 'failed':
      totals.failed.push({
        id: result.id,
        reason: redactText(result.reason),
        ...(result.conflict ? { conflict: true } : {}),
        ...(result.dismantled ? { dismantled: true } : {}),
      });
      if (result.conflict) totals.conflicts += 1;
      if (result.dismantled) {
        totals.archived += 1;
        totals.dismantled += 1;
        totals.bytes += result.bytes ?? 0;
        totals.filesUploaded += result.uploaded ?? 0;
        totals.filesReused += result.reused ?? 0;
      }
      break;
    case 'archived':
    case 'dismantled':
    case 'pending':
    case 'held':
      totals.archived += 1;
      if (result.outcome === 'dismantled') totals.dismantled += 1;
      if (result.outcome === 'pending') {
        totals.pending.push({ id: result.id, reason: redactText(result.reason) });
      }
      if (result.outcome === 'held') {
        totals.held.push({ id: result.id, reason: redactText(result.reason) });
        totals.guardTripped ??= result.reason;
      }
      totals.bytes += result.bytes;
      totals.filesUploaded += result.uploaded;
      totals.filesReused += result.reused;
      break;
  }
}

/** A dry run's plan of a line, its words from the service (alphabet, digits) cleaned of the session key. */
function redactedPlan(plan: PlannedLine): PlannedLine {
  return {
    ...plan,
    alphabet: plan.alphabet === null ? null : redactText(plan.alphabet),
    digits: plan.digits === null ? null : redactText(plan.digits),
  };
}

/** Sorts reports by line id, in place, for stable summaries. */
export function sortById<T extends { id: string }>(items: T[]): T[] {
  return items.sort((a, b) => a.id.localeCompare(b.id));
}

/** The metrics of a pass, each read off a {@link Summary}; a fan-out worker's batch sums them. */
export const PASS_METRICS: Readonly<
  Record<PassMetricName, readonly [unit: 'Count' | 'Bytes', value: (summary: Summary) => number]>
> = {
  LinesArchived: ['Count', (s) => s.archived],
  LinesDismantled: ['Count', (s) => s.dismantled],
  LinesFailed: ['Count', (s) => s.failed.length],
  LinesDeferred: ['Count', (s) => s.deferred],
  LinesWaiting: ['Count', (s) => s.waiting],
  LinesSkipped: ['Count', (s) => s.skipped.length],
  LinesPending: ['Count', (s) => s.pending.length],
  LinesHeld: ['Count', (s) => s.held.length],
  FilesArchived: ['Count', (s) => s.filesUploaded],
  BytesArchived: ['Bytes', (s) => s.bytes],
  HashMismatches: ['Count', (s) => s.hashMismatches],
  Conflicts: ['Count', (s) => s.conflicts],
  Retries: ['Count', (s) => s.retries],
};

/** Emits a pass's metrics (`summaries` summed: a fan-out worker's batch), unless it was a dry run. */
export function emitPassMetrics(
  metrics: MetricsSink | undefined,
  summaries: readonly Summary[],
  durationMs: number | undefined,
): void {
  if (metrics === undefined || summaries.length === 0 || summaries.every((summary) => summary.dryRun)) return;
  for (const name of PASS_METRIC_NAMES) {
    const [unit, value] = PASS_METRICS[name];
    metrics.addMetric(
      name,
      unit,
      summaries.reduce((total, summary) => total + value(summary), 0),
    );
  }
  if (durationMs !== undefined) metrics.addMetric('RunDuration', 'Milliseconds', durationMs);
}

/**
 * A summary as a log line carries it: its lists (the plan, the failed, skipped and pending lines)
 * as counts. Each line logs its own outcome; one log event must not grow with the listing
 * (CloudWatch Logs takes 1 MB an event).
 */
export function summaryForLog(summary: Summary): Record<string, unknown> {
  const { plan, failed, skipped, pending, held, ...counts } = summary;
  return {
    ...counts,
    failed: failed.length,
    skipped: skipped.length,
    pending: pending.length,
    held: held.length,
    ...(plan === undefined ? {} : { planned: plan.length }),
  };
}
