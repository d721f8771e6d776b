/**
 * The invariants checked after every run of a schedule: the suite's nothing-lost invariant
 * (`inspectInvariant`), plus what the campaign sees that it cannot: the store at the moment of
 * each DELETE, every verified object ever seen, every log line, and the records read back
 * against the service's real state.
 */
import type { Summary } from '../../lambda/core/types.ts';
import type { TokensService } from '../local/tokens-service.ts';
import { inspectInvariant, type RunOutcome, type Snapshot } from '../reliability/invariant.ts';
import type { BucketLedger } from './bucket-ledger.ts';
import { readBackSummary } from './fanout.ts';
import type { DeleteMoment, RunObserver } from './observer.ts';
import { checkLineRecords, checkRecords } from './records.ts';
import type { BucketView } from './store-read.ts';
import { PREFIX, type Stage } from './world.ts';

type LineBefore = Snapshot['lines'] extends ReadonlyMap<string, infer L> ? L : never;

/**
 * The service's state before a run. A line the service deleted whose DELETE the archive records
 * as pending (a marker: the run that sent it could not see it done) counts as not yet deleted:
 * the run that confirms it must keep its receipt and count it dismantled.
 */
export function campaignSnapshot(tokens: TokensService, pendingMarked: ReadonlySet<string>): Snapshot {
  const lines = new Map<string, LineBefore>();
  for (const [id, line] of tokens.lines) {
    const status = line.status === 'deleted' && pendingMarked.has(id) ? 'finished' : line.status;
    lines.set(id, { status, deletes: tokens.deleteCount(id), files: new Map(line.files) });
  }
  return { lines };
}

/** Lines whose DELETE the archive records as pending, and not yet confirmed (no receipt). */
export function pendingMarked(view: BucketView): Set<string> {
  const ids = new Set<string>();
  for (const key of view.tags.keys()) {
    const match = new RegExp(`^${PREFIX}_pending/([^/]+)\\.json$`).exec(key);
    const id = match?.[1];
    if (id !== undefined && !view.tags.has(`${PREFIX}${id}/deleted.json`)) ids.add(id);
  }
  return ids;
}

/**
 * `before` as the run is judged: a line finished at any point, before or during the run (the
 * service changed its mind), may have an archive, so it counts as finished (a DELETE of it while
 * not finished is caught at the DELETE itself); a line the service has deleted whose DELETE is
 * recorded pending (its confirmation was inconclusive), by this run or an earlier one, and not
 * confirmed yet (no receipt), is judged by the run that confirms it.
 */
function judged(
  before: Snapshot,
  tokens: TokensService,
  summary: Summary | undefined,
  view: BucketView,
  pendingBefore: ReadonlySet<string>,
): Snapshot {
  const lines = new Map<string, LineBefore>();
  // Recorded pending before the run, by it (its summary, or a marker: its account may be unreadable).
  const pending = new Set([
    ...(summary?.pending ?? []).map((line) => line.id),
    ...pendingBefore,
    ...pendingMarked(view),
  ]);
  for (const [id, line] of before.lines) {
    const now = tokens.lines.get(id);
    const onceFinished =
      line.status !== 'finished' && line.status !== 'deleted' && (now?.history.size ?? 0) > 0;
    const unconfirmed = !view.tags.has(`${PREFIX}${id}/deleted.json`);
    const leftPending = pending.has(id) && now?.status === 'deleted' && unconfirmed;
    lines.set(id, { ...line, status: leftPending ? 'deleted' : onceFinished ? 'finished' : line.status });
  }
  return { lines };
}

/** The DELETEs of the run: each had every stated file archived, unless the line changed at the DELETE itself. */
function checkMoments(moments: readonly DeleteMoment[]): string[] {
  return moments
    .filter((moment) => moment.problems.length > 0 && !moment.race)
    .map((moment) => `DELETE of line ${moment.id} sent while ${moment.problems.join('; ')}`);
}

/** Log lines holding the key; shown redacted, and only the first few. */
function checkLogs(logs: readonly string[], key: string): string[] {
  const leaks = logs.filter((line) => line.includes(key));
  return leaks
    .slice(0, 3)
    .map((line) => `a log line holds the session key: ${line.replaceAll(key, '<KEY>').slice(0, 300)}`);
}

export interface RunCheck {
  readonly before: Snapshot;
  readonly outcome: RunOutcome;
  readonly logs: readonly string[];
  readonly observer: RunObserver;
  readonly ledger: BucketLedger;
  readonly view: BucketView;
  /** Schedule-wide: each line's last DELETE that found it there. */
  readonly lastDelete: Map<string, DeleteMoment>;
  /** Schedule-wide: lines deleted by a DELETE at whose arrival they had just changed. */
  readonly changedAtDelete: Set<string>;
  /** Schedule-wide: keys the store was made to write other bytes to than it was sent. */
  readonly flipped: ReadonlySet<string>;
  /** Schedule-wide: how far each fan-out line record has said its line got. */
  readonly furthest: Map<string, number>;
  /** Lines whose DELETE the archive recorded pending, unconfirmed, when `before` was taken. */
  readonly pendingBefore: ReadonlySet<string>;
  /** A fan-out run: the planner's run id (undefined when the planner failed). */
  readonly fanout?: { readonly runId: string | undefined };
}

/**
 * The runs to judge the service against: the pass itself; for fan-out, the run as read back
 * from the workers' records (none when they cannot all be read: a store fault hit them).
 */
async function judgedRuns(check: RunCheck, changed: readonly string[]): Promise<RunOutcome[]> {
  if (check.fanout === undefined) return [check.outcome];
  const { runId } = check.fanout;
  // A record the store refused is a line the account misses: nothing to check the service against.
  if (check.observer.reportsBroken) return [];
  const summary = runId === undefined ? undefined : await readBackSummary(check.view, changed, runId);
  return summary === undefined ? [] : [{ summary }];
}

/** Everything that must hold after one run; an empty list when it does. */
export async function checkRun(
  stage: Stage,
  check: RunCheck,
): Promise<{ problems: string[]; moments: DeleteMoment[]; summary: Summary | undefined }> {
  const moments = await Promise.all(check.observer.moments);
  for (const moment of moments) if (moment.live) check.lastDelete.set(moment.id, moment);
  // A line is deleted by its last DELETE that found it there (or by the deferred completion of it).
  for (const [id, line] of stage.tokens.lines) {
    if (line.status === 'deleted' && check.lastDelete.get(id)?.race === true) check.changedAtDelete.add(id);
  }
  const seen = new Map(check.view.tags);
  const changed = [...(await check.view.refresh())]
    .filter(([key, tag]) => seen.get(key) !== tag)
    .map(([key]) => key);
  const runs = await judgedRuns(check, changed);
  const summary = runs[0]?.killed === true ? undefined : runs[0]?.summary;
  const invariant = await inspectInvariant(stage, {
    before: judged(check.before, stage.tokens, summary, check.view, check.pendingBefore),
    runs,
    // A flipped write is the store's damage: a failed line's leftover, unless a manifest vouches for it.
    expectedBadObjects: [...check.flipped],
    receipts: check.observer.recordsBroken ? 'optional' : 'required',
    changedAtDelete: [...check.changedAtDelete],
    reader: check.view,
  });
  const problems = [
    ...checkMoments(moments),
    ...invariant.problems,
    ...checkLogs(check.logs, stage.sessionKey),
    ...(await check.ledger.update(stage, check.view)),
    ...(await checkRecords(stage, check.view, summary)),
    ...(check.fanout === undefined ? [] : await checkLineRecords(stage, check.view, check.furthest)),
  ];
  return { problems, moments, summary };
}
