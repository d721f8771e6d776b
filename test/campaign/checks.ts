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
import type { DeleteMoment, RunObserver } from './observer.ts';
import type { BucketView } from './store-read.ts';
import { PREFIX, type Stage } from './world.ts';

/**
 * The service's state before a run, as the invariant judges it: a line that was finished once
 * and has moved back since (the service changed its mind) may have an archive, so it counts as
 * finished here; a DELETE of it while it is not finished is caught at the DELETE itself.
 */
export function campaignSnapshot(tokens: TokensService): Snapshot {
  const lines = new Map<string, Snapshot['lines'] extends ReadonlyMap<string, infer L> ? L : never>();
  for (const [id, line] of tokens.lines) {
    const onceFinished = line.status !== 'deleted' && line.status !== 'finished' && line.history.size > 0;
    lines.set(id, {
      status: onceFinished ? 'finished' : line.status,
      deletes: tokens.deleteCount(id),
      files: new Map(line.files),
    });
  }
  return { lines };
}

interface LineResultShape {
  readonly id?: unknown;
  readonly outcome?: unknown;
  readonly dismantled?: unknown;
}

interface ReceiptShape {
  readonly lineId?: unknown;
  readonly runId?: unknown;
  readonly discrepancy?: unknown;
  readonly reply?: { readonly status?: unknown; readonly body?: unknown };
}

interface DocumentShape {
  readonly data?: { readonly id?: unknown; readonly attributes?: { status?: unknown; filehashes?: unknown } };
}

/** The files (name -> sha256) a DELETE reply body states for line `id`, when it is that line's deleted document. */
function replyFiles(body: unknown, id: string): Map<string, string> | undefined {
  if (typeof body !== 'string') return undefined;
  let document: DocumentShape;
  try {
    document = JSON.parse(body) as DocumentShape;
  } catch {
    return undefined;
  }
  const data = document?.data;
  if (String(data?.id).toLowerCase() !== id || data?.attributes?.status !== 'deleted') return undefined;
  const hashes = data.attributes.filehashes;
  if (typeof hashes !== 'object' || hashes === null) return undefined;
  return new Map(
    Object.entries(hashes as Record<string, unknown>).map(([name, hash]) => [name, String(hash)]),
  );
}

/** Receipts and run reports against the service's state and against the manifests. */
async function checkRecords(stage: Stage, view: BucketView, summary: Summary | undefined): Promise<string[]> {
  const problems: string[] = [];
  const keys = await view.keys();
  const lineOf = (id: string) => stage.tokens.lines.get(id);
  for (const key of keys.filter((k) => k.endsWith('/deleted.json') && !k.startsWith(`${PREFIX}_`))) {
    const id = key.slice(PREFIX.length, -'/deleted.json'.length);
    const receipt = (await view.json(key)) as ReceiptShape | undefined;
    const manifest = (await view.json(`${PREFIX}${id}/manifest.json`)) as
      | { files?: { name?: unknown; sha256?: unknown }[] }
      | undefined;
    const stated = replyFiles(receipt?.reply?.body, id);
    const archived = new Map((manifest?.files ?? []).map((f) => [String(f.name), String(f.sha256)]));
    // A file dropped at the last moment loses nothing; one added or restated is not in the archive.
    const unarchived = [...(stated ?? [])]
      .filter(([name, hash]) => archived.get(name) !== hash)
      .map(([n]) => n);
    if (unarchived.length > 0 && receipt?.discrepancy === undefined) {
      problems.push(
        `${key}: its DELETE reply states ${unarchived.join(', ')} as the manifest does not, and it records no discrepancy`,
      );
    }
    if (receipt?.discrepancy !== undefined && summary !== undefined && receipt.runId === summary.runId) {
      const reported = summary.failed.some((line) => line.id === id && line.dismantled === true);
      if (!reported) problems.push(`${key}: records a discrepancy the run's summary does not report`);
    }
  }
  if (summary === undefined || summary.dryRun) return problems;
  const reportKey = keys.find((k) => k.startsWith(`${PREFIX}_runs/`) && k.endsWith(`/${summary.runId}.json`));
  if (reportKey === undefined) return problems;
  const report = (await view.json(reportKey)) as { lines?: LineResultShape[] } | undefined;
  for (const result of report?.lines ?? []) {
    const id = String(result.id);
    const deleted = lineOf(id)?.status === 'deleted';
    const saysGone =
      result.outcome === 'dismantled' || (result.outcome === 'failed' && result.dismantled === true);
    const saysKept =
      (result.outcome === 'failed' && result.dismantled !== true) ||
      result.outcome === 'archived' ||
      result.outcome === 'waiting';
    if (saysGone && !deleted)
      problems.push(
        `${reportKey}: line ${id} reported ${String(result.outcome)}, but the service still has it`,
      );
    if (saysKept && deleted)
      problems.push(
        `${reportKey}: line ${id} reported ${String(result.outcome)} (kept), but the service deleted it`,
      );
  }
  return problems;
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
}

/** Everything that must hold after one run; an empty list when it does. */
export async function checkRun(
  stage: Stage,
  check: RunCheck,
): Promise<{ problems: string[]; moments: DeleteMoment[] }> {
  const moments = await Promise.all(check.observer.moments);
  for (const moment of moments) if (moment.live) check.lastDelete.set(moment.id, moment);
  // A line is deleted by its last DELETE that found it there (or by the deferred completion of it).
  for (const [id, line] of stage.tokens.lines) {
    if (line.status === 'deleted' && check.lastDelete.get(id)?.race === true) check.changedAtDelete.add(id);
  }
  await check.view.refresh();
  const invariant = await inspectInvariant(stage, {
    before: check.before,
    runs: [check.outcome],
    receipts: check.observer.recordsBroken ? 'optional' : 'required',
    changedAtDelete: [...check.changedAtDelete],
    reader: check.view,
  });
  const summary = check.outcome.killed === true ? undefined : check.outcome.summary;
  const problems = [
    ...checkMoments(moments),
    ...invariant.problems,
    ...checkLogs(check.logs, stage.sessionKey),
    ...(await check.ledger.update(stage, check.view)),
    ...(await checkRecords(stage, check.view, summary)),
  ];
  return { problems, moments };
}
