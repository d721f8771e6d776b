import type { Logger } from '@aws-lambda-powertools/logger';
import {
  ArchiveChangedError,
  ConflictError,
  DocumentError,
  deadlineReason,
  HousekeepingError,
  LineSkippedError,
  SessionKeyEchoError,
} from '../../shared/errors.ts';
import type { LineRead, ReadLine } from '../../shared/ports/tokens.ts';
import type { Manifest } from '../../shared/records.ts';
import { type Age, judgeAge } from '../grace.ts';
import type { LineOutcome, PlannedLine } from '../types.ts';
import { type LineContext, MAX_ROUNDS } from './context.ts';
import {
  confirmPending,
  dismantle,
  dismantledOutcome,
  notePendingStatement,
  type PendingConfirmed,
} from './dismantle.ts';
import { Uploads, uploadAll } from './files.ts';
import { type DeletePermit, type DenyKind, decideDelete, type VerifiedFile } from './gate.ts';
import { documentHoldsKey, ensureManifest } from './manifest.ts';
import { type FilePlan, planFiles } from './plan.ts';

/**
 * One line, start to end: read it, archive its files and manifest (again, while it changes), read
 * it once more, and only then dismantle it; a dry run plans it, a young line waits.
 */
export async function processLine(ctx: LineContext, id: string, logger: Logger): Promise<LineOutcome> {
  const { request } = ctx;
  const first = await read(ctx, id, logger);
  if (first.kind === 'confirmed') {
    const counts = { bytes: 0, uploaded: 0, reused: first.files };
    if (first.unrecorded !== undefined) {
      const also =
        first.discrepancy === undefined
          ? ''
          : `; the line states files other than the archive: ${first.discrepancy}`;
      return { outcome: 'pending', reason: `${first.unrecorded}${also}`, ...counts };
    }
    return dismantledOutcome(id, 'the document confirming its DELETE', first.discrepancy, counts);
  }
  const { line } = first.read;
  const age = judgeAge(line.finishedAt, request.minAgeMs, ctx.now());
  if (age.kind === 'unknown') throw new LineSkippedError(age.reason, false);
  if (request.dryRun) {
    return {
      outcome: 'planned',
      plan: {
        id,
        alphabet: line.alphabet ?? null,
        digits: line.digits ?? null,
        files: line.files.length,
        bytes: line.files.reduce((sum, file) => sum + file.size, 0),
        ...plannedAction(ctx, id, age),
      },
    };
  }
  if (age.kind === 'waiting') return { outcome: 'waiting', until: age.until };

  // The line as last read: the rounds move it on as they read the line again.
  const last = { read: first.read };
  try {
    return await archiveAndDismantle(ctx, last, logger);
  } catch (error) {
    // Still there, and not archived as it states itself now: a DELETE taken earlier and carried
    // out late would lose what it states. The marker keeps it, for the confirmation to compare.
    if (!(error instanceof LineSkippedError)) await notePendingStatement(ctx, id, last.read.line, logger);
    throw error;
  }
}

