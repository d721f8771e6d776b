import type { Logger } from '@aws-lambda-powertools/logger';
import {
  DocumentError,
  deadlineReason,
  describeError,
  HousekeepingError,
  HttpStatusError,
  LineSkippedError,
} from '../../shared/errors.ts';
import type { DeleteReply, FilesStatement, LineRead } from '../../shared/ports/tokens.ts';
import type { FileCounts, LineOutcome } from '../types.ts';
import { statedDifference } from './compare.ts';
import type { LineContext } from './context.ts';
import { keepPending, keepReceipt, noteInMarker, receiptOf } from './delete-records.ts';
import { describeDelete, isTaken, keptReplyStatement, replyRecord, replyStatement } from './delete-reply.ts';
import { type DeletePermit, sendDelete } from './gate.ts';

/**
 * Sends the DELETE the gate allowed, confirms what it achieved, and keeps the receipt. Once the
 * DELETE is sent, its outcome is the service's record: what follows (the confirming GET, the
 * receipt or the pending marker) runs in a window of its own, even past the run's deadline.
 * Whatever document confirms the DELETE (its reply, or a GET after it) must describe this line,
 * deleted, and the files it states are compared with the manifest every time.
 */
export async function dismantle(
  ctx: LineContext,
  permit: DeletePermit,
  counts: FileCounts,
  logger: Logger,
): Promise<LineOutcome> {
  const { id, manifest } = permit;
  let reply: DeleteReply | undefined;
  let failure: unknown;
  // Outside the try: a permit the gate refuses means no DELETE went out, and nothing is to confirm.
  const sending = sendDelete(ctx.api, permit);
  try {
    reply = await sending;
  } catch (error) {
    // A refusal, or no usable answer (a gateway's 5xx, a timeout, the deadline, a dropped
    // connection): either way the line is looked at before anything is said of it.
    failure = error;
  }
  const finishing = finishingSignal(ctx);
  const sent = describeDelete(reply, failure);
  // What the reply says of this line, deleted, whatever its 2xx status: a 200 confirms by itself.
  const replied = reply === undefined ? undefined : replyStatement(reply);
  const seen: Seen =
    replied !== undefined && reply?.status === 200
      ? { state: 'gone', how: REPLY_CONFIRMS, stated: replied }
      : await lookAfter(ctx, id, finishing);
  if (seen.state === 'gone') {
    // Every document that speaks of the DELETE is held to the manifest: the reply, and the GET.
    const fromReply = replied === undefined ? undefined : statedDifference(manifest.files, replied);
    const fromGet =
      seen.stated === undefined || seen.stated === replied
        ? undefined
        : statedDifference(manifest.files, seen.stated);
    const discrepancy = joinDiscrepancies([fromReply, fromGet]);
    const confirmation = reply !== undefined ? seen.how : `${seen.how}, after a DELETE that ${sent}`;
    const unrecorded = await keepReceipt(
      ctx,
      receiptOf(ctx, id, {
        ...(reply !== undefined && isTaken(reply) ? { reply: replyRecord(reply) } : {}),
        confirmation,
        ...(discrepancy === undefined ? {} : { discrepancy }),
      }),
      finishing,
      logger,
    );
    const what = seen.how === REPLY_CONFIRMS ? 'its DELETE reply' : 'what confirmed its DELETE';
    if (unrecorded !== undefined) {
      // Gone, with no receipt: the run that writes it counts the line, once. A marker says so.
      const reason = `${unrecordedReason(confirmation, unrecorded, 'pending')}${discrepancy === undefined ? '' : `; ${what} states files other than the archive: ${discrepancy}`}`;
      // The marker keeps the reply and the discrepancy found now (the confirming run joins them once).
      if (await keepPending(ctx, id, reply, reason, logger, discrepancy)) {
        return { outcome: 'pending', reason, ...counts };
      }
    }
    return dismantledOutcome(id, what, discrepancy, counts);
  }
  if (seen.state === 'there') {
    // The service refused, and the line is still there: it did not act. (A refusal seen with the
    // line's state unknown proves nothing: an earlier attempt of the same DELETE may have acted.)
    if (failure instanceof HttpStatusError && !failure.retryable) throw failure;
    // No usable reply and the line is still there: the DELETE did not act.
    if (reply === undefined) throw deadlineReason(ctx.signal) ?? failure;
    if (reply.status === 404 || reply.status === 410) {
      throw new HousekeepingError(`line ${id}: DELETE answered ${reply.status} but ${seen.how}; kept`);
    }
  }
  // Taken but not done (202), or nothing known: a later run confirms it.
  const reason = `DELETE ${sent}, but ${seen.how}: pending, a later run confirms it`;
  await keepPending(ctx, id, reply, reason, logger);
  return { outcome: 'pending', reason, ...counts };
}

