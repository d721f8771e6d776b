import type { Logger } from '@aws-lambda-powertools/logger';
import { describeError } from '../../shared/errors.ts';
import type { DeleteReply } from '../../shared/ports/tokens.ts';
import type { PendingMarker, Receipt } from '../../shared/records.ts';
import type { LineContext } from './context.ts';
import { isTaken, replyRecord } from './delete-reply.ts';

/**
 * The records of a DELETE: the receipt of a line seen gone, and the pending marker of one not yet
 * confirmed, each written in a window of its own (the run's deadline may have passed).
 */

/**
 * The time allowed to write a pending marker (or amend one) after the DELETE's own window: a
 * quarter of `DEADLINE_RESERVE_MS`, at least 1 s, so the two stay within the reserve.
 */
function markerSignal(ctx: LineContext): AbortSignal {
  return AbortSignal.timeout(Math.max(1_000, ctx.config.deadlineReserveMs / 4));
}

/**
 * Keeps the receipt: undefined once it is written (or another pass's stands), otherwise why not.
 * The line is gone from the service and its archive is complete: a receipt that cannot be written
 * is logged, and the line is left pending (its marker says so) for a later run to write it. A
 * write that failed may still have landed (its reply lost): one look finds such a receipt, which
 * then stands.
 */
export async function keepReceipt(
  ctx: LineContext,
  receipt: Receipt,
  signal: AbortSignal,
  logger: Logger,
): Promise<string | undefined> {
  try {
    const written = await ctx.retry(() => ctx.archive.writeReceipt(receipt, signal), signal);
    if (written !== 'written') logger.info('receipt', { receipt: written });
    return undefined;
  } catch (error) {
    const reason = describeError(error);
    if (await ownReceiptThere(ctx, receipt, signal)) {
      logger.warn('receipt write reported a failure, but the receipt is there', { reason });
      return undefined;
    }
    logger.error('line dismantled, but its receipt could not be written', { reason });
    return reason;
  }
}

/**
 * Whether `receipt` itself is in the archive (a write whose reply was lost): one read in a short
 * window of its own. Another pass's receipt does not count (it may hold less: no reply, no
 * discrepancy), nor does a read that fails.
 */
async function ownReceiptThere(ctx: LineContext, receipt: Receipt, signal: AbortSignal): Promise<boolean> {
  try {
    const look = AbortSignal.any([signal, AbortSignal.timeout(LOOK_MS)]);
    return (await ctx.archive.receiptRunId(receipt.lineId, look)) === receipt.runId;
  } catch {
    return false;
  }
}

/** How long the one look for a receipt whose write reported a failure may take. */
const LOOK_MS = 2_000;

/**
 * Writes the line's pending marker, in a window of its own (a receipt that failed may have used
 * up the last one): the reply when it took the DELETE (2xx; any other status is only in the
 * note), and a discrepancy already found that the reply does not hold. True once it is written; a
 * marker that cannot be written is logged.
 */
export async function keepPending(
  ctx: LineContext,
  id: string,
  reply: DeleteReply | undefined,
  note: string,
  logger: Logger,
  discrepancy?: string,
): Promise<boolean> {
  const signal = markerSignal(ctx);
  try {
    await ctx.retry(
      () =>
        ctx.archive.writePendingMarker(
          {
            lineId: id,
            runId: ctx.runId,
            at: new Date(ctx.now()).toISOString(),
            ...(reply === undefined || !isTaken(reply) ? {} : { reply: replyRecord(reply) }),
            note,
            ...(discrepancy === undefined ? {} : { discrepancy }),
          },
          signal,
        ),
      signal,
    );
    return true;
  } catch (error) {
    logger.error('DELETE pending, and its marker could not be written', { reason: describeError(error) });
    return false;
  }
}

/**
 * Amends the line's pending marker, if it has one, over the marker as read only (its version): a
 * newer one (another pass's DELETE) is amended in turn, never replaced. Never fails the line.
 */
export async function noteInMarker(
  ctx: LineContext,
  id: string,
  amend: (marker: PendingMarker) => PendingMarker,
  logger: Logger,
): Promise<void> {
  const signal = markerSignal(ctx);
  try {
    const noted = await ctx.retry(() => ctx.archive.amendPendingMarker(id, amend, signal), signal);
    if (noted === 'contended') {
      logger.warn('a pending DELETE marker could not be amended', { reason: 'it changed at every look' });
    }
  } catch (error) {
    logger.warn('a pending DELETE marker could not be amended', { reason: describeError(error) });
  }
}

/** A receipt of this run for line `id`: the reply (when there was one) and how the line was seen gone. */
export function receiptOf(
  ctx: LineContext,
  id: string,
  fields: Pick<Receipt, 'reply' | 'confirmation' | 'discrepancy'>,
): Receipt {
  return { schemaVersion: 2, lineId: id, runId: ctx.runId, at: new Date(ctx.now()).toISOString(), ...fields };
}
