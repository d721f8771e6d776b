import type { Logger } from '@aws-lambda-powertools/logger';
import type { Manifest, Receipt } from '../../archive/archive.ts';
import {
  DocumentError,
  deadlineReason,
  describeError,
  LineSkippedError,
  TokensApiError,
} from '../../shared/errors.ts';
import type { LineFile } from '../../shared/ids.ts';
import { redactBytes, redactJsonText, redactText } from '../../shared/redact.ts';
import type { DeleteReply } from '../../tokens/api.ts';
import { parseDeleteReply } from '../../tokens/document.ts';
import type { FileCounts } from '../types.ts';
import { differences } from './compare.ts';
import type { LineContext, LineOutcome } from './context.ts';
import { checkStopped, getLineOrGone } from './context.ts';
/**
 * Sends the DELETE, confirms what it achieved, and keeps the receipt. Once the DELETE is sent,
 * its outcome is the service's record: what follows (the confirming GET, the receipt or the
 * pending marker) runs in a window of its own, even past the run's deadline.
 */
export async function dismantle(
  ctx: LineContext,
  id: string,
  manifest: Manifest,
  counts: FileCounts,
  logger: Logger,
): Promise<LineOutcome> {
  const { api } = ctx;
  checkStopped(ctx);
  let reply: DeleteReply | undefined;
  let unanswered: unknown;
  try {
    reply = await api.deleteLine(id);
  } catch (error) {
    // A 4xx is the service refusing: it did not act, and the line stays.
    if (error instanceof TokensApiError && error.status !== undefined && error.status < 500) throw error;
    // No usable answer (a 5xx from a gateway, a timeout, the deadline, a dropped connection):
    // the DELETE may have been carried out. Look before saying anything.
    unanswered = error;
  }
  const finishing = finishingSignal(ctx);
  let confirmation: string;
  let discrepancy: string | undefined;
  const replied = reply === undefined ? undefined : confirmedByReply(id, reply);
  if (replied !== undefined) {
    confirmation = 'the reply (200, status deleted)';
    discrepancy = replied.files === undefined ? undefined : differences(manifest.files, replied.files);
  } else {
    let seen: { gone: boolean; how: string };
    try {
      seen = await seenGone(ctx, id, finishing);
    } catch (error) {
      // Neither the DELETE's outcome nor the line's state is known: a later run confirms it.
      const what =
        reply === undefined
          ? `got no usable reply (${describeError(unanswered)})`
          : `answered ${reply.status}`;
      const reason = `DELETE ${what}, and the line could not be read after it (${describeError(error)}): pending, a later run confirms it`;
      await keepPending(ctx, id, reply, reason, finishing, logger);
      return { kind: 'pending', reason, ...counts };
    }
    if (seen.gone) {
      confirmation = reply === undefined ? `${seen.how}, after a DELETE with no usable reply` : seen.how;
    } else if (reply === undefined) {
      // The DELETE did not act: the line is still there, and so is its archive.
      throw deadlineReason(ctx.signal) ?? unanswered;
    } else if (reply.status === 404 || reply.status === 410) {
      throw new TokensApiError(`DELETE answered ${reply.status} but ${seen.how}`, {
        method: 'DELETE',
        url: api.lineUrl(id).href,
        status: reply.status,
        retryable: false,
      });
    } else {
      const reason = `DELETE answered ${reply.status}${reply.status === 200 ? ' with an unexpected reply' : ''}, but ${seen.how}: pending, the next run confirms it`;
      await keepPending(ctx, id, reply, reason, finishing, logger);
      return { kind: 'pending', reason, ...counts };
    }
  }
  await keepReceipt(
    ctx,
    receiptOf(ctx, id, {
      ...(reply !== undefined && isTaken(reply) ? { reply: replyRecord(reply) } : {}),
      confirmation,
      ...(discrepancy === undefined ? {} : { discrepancy }),
    }),
    finishing,
    logger,
  );
  if (discrepancy !== undefined) {
    return {
      kind: 'failed',
      reason: `line ${id}: dismantled, but its DELETE reply states files other than the archive: ${discrepancy}`,
      ...counts,
    };
  }
  return { kind: 'dismantled', ...counts };
}

/**
 * The time allowed to record a DELETE's outcome (its confirming GET, the receipt or marker):
 * half of `DEADLINE_RESERVE_MS`, at least 2 s, from now; not the run's deadline.
 */
function finishingSignal(ctx: LineContext): AbortSignal {
  return AbortSignal.timeout(Math.max(2_000, ctx.config.deadlineReserveMs / 2));
}

/** The DELETE reply's files when it is a 200 describing this line as deleted; undefined otherwise. */
function confirmedByReply(
  id: string,
  reply: DeleteReply,
): { files: readonly LineFile[] | undefined } | undefined {
  if (reply.status !== 200) return undefined;
  try {
    return parseDeleteReply(reply.document, id);
  } catch (error) {
    if (error instanceof DocumentError) return undefined;
    throw error;
  }
}

