import type { Logger } from '@aws-lambda-powertools/logger';
import type { Manifest } from '../../archive/archive.ts';
import {
  ArchiveChangedError,
  ConflictError,
  DocumentError,
  HousekeepingError,
  LineSkippedError,
} from '../../shared/errors.ts';
import { parseLineDocument, type TokensLine } from '../../tokens/document.ts';
import { judgeAge } from '../grace.ts';
import { sameFiles } from './compare.ts';
import {
  checkStopped,
  getLineOrGone,
  type LineContext,
  type LineOutcome,
  MAX_ROUNDS,
  type ReadLine,
} from './context.ts';
import { confirmPending, dismantle } from './dismantle.ts';
import { Uploads, uploadAll } from './files.ts';
import { ensureManifest } from './manifest.ts';
import { planFiles } from './plan.ts';

/**
 * One line, start to end: read it, archive its files and manifest (again, while it changes), read
 * it once more, and only then dismantle it; a dry run plans it, a young line waits.
 */
export async function processLine(ctx: LineContext, id: string, logger: Logger): Promise<LineOutcome> {
  const { request } = ctx;
  const first = await read(ctx, id, logger);
  if (first.kind === 'confirmed') return { kind: 'dismantled', bytes: 0, uploaded: 0, reused: first.files };
  const { line } = first.read;
  const age = judgeAge(line.finishedAt, request.minAgeMs, ctx.now());
  if (age.kind === 'unknown') throw new LineSkippedError(age.reason, false);
  if (request.dryRun) {
    return {
      kind: 'planned',
      plan: {
        id,
        alphabet: line.alphabet ?? null,
        digits: line.digits ?? null,
        files: line.files.length,
        bytes: line.files.reduce((sum, file) => sum + file.size, 0),
        ...(age.kind === 'waiting'
          ? { action: 'wait', until: age.until }
          : { action: request.archiveOnly ? 'archive' : 'archive-and-dismantle' }),
      },
    };
  }
  if (age.kind === 'waiting') return { kind: 'waiting', until: age.until };

  const uploads = new Uploads();
  let current = first.read;
  let manifest: Manifest;
  // The line is read again right before its DELETE: one that changed while its files were
  // streamed (a file added, restated or dropped) is archived again, or kept as a conflict.
  for (let round = 1; ; round += 1) {
    let archived: Manifest | 'changed';
    try {
      archived = await archiveRound(ctx, current, uploads, logger);
    } catch (error) {
      // Another pass wrote this line's archive meanwhile: plan again from what is there now.
      if (!(error instanceof ArchiveChangedError) || round >= MAX_ROUNDS) throw error;
      logger.warn('another pass changed the archive of this line; planning again', {
        reason: error.message,
      });
      archived = 'changed';
    }
    if (archived === 'changed') continue;
    manifest = archived;
    if (request.archiveOnly) return { kind: 'archived', ...uploads.counts(manifest) };
    checkStopped(ctx);
    const fresh = await reread(ctx, id);
    // Gone, or unreadable, right before the DELETE: another pass may have dismantled it, or a
    // flaky front answered 404. Either way no DELETE is sent; a later run looks again.
    if (fresh === 'gone') {
      throw new LineSkippedError('not found (404 or 410) right before its DELETE: no DELETE sent', true);
    }
    if (sameFiles(fresh.line.files, manifest.files)) break;
    if (round >= MAX_ROUNDS) {
      throw new HousekeepingError(
        `line ${id}: its files changed ${round} times while being archived; kept, the next run tries again`,
      );
    }
    logger.warn('the line states other files than were just archived; archiving again before any DELETE', {
      round,
    });
    current = fresh;
  }
  return dismantle(ctx, id, manifest, uploads.counts(manifest), logger);
}

/** Plans, uploads and records the line's files once: the manifest that states them. */
async function archiveRound(
  ctx: LineContext,
  read: ReadLine,
  uploads: Uploads,
  logger: Logger,
): Promise<Manifest> {
  const { archive, retry } = ctx;
  const id = read.line.id;
  // What the line already has in the archive (a re-run, a crash): only those are checked.
  const present = await retry(() => archive.lineObjects(id));
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
  await uploadAll(ctx, id, plans, uploads, logger);
  return retry(() => ensureManifest(ctx, read, plans, found));
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
): Promise<{ kind: 'read'; read: ReadLine } | { kind: 'confirmed'; files: number }> {
  const reply = await getLineOrGone(ctx, id);
  if (typeof reply === 'number') {
    const files = await confirmPending(ctx, id, `GET answered ${reply}`, logger);
    if (files !== undefined) return { kind: 'confirmed', files };
    throw new LineSkippedError(`not found (${reply})`, true);
  }
  let line: TokensLine;
  try {
    line = parseLineDocument(reply.value, id);
  } catch (error) {
    if (error instanceof DocumentError) throw new LineSkippedError(`invalid: ${error.message}`, false);
    throw error;
  }
  if (line.status === 'deleted') {
    const files = await confirmPending(ctx, id, 'GET shows status deleted', logger);
    if (files !== undefined) return { kind: 'confirmed', files };
  }
  if (line.status !== 'finished')
    throw new LineSkippedError(`status is "${line.status}", not finished`, true);
  return { kind: 'read', read: { line, bytes: reply.bytes } };
}

/** The re-read before DELETE: the line as it is now, or `gone` (the DELETE then confirms it). */
export async function reread(ctx: LineContext, id: string): Promise<ReadLine | 'gone'> {
  const reply = await getLineOrGone(ctx, id);
  if (typeof reply === 'number') return 'gone';
  const line = parseLineDocument(reply.value, id);
  if (line.status === 'deleted') return 'gone';
  if (line.status !== 'finished') {
    throw new HousekeepingError(
      `line ${id}: status is now "${line.status}", no longer finished; not dismantled`,
    );
  }
  return { line, bytes: reply.bytes };
}
