import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { QueueError } from '../shared/errors.ts';
import type { SendFailure, WorkQueue } from '../shared/ports/queue.ts';
import { SQS_BATCH_LIMIT } from '../shared/work-message.ts';

export type { QueueEntry, SendFailure, WorkQueue } from '../shared/ports/queue.ts';
export {
  encodeWorkMessage,
  parseWorkMessage,
  SQS_BATCH_LIMIT,
  type WorkMessage,
} from '../shared/work-message.ts';

/** The work queue over SQS `SendMessageBatch` (which only needs `sqs:SendMessage`). */
export function sqsWorkQueue(client: SQSClient, queueUrl: string): WorkQueue {
  return {
    async sendBatch(entries) {
      if (entries.length > SQS_BATCH_LIMIT)
        throw new QueueError(`${entries.length} entries in one batch, at most ${SQS_BATCH_LIMIT}`);
      const reply = await client.send(
        new SendMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: entries.map(({ id, body }) => ({ Id: id, MessageBody: body })),
        }),
      );
      const accepted = new Set((reply.Successful ?? []).map((entry) => entry.Id));
      const failures: SendFailure[] = (reply.Failed ?? []).map((entry) => ({
        id: entry.Id ?? '?',
        reason: `${entry.Code ?? 'error'}: ${entry.Message ?? 'no message'}`,
        // SenderFault: the entry itself is wrong, and will be wrong again.
        retryable: entry.SenderFault !== true,
      }));
      const reported = new Set(failures.map((failure) => failure.id));
      // An entry neither accepted nor refused was not acknowledged: send it again.
      for (const { id } of entries) {
        if (!accepted.has(id) && !reported.has(id))
          failures.push({ id, reason: 'not acknowledged', retryable: true });
      }
      return failures;
    },
  };
}
