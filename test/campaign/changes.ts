/**
 * Service changes and faults of a schedule, applied to the stage's simulator. A change that does
 * not apply to the line as it is now (a file it no longer states, a line already deleted) is a
 * no-op: the schedule stays the same data whatever happened before it.
 */
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import type { LineStatus } from '../local/tokens-service.ts';
import type { Schedule, ServiceChange, ServiceFault } from './schedule.ts';
import { PREFIX, type Stage } from './world.ts';

/** Lines whose GET serves a raw document until the next run starts. */
export type RawLines = Set<string>;

export function idOf(schedule: Schedule, line: number): string {
  const plan = schedule.lines[line];
  if (plan === undefined) throw new Error(`schedule ${schedule.seed} has no line L${line}`);
  return plan.id;
}

async function hasPendingMarker(stage: Stage, id: string): Promise<boolean> {
  try {
    await stage.world.s3Client.send(
      new HeadObjectCommand({ Bucket: stage.bucket, Key: `${PREFIX}_pending/${id}.json` }),
    );
    return true;
  } catch {
    return false;
  }
}

/** Whether the change needs to look at the store first (only between runs). */
export function needsStore(change: ServiceChange): boolean {
  return change.kind === 'complete-deletion';
}

/**
 * Applies a change now; returns whether it applied. `pendingMarker` answers for
 * `complete-deletion` (a deferred deletion completes only where a DELETE was recorded pending).
 */
export function applyChange(
  stage: Stage,
  schedule: Schedule,
  change: ServiceChange,
  raw: RawLines,
  pendingMarker = false,
): boolean {
  const { tokens } = stage;
  if (change.kind === 'gone-status') {
    tokens.setGoneStatus(change.status);
    return true;
  }
  const id = idOf(schedule, change.line);
  const line = tokens.lines.get(id);
  if (line === undefined || line.status === 'deleted') return false;
  switch (change.kind) {
    case 'restate':
      if (line.status !== 'finished' || !line.files.has(change.file)) return false;
      tokens.restateFile(id, change.file, change.size);
      return true;
    case 'add-file':
      if (line.status !== 'finished' || line.files.has(change.file)) return false;
      tokens.addFile(id, change.file, change.size);
      return true;
    case 'drop-file':
      // Only an extra file: a line without its data (or a metrics line without its analysis files)
      // is a malformed document, refused as such, not a change of mind.
      if (line.status !== 'finished' || !change.file.startsWith('extra') || !line.files.has(change.file)) {
        return false;
      }
      tokens.dropFile(id, change.file);
      return true;
    case 'status':
      if (line.status === change.status) return false;
      tokens.setStatus(id, change.status as LineStatus);
      return true;
    case 'complete-deletion':
      if (!pendingMarker) return false;
      tokens.completeDeletion(id);
      return true;
    case 'foreign-document': {
      const other =
        schedule.lines.find((plan) => plan.id !== id)?.id ?? '00000000-0000-4000-8000-000000000000';
      tokens.setRawLine(id, {
        links: { self: `/api/tokens/${other}` },
        data: { id: other, type: 'tokens', attributes: { status: 'deleted', analysis: 'none' } },
      });
      raw.add(id);
      return true;
    }
    case 'echo-key':
      if (change.where === 'attribute') {
        tokens.setRawAttribute(id, 'note', JSON.stringify(stage.sessionKey));
      } else if (change.where === 'delete-reply') {
        tokens.setDeleteReplyMeta(id, { echo: stage.sessionKey });
      } else {
        tokens.setRawLine(id, { data: { id, type: 'tokens', attributes: { status: stage.sessionKey } } });
        raw.add(id);
      }
      return true;
  }
}

/** Applies a change between runs, looking in the store first where it must. */
export async function applyBetweenRuns(
  stage: Stage,
  schedule: Schedule,
  change: ServiceChange,
  raw: RawLines,
): Promise<boolean> {
  if (!needsStore(change) || change.kind !== 'complete-deletion') {
    return applyChange(stage, schedule, change, raw);
  }
  const marker = await hasPendingMarker(stage, idOf(schedule, change.line));
  return applyChange(stage, schedule, change, raw, marker);
}

/** Serves every line as it is again (raw documents last one run). */
export function clearRawLines(stage: Stage, raw: RawLines): void {
  for (const id of raw) stage.tokens.clearRawLine(id);
  raw.clear();
}

/** Injects a run's service faults, each scoped to its line's id. */
export function injectServiceFaults(stage: Stage, schedule: Schedule, faults: readonly ServiceFault[]): void {
  for (const fault of faults) {
    stage.tokens.inject({
      target: fault.target,
      ...(fault.line === undefined || fault.target === 'list' ? {} : { id: idOf(schedule, fault.line) }),
      ...(fault.file === undefined ? {} : { file: fault.file }),
      fault: fault.fault,
      times: fault.times,
    });
  }
}