/** The rounds of one read line (`last`, moved on as it is read again): archive, read again, DELETE. */
async function archiveAndDismantle(
  ctx: LineContext,
  last: { read: ReadLine },
  logger: Logger,
): Promise<LineOutcome> {
  const { request } = ctx;
  const id = last.read.line.id;
  const uploads = new Uploads();
  let permit: DeletePermit;
  // A line's first round assumes an empty archive, as on a first run, and lets the conditional
  // writes say otherwise: any object already at a key it writes refuses the write, and the line
  // is planned again from what the archive holds (see archiveRound).
  let assumeEmpty = ctx.config.upload.conditionalWrites === 'enforced' && startsFromEmpty(last.read);
  // The line is read again right before its DELETE: one that changed while its files were
  // streamed (a file added, restated or dropped) is archived again, or kept as a conflict.
  for (let round = 1; ; round += 1) {
    let archived: ArchivedRound | 'changed';
    try {
      archived = await archiveRound(ctx, last.read, uploads, logger, assumeEmpty);
    } catch (error) {
      if (assumeEmpty && !stopped(ctx)) {
        assumeEmpty = false;
        // Refused (ArchiveChangedError): not a change another pass made, as far as anyone knows,
        // the archive was not empty. Failed otherwise (a download the service no longer serves):
        // a round that assumed what it never looked at proves nothing while the archive holds
        // objects of the line, maybe all of them. Then planned again from what the archive holds,
        // and the round is not counted; with nothing there but this round's, the failure stands.
        if (error instanceof ArchiveChangedError || (await heldBefore(ctx, id, uploads))) {
          logger.debug('the archive already holds objects of this line; planning from them', {
            reason: error instanceof Error ? error.message : String(error),
          });
          round -= 1;
          continue;
        }
        throw error;
      }
      // Another pass wrote this line's archive meanwhile: plan again from what is there now.
      if (!(error instanceof ArchiveChangedError) || round >= MAX_ROUNDS) throw error;
      logger.warn('another pass changed the archive of this line; planning again', {
        reason: error.message,
      });
      archived = 'changed';
    }
    if (archived === 'changed') continue;
    // The archive now holds this line's files and manifest: any later round plans from its listing.
    assumeEmpty = false;
    const { manifest, verified, fresh } = archived;
    if (request.archiveOnly) return { outcome: 'archived', ...uploads.counts(manifest) };
    const verdict = decideDelete({
      id,
      request,
      line: fresh === undefined ? 'not-read' : fresh === 'gone' ? 'gone' : fresh.line,
      manifest,
      verified,
      stopped: stopped(ctx),
      guard: ctx.guard,
    });
    if (verdict.allow) {
      permit = verdict.permit;
      break;
    }
    if (verdict.why === 'held')
      return { outcome: 'held', reason: verdict.reason, ...uploads.counts(manifest) };
    if (verdict.why !== 'changed') throw keptBy(verdict.why, verdict.reason, id, ctx);
    if (round >= MAX_ROUNDS) {
      throw new HousekeepingError(
        `line ${id}: its files changed ${round} times while being archived; kept, the next run tries again`,
      );
    }
    logger.warn('the line states other files than were just archived; archiving again before any DELETE', {
      round,
    });
    // Not 'gone' here: the gate said 'changed' of a line it read.
    last.read = fresh as ReadLine;
  }
  return dismantle(ctx, permit, uploads.counts(permit.manifest), logger);
}

/**
 * Whether the archive holds objects of the line that its work did not upload: false also when it
 * cannot be listed (the round's own failure then stands, and nothing is assumed).
 */
async function heldBefore(ctx: LineContext, id: string, uploads: Uploads): Promise<boolean> {
  const { archive, retry } = ctx;
  const present = await retry(() => archive.lineObjects(id)).catch(() => undefined);
  if (present === undefined) return false;
  return [...present].some((name) => uploads.verified(`${archive.lineKey(id)}${name}`) === undefined);
}

/** A dry run's plan for a line: wait, archive, or archive and dismantle (unless the guard would hold it). */
function plannedAction(
  ctx: LineContext,
  id: string,
  age: Age,
): Pick<PlannedLine, 'action' | 'until' | 'held'> {
  if (age.kind === 'waiting') return { action: 'wait', until: age.until };
  if (ctx.request.archiveOnly) return { action: 'archive' };
  const held = ctx.guard.claim(id);
  return held === undefined ? { action: 'archive-and-dismantle' } : { action: 'archive-and-hold', held };
}

/**
 * What one archive round leaves: the manifest, each object verified in S3 by key, and the line as
 * read again after its files were archived (`undefined` when not read: archive-only, or stopped).
 */
interface ArchivedRound {
  readonly manifest: Manifest;
  readonly verified: ReadonlyMap<string, VerifiedFile>;
  readonly fresh: ReadLine | 'gone' | undefined;
}