/**
 * A line gone by our DELETE: dismantled, or, when what spoke of the DELETE (`what`) stated other
 * files than the archive, failed with the discrepancy (reported loudly, as a conflict).
 */
export function dismantledOutcome(
  id: string,
  what: string,
  discrepancy: string | undefined,
  counts: FileCounts,
): LineOutcome {
  if (discrepancy === undefined) return { outcome: 'dismantled', ...counts };
  return {
    outcome: 'failed',
    reason: `line ${id}: dismantled, but ${what} states files other than the archive: ${discrepancy}`,
    errorName: 'ConflictError',
    conflict: true,
    dismantled: true,
    ...counts,
  };
}

/** What is known of the line after its DELETE, and how. */
type Seen =
  | { readonly state: 'gone'; readonly how: string; readonly stated: FilesStatement | undefined }
  | { readonly state: 'there' | 'unknown'; readonly how: string };

const REPLY_CONFIRMS = 'the reply (200, status deleted)';

/**
 * The time allowed to record a DELETE's outcome (its confirming GET, the receipt or marker):
 * half of `DEADLINE_RESERVE_MS`, at least 2 s, from now; not the run's deadline.
 */
function finishingSignal(ctx: LineContext): AbortSignal {
  return AbortSignal.timeout(Math.max(2_000, ctx.config.deadlineReserveMs / 2));
}

/**
 * A GET of the line after its DELETE: `gone` (404, 410, or this line's document with status
 * deleted, and the files it states), `there` (this line, another status), or `unknown` (the GET
 * failed, or its document is not this line's or not readable: it confirms nothing).
 */
async function lookAfter(ctx: LineContext, id: string, signal: AbortSignal): Promise<Seen> {
  let reply: LineRead;
  try {
    reply = await ctx.api.getLine(id, { signal, urgent: true });
  } catch (error) {
    if (error instanceof DocumentError) {
      return { state: 'unknown', how: `the GET after it confirms nothing (${error.message})` };
    }
    return { state: 'unknown', how: `the line could not be read after it (${describeError(error)})` };
  }
  if (reply.kind === 'gone') return { state: 'gone', how: `GET answered ${reply.status}`, stated: undefined };
  const { line } = reply;
  if (line.status !== 'deleted') {
    return { state: 'there', how: `GET still shows the line (status ${line.status})` };
  }
  return { state: 'gone', how: 'GET shows status deleted', stated: line.deletedStatement };
}

/** Why a line seen gone is reported pending: its receipt could not be written (`why`). */
function unrecordedReason(confirmation: string, why: string, state: 'pending' | 'still pending'): string {
  return `dismantled (${confirmation}), but its receipt could not be written (${why}): ${state}, a later run writes it`;
}

/** Discrepancies found by different documents, each once, as one text; undefined when none. */
function joinDiscrepancies(found: readonly (string | undefined)[]): string | undefined {
  const each = [...new Set(found.flatMap((text) => (text === undefined ? [] : text.split('; '))))];
  return each.length === 0 ? undefined : each.join('; ');
}

/**
 * Writes the receipt of a line whose DELETE an earlier run saw taken (202): the files its
 * manifest states (all archived then), and how the files the confirming document states (when it
 * states them) differ from them; undefined when there is no such marker.
 */
