import { describeError, HttpStatusError } from '../../shared/errors.ts';
import type { DeleteReply, FilesStatement, ReadKeptReply } from '../../shared/ports/tokens.ts';
import type { Receipt } from '../../shared/records.ts';
import { redactBytes, redactJsonText, redactText } from '../../shared/redact.ts';

/**
 * A DELETE's reply, read: what it says in words, what it states of the line, the record a receipt
 * or a pending marker keeps of it, and what a kept reply states when read again.
 */

/** The DELETE as it went, in words: `answered 204`, `got no usable reply (…)`. */
export function describeDelete(reply: DeleteReply | undefined, failure: unknown): string {
  if (reply !== undefined) {
    return `answered ${reply.status}${reply.status === 200 && !reply.readable ? ' with a body that is not a readable document' : ''}`;
  }
  if (failure instanceof HttpStatusError && !failure.retryable)
    return `was refused (${describeError(failure)})`;
  return `got no usable reply (${describeError(failure)})`;
}

/** What a 2xx reply's document states of this line, deleted; undefined when it is no such document. */
export function replyStatement(reply: DeleteReply): FilesStatement | undefined {
  return isTaken(reply) ? reply.statement : undefined;
}

/**
 * What a reply kept in a marker or receipt states of this line, deleted: a 2xx reply's text, as
 * the service's reader (`read`) reads it; undefined for any other.
 */
export function keptReplyStatement(
  read: ReadKeptReply,
  id: string,
  kept: Receipt['reply'] | undefined,
): FilesStatement | undefined {
  if (kept?.body === undefined || kept.body === '' || kept.status < 200 || kept.status >= 300)
    return undefined;
  return read(id, kept.body);
}

export function isTaken(reply: DeleteReply): boolean {
  return reply.status >= 200 && reply.status < 300;
}

/**
 * The reply as received: its text when it is UTF-8 (JSON always is), otherwise its bytes in base64;
 * a session key the service echoed in it is replaced by a marker, and the record says so.
 */
export function replyRecord(reply: DeleteReply): NonNullable<Receipt['reply']> {
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