/**
 * The largest file a line's first round sends to find out whether the archive is empty: its write
 * is refused when it is not, and the download was for nothing; larger, the folder is listed first.
 */
const PROBE_LIMIT_BYTES = 1024 * 1024;

/**
 * Whether a line's first round may assume an empty archive: when its smallest file is small, so
 * that an archive already there costs at most that file's download, whose write it refuses.
 */
function startsFromEmpty(read: ReadLine): boolean {
  // Not Math.min(...sizes): a line may state more files than a call takes arguments.
  return read.line.files.some((file) => file.size <= PROBE_LIMIT_BYTES);
}

/**
 * Uploads what the plans say. Assuming an empty archive, the smallest file goes alone first: its
 * write, refused if anything is at its key, is the probe; the others follow once it landed.
 */
async function uploadFiles(
  ctx: LineContext,
  id: string,
  plans: readonly FilePlan[],
  uploads: Uploads,
  logger: Logger,
  assumeEmpty: boolean,
): Promise<void> {
  if (!assumeEmpty) return uploadAll(ctx, id, plans, uploads, logger);
  const [probe, ...rest] = [...plans].sort((a, b) => a.file.size - b.file.size);
  if (probe !== undefined) await uploadAll(ctx, id, [probe], uploads, logger);
  await uploadAll(ctx, id, rest, uploads, logger);
}

function stopped(ctx: LineContext): boolean {
  return deadlineReason(ctx.signal) !== undefined;
}

/** The error a line kept by the gate fails with (or is skipped with, when it is gone). */
function keptBy(why: DenyKind, reason: string, id: string, ctx: LineContext): Error {
  if (why === 'gone') return new LineSkippedError(reason, true);
  if (why === 'stopped') return deadlineReason(ctx.signal) ?? new HousekeepingError(`line ${id}: ${reason}`);
  return new HousekeepingError(`line ${id}: ${reason}`);
}

/**
 * Plans, uploads and records the line's files once: the manifest that states them, and the line
 * read again for the gate, while the manifest is written. With `assumeEmpty` the plan takes the
 * archive of the line to be empty (nothing listed, nothing read): every write is conditional on
 * there being no object, so an archive already there refuses one of them (ArchiveChangedError)
 * and nothing is overwritten; the smallest file goes first, so that a refusal costs little.
 */
async function archiveRound(
  ctx: LineContext,
  read: ReadLine,
  uploads: Uploads,
  logger: Logger,
  assumeEmpty: boolean,
): Promise<ArchivedRound> {
  const { archive, retry } = ctx;
  const id = read.line.id;
  // What the line already has in the archive (a re-run, a crash): only those are checked.
  const present = assumeEmpty ? new Set<string>() : await retry(() => archive.lineObjects(id));
  const found = present.has('manifest.json')
    ? await retry(() => archive.readManifestForUpdate(id))
    : undefined;
  if (found !== undefined && found.manifest === undefined) {
    throw new ConflictError(
      id,
      'manifest.json',
      undefined,
      undefined,
      'the manifest there is not one this version reads (damaged, or written by a newer release): kept, nothing overwritten',
    );
  }
  const plans = await planFiles(ctx, read.line, found?.manifest, present, logger);
  await uploadFiles(ctx, id, plans, uploads, logger, assumeEmpty);
  const writing = retry(() => ensureManifest(ctx, read, plans, found));
  // The re-read before the DELETE travels while the manifest is written: the gate needs both.
  const rereading = ctx.request.archiveOnly || stopped(ctx) ? undefined : timedReread(ctx, id);
  // Awaited below, unless the manifest fails first (then its outcome no longer matters).
  rereading?.catch(() => {});
  const manifest = await writing;
  // A read the deadline cut short says nothing: the gate is told the run stopped.
  let fresh = rereading === undefined || stopped(ctx) ? undefined : await rereading;
  // A slow manifest (a store retrying, a long wait) leaves the read too old to speak for the
  // moment of the DELETE: the line is read again, after the manifest, as if it had not travelled.
  if (fresh !== undefined && performance.now() - fresh.at > FRESH_READ_MS && !stopped(ctx)) {
    fresh = await timedReread(ctx, id);
  }
  const verified = new Map<string, VerifiedFile>();
  for (const plan of plans) {
    // Inspected and found verified by the plan, or uploaded and read back in this line's work.
    const object = plan.upload ? uploads.verified(plan.key) : plan.verified;
    if (object !== undefined) verified.set(plan.key, { key: plan.key, ...object });
  }
  return { manifest, verified, fresh: fresh?.line };
}