export async function confirmPending(
  ctx: LineContext,
  id: string,
  seen: { readonly how: string; readonly stated: FilesStatement | undefined },
  logger: Logger,
): Promise<PendingConfirmed | undefined> {
  // A dry or archive-only run dismantles nothing, and confirms nothing either.
  if (ctx.request.dryRun || ctx.request.archiveOnly) return undefined;
  const { archive } = ctx;
  const { how } = seen;
  const marker = await ctx.retry(() => archive.readPendingMarker(id));
  if (marker === undefined) return undefined;
  // Confirmed already (by a later DELETE, or another run): that receipt stands, and so does its count.
  if (await ctx.retry(() => archive.hasReceipt(id))) {
    throw new LineSkippedError(`not found (${how}); already dismantled, its receipt is kept`, true);
  }
  const manifest = await ctx.retry(() => archive.readManifest(id));
  // Every statement that speaks of this DELETE: the reply the marker kept, what a later run saw
  // the line state while it was still there, and what confirms it now.
  const statedSince: FilesStatement | undefined =
    marker.statedSince === undefined ? undefined : { files: marker.statedSince };
  const differenceOf = (stated: FilesStatement | undefined): string | undefined =>
    stated === undefined || (stated.files === undefined && stated.filesProblem === undefined)
      ? undefined
      : manifest === undefined
        ? 'the line states files, and no manifest of it can be read'
        : statedDifference(manifest.files, stated);
  // What confirms it now: kept in the marker if this run cannot write the receipt either.
  const fromGet = differenceOf(seen.stated);
  const discrepancy = joinDiscrepancies([
    // Found by a run that saw the DELETE done and could not write its receipt.
    marker.discrepancy,
    differenceOf(keptReplyStatement((of, body) => ctx.api.readKeptReply(of, body), id, marker.reply)),
    differenceOf(statedSince),
    fromGet,
  ]);
  const finishing = finishingSignal(ctx);
  const confirmation = `${how} (the DELETE was taken by run ${marker.runId} at ${marker.at})`;
  const unrecorded = await keepReceipt(
    ctx,
    receiptOf(ctx, id, {
      ...(marker.reply === undefined ? {} : { reply: marker.reply }),
      confirmation,
      ...(discrepancy === undefined ? {} : { discrepancy }),
    }),
    finishing,
    logger,
  );
  if (unrecorded !== undefined && fromGet !== undefined) {
    // A later GET may say only 404: what this one stated must not be lost with the receipt.
    await noteInMarker(
      ctx,
      id,
      (held) => ({ ...held, discrepancy: joinDiscrepancies([held.discrepancy, fromGet]) as string }),
      logger,
    );
  }
  return {
    files: manifest?.files.length ?? 0,
    ...(discrepancy === undefined ? {} : { discrepancy }),
    // The marker stays: the run that writes the receipt counts the line.
    ...(unrecorded === undefined
      ? {}
      : {
          unrecorded: unrecordedReason(confirmation, unrecorded, 'still pending'),
        }),
  };
}

/** A pending DELETE seen done: the files of its manifest, a discrepancy, and why no receipt (if none). */
export interface PendingConfirmed {
  readonly files: number;
  readonly discrepancy?: string;
  readonly unrecorded?: string;
}

/**
 * Keeps, in the line's pending marker (when there is one), what the line states now: it was read
 * still there, and its files are not all archived as stated. Never fails the line for it.
 */
export async function notePendingStatement(
  ctx: LineContext,
  id: string,
  line: {
    readonly files: readonly { readonly name: string; readonly size: number; readonly sha256: string }[];
  },
  logger: Logger,
): Promise<void> {
  if (ctx.request.dryRun) return;
  const statedSince = line.files.map(({ name, size, sha256 }) => ({ name, size, sha256 }));
  await noteInMarker(ctx, id, (marker) => ({ ...marker, statedSince }), logger);
}
