import type { Readable } from 'node:stream';
import { ArchiveError, describeError } from '../shared/errors.ts';
import { sameLineId } from '../shared/ids.ts';
import type { Archive } from '../shared/ports/archive.ts';
import type { FilesStatement, ReadKeptReply } from '../shared/ports/tokens.ts';
import { asReceipt, type Manifest, type StoredReceipt } from '../shared/records.ts';
import { shownWhole } from '../shared/redact.ts';
import { statedDifference } from './line/compare.ts';
import { keptReplyStatement } from './line/delete-reply.ts';

/**
 * The audit's reading of a dismantled line's receipt: read (bounded), and held to its line and
 * the line's manifest.
 */

/** A receipt is a small JSON document; one this large is not ours (a DELETE reply is at most 64 MiB). */
const MAX_RECEIPT_BYTES = 96 * 2 ** 20;

/** A line's receipt as the audit found it. */
export type ReceiptFound =
  | { readonly kind: 'none' }
  | { readonly kind: 'read'; readonly stored: StoredReceipt }
  | { readonly kind: 'unreadable'; readonly problem: string };

/** The line's receipt. A failed read is thrown: the audit cannot say the line is as recorded. */
export async function readReceipt(archive: Archive, id: string, signal?: AbortSignal): Promise<ReceiptFound> {
  const key = archive.receiptKey(id);
  let body: Readable | undefined;
  try {
    body = await archive.openObject(key, signal);
  } catch (error) {
    throw new ArchiveError(key, `GetObject failed: ${describeError(error)}`, { cause: error });
  }
  if (body === undefined) return { kind: 'none' };
  const unreadable = (why: string): ReceiptFound => ({
    kind: 'unreadable',
    problem: `the receipt cannot be read as one: ${why}`,
  });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > MAX_RECEIPT_BYTES) {
      body.destroy();
      return unreadable(`larger than ${MAX_RECEIPT_BYTES} bytes`);
    }
    chunks.push(Buffer.from(chunk));
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return unreadable('not JSON');
  }
  const stored = asReceipt(value);
  return stored === undefined
    ? unreadable('not a receipt of this version nor of the previous one')
    : { kind: 'read', stored };
}

/** The discrepancy a receipt records, when it records one. */
export function recordedDiscrepancy(stored: StoredReceipt): string | undefined {
  if (stored.schemaVersion !== 2) return undefined;
  const { discrepancy } = stored.receipt;
  return discrepancy === undefined || discrepancy === '' ? undefined : discrepancy;
}

/** How a receipt disagrees with its line and the line's manifest, in words; empty when it agrees. */
export function receiptProblems(
  id: string,
  found: Exclude<ReceiptFound, { kind: 'none' }>,
  manifest: Manifest | undefined,
  read: ReadKeptReply,
): string[] {
  if (found.kind === 'unreadable') return [found.problem];
  const { stored } = found;
  const problems: string[] = [];
  if (!sameLineId(stored.receipt.lineId, id)) {
    problems.push(
      `the receipt is of line ${JSON.stringify(shownWhole(stored.receipt.lineId, 80))}, not of this line`,
    );
  }
  if (manifest === undefined) {
    problems.push(
      'a receipt, and no readable manifest: the line was dismantled with no record of what was archived',
    );
    return problems;
  }
  // A recorded discrepancy says this already, as a finding of its own.
  if (recordedDiscrepancy(stored) !== undefined) return problems;
  const stated = replyFiles(read, id, stored);
  const difference = stated === undefined ? undefined : statedDifference(manifest.files, stated);
  if (difference !== undefined) {
    problems.push(`the DELETE reply states other files than the manifest: ${difference}`);
  }
  return problems;
}

/**
 * The files the recorded DELETE reply states, when it is this line's document with status
 * `deleted` and files (the same reading the pass gives a reply); undefined otherwise: a reply
 * that is no such document (204, 202, a gateway's page) confirmed nothing, and states nothing.
 */
function replyFiles(read: ReadKeptReply, id: string, stored: StoredReceipt): FilesStatement | undefined {
  if (stored.schemaVersion === 1) {
    // The previous release kept the reply's document itself: read as the text it is written as.
    const { reply } = stored.receipt;
    return reply === undefined ? undefined : read(id, JSON.stringify(reply));
  }
  return keptReplyStatement(read, id, stored.receipt.reply);
}
