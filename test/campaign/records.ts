/**
 * The housekeeper's records read back against the truth: receipts against their manifests, the
 * lines of a run report and the fan-out's line records against the service's state, and line
 * records never going backwards.
 */
import type { Summary } from '../../lambda/core/types.ts';
import { lineRecordKeys, standing } from './fanout.ts';
import type { BucketView } from './store-read.ts';
import { PREFIX, type Stage } from './world.ts';

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
export function replyFiles(body: unknown, id: string): Map<string, string> | undefined {
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
export async function checkRecords(
  stage: Stage,
  view: BucketView,
  summary: Summary | undefined,
): Promise<string[]> {
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
      result.outcome === 'held' ||
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

/**
 * The fan-out's line records: one that says its line left the service is true, and none goes
 * backwards (`furthest`, schedule-wide: how far each record has said its line got).
 */
export async function checkLineRecords(
  stage: Stage,
  view: BucketView,
  furthest: Map<string, number>,
): Promise<string[]> {
  const problems: string[] = [];
  for (const key of lineRecordKeys(view.tags.keys())) {
    const record = (await view.json(key)) as { lineId?: unknown; result?: LineResultShape } | undefined;
    const now = standing(record?.result);
    const before = furthest.get(key) ?? 0;
    if (now < before)
      problems.push(`${key}: the line record went backwards, to ${String(record?.result?.outcome)}`);
    furthest.set(key, Math.max(now, before));
    const id = String(record?.lineId);
    if (now >= 3 && stage.tokens.lines.get(id)?.status !== 'deleted') {
      problems.push(
        `${key}: line ${id} recorded ${String(record?.result?.outcome)}, but the service still has it`,
      );
    }
  }
  return problems;
}