/**
 * How long after its reply a re-read still speaks for the line at its DELETE. Read after the
 * manifest, the read is one round trip (the DELETE's) from the moment it speaks for; read beside
 * it, the read is older by however much longer the manifest took: at most this, or it is read
 * again. A change the service makes in that window is seen only by what confirms the DELETE, and
 * reported as a discrepancy: the window is kept within a fast PUT's round trip. Not so under a
 * request cap (`MAX_REQUESTS_PER_SECOND`), where the DELETE waits for its slot after the read
 * (ahead of every download and first read, behind only the reads and DELETEs of other lines at
 * their own DELETE), nor under a byte cap (`MAX_BYTES_PER_SECOND`), where the read's body waits
 * for its bytes (ahead of the downloads' too), nor for a DELETE retried after a 5xx: their wait
 * adds to the window, and the same confirmation reports what changed in it.
 */
export const FRESH_READ_MS = 50;

/** The re-read, and when its reply came (a monotonic clock). */
async function timedReread(ctx: LineContext, id: string): Promise<{ line: ReadLine | 'gone'; at: number }> {
  const line = await reread(ctx, id);
  return { line, at: performance.now() };
}

/**
 * Reads the line by id just before work: list items carry no links, and status moves on. A line
 * that is gone, whose DELETE an earlier run saw taken but not done (a pending marker), is
 * confirmed here and its receipt written.
 */
export async function read(
  ctx: LineContext,
  id: string,
  logger: Logger,
): Promise<{ kind: 'read'; read: ReadLine } | ({ kind: 'confirmed' } & PendingConfirmed)> {
  let reply: LineRead;
  try {
    reply = await ctx.api.getLine(id);
  } catch (error) {
    if (error instanceof DocumentError) throw new LineSkippedError(`invalid: ${error.message}`, false);
    throw error;
  }
  if (reply.kind === 'gone') {
    const confirmed = await confirmPending(
      ctx,
      id,
      { how: `GET answered ${reply.status}`, stated: undefined },
      logger,
    );
    if (confirmed !== undefined) return { kind: 'confirmed', ...confirmed };
    throw new LineSkippedError(`not found (${reply.status})`, true);
  }
  const { line, bytes } = reply;
  if (line.status === 'deleted') {
    // The files the deleted line still states, to compare with what was archived before its DELETE.
    const stated = line.deletedStatement;
    const confirmed = await confirmPending(ctx, id, { how: 'GET shows status deleted', stated }, logger);
    if (confirmed !== undefined) return { kind: 'confirmed', ...confirmed };
  }
  if (line.status !== 'finished')
    throw new LineSkippedError(`status is "${line.status}", not finished`, true);
  // A document that echoes the session key is never stored, so the line could never be dismantled
  // truthfully: it fails here, before any file is uploaded for it.
  if (documentHoldsKey(bytes)) throw new SessionKeyEchoError(id, "the line's document");
  return { kind: 'read', read: { line, bytes } };
}

/** The re-read before DELETE: the line as it is now (the gate judges it), or `gone`. */
export async function reread(ctx: LineContext, id: string): Promise<ReadLine | 'gone'> {
  // Ahead of the requests waiting for a cap: the DELETE that follows is urgent too.
  const reply = await ctx.api.getLine(id, { urgent: true });
  if (reply.kind === 'gone' || reply.line.status === 'deleted') return 'gone';
  return { line: reply.line, bytes: reply.bytes };
}