/** Whether a GET shows the line gone, and how. */
export async function seenGone(
  ctx: LineContext,
  id: string,
  signal?: AbortSignal,
): Promise<{ gone: boolean; how: string }> {
  const reply = await getLineOrGone(ctx, id, signal);
  if (typeof reply === 'number') return { gone: true, how: `GET answered ${reply}` };
  const status = (reply.value as { data?: { attributes?: { status?: unknown } } } | undefined)?.data
    ?.attributes?.status;
  if (status === 'deleted') return { gone: true, how: 'GET shows status deleted' };
  return { gone: false, how: `GET still shows the line (status ${String(status)})` };
}

/**
 * Keeps the receipt. The line is gone from the service and its archive is complete: a receipt
 * that cannot be written is logged, not a failure, which would send an operator after a line
 * that no longer exists.
 */
export async function keepReceipt(
  ctx: LineContext,
  receipt: Receipt,
  signal: AbortSignal,
  logger: Logger,
): Promise<void> {
  try {
    const written = await ctx.retry(() => ctx.archive.writeReceipt(receipt, signal), signal);
    if (written !== 'written') logger.info('receipt', { receipt: written });
  } catch (error) {
    logger.error('line dismantled, but its receipt could not be written', { reason: describeError(error) });
  }
}

export async function keepPending(
  ctx: LineContext,
  id: string,
  reply: DeleteReply | undefined,
  note: string,
  signal: AbortSignal,
  logger: Logger,
): Promise<void> {
  try {
    await ctx.retry(
      () =>
        ctx.archive.writePendingMarker(
          {
            lineId: id,
            runId: ctx.runId,
            at: new Date(ctx.now()).toISOString(),
            ...(reply === undefined ? {} : { reply: replyRecord(reply) }),
            note,
          },
          signal,
        ),
      signal,
    );
  } catch (error) {
    logger.error('DELETE pending, and its marker could not be written', { reason: describeError(error) });
  }
}

/**
 * Writes the receipt of a line whose DELETE an earlier run saw taken (202): the files its
 * manifest states (all archived then), or undefined when there is no such marker.
 */
export async function confirmPending(
  ctx: LineContext,
  id: string,
  how: string,
  logger: Logger,
): Promise<number | undefined> {
  // A dry or archive-only run dismantles nothing, and confirms nothing either.
  if (ctx.request.dryRun || ctx.request.archiveOnly) return undefined;
  const { archive } = ctx;
  const marker = await ctx.retry(() => archive.readPendingMarker(id));
  if (marker === undefined) return undefined;
  // Confirmed already (by a later DELETE, or another run): that receipt stands, and so does its count.
  if (await ctx.retry(() => archive.hasReceipt(id))) {
    throw new LineSkippedError(`not found (${how}); already dismantled, its receipt is kept`, true);
  }
  const manifest = await ctx.retry(() => archive.readManifest(id));
  const finishing = finishingSignal(ctx);
  await keepReceipt(
    ctx,
    receiptOf(ctx, id, {
      ...(marker.reply === undefined ? {} : { reply: marker.reply }),
      confirmation: `${how} (the DELETE was taken by run ${marker.runId} at ${marker.at})`,
    }),
    finishing,
    logger,
  );
  return manifest?.files.length ?? 0;
}

function isTaken(reply: DeleteReply): boolean {
  return reply.status >= 200 && reply.status < 300;
}

/**
 * The reply as received: its text when it is UTF-8 (JSON always is), otherwise its bytes in base64;
 * a session key the service echoed in it is replaced by a marker, and the record says so.
 */
function replyRecord(reply: DeleteReply): NonNullable<Receipt['reply']> {
  const status = reply.status;
  const contentType = redactText(reply.contentType);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(reply.bytes);
  } catch {
    const bytes = redactBytes(reply.bytes);
    return {
      status,
      contentType,
      bodyBase64: (bytes ?? reply.bytes).toString('base64'),
      ...(bytes !== undefined || contentType !== reply.contentType ? { sessionKeyRedacted: true } : {}),
    };
  }
  const body = redactJsonText(text);
  return {
    status,
    contentType,
    body: body ?? text,
    ...(body !== undefined || contentType !== reply.contentType ? { sessionKeyRedacted: true } : {}),
  };
}

/** A receipt of this run for line `id`: the reply (when there was one) and how the line was seen gone. */
function receiptOf(
  ctx: LineContext,
  id: string,
  fields: Pick<Receipt, 'reply' | 'confirmation' | 'discrepancy'>,
): Receipt {
  return { schemaVersion: 2, lineId: id, runId: ctx.runId, at: new Date(ctx.now()).toISOString(), ...fields };
}
