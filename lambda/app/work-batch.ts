import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { workItems } from '../core/fanout-worker.ts';
import type { Config, Deps, RunContext, Summary, WorkItem } from '../core/types.ts';
import { describeError } from '../shared/errors.ts';
import { parseWorkMessage } from '../shared/work-message.ts';

/** What a worker did with one SQS batch. */
export interface BatchReport {
  /** The partial batch response: the messages to leave in the queue. */
  readonly response: SQSBatchResponse;
  /** One summary per run the batch's messages came from (usually one). */
  readonly summaries: readonly Summary[];
  /** Messages whose body is not a work message. */
  readonly malformed: number;
}

/**
 * An SQS batch of the work queue, worked: each body is read as a work message, the messages read
 * go to the core ({@link workItems}), and the response lists the messages to leave in the queue
 * (`batchItemFailures`, in the batch's order): the core's failed and deferred lines, and the
 * malformed bodies (which SQS then moves to the dead-letter queue). Never throws for a message.
 */
export async function workBatch(
  deps: Deps,
  config: Config,
  event: SQSEvent,
  context: Pick<RunContext, 'remainingMs'> = {},
): Promise<BatchReport> {
  const records = event.Records ?? [];
  const failures = new Set<string>();
  const items: WorkItem[] = [];
  let malformed = 0;
  for (const record of records) {
    try {
      items.push({ messageId: record.messageId, message: parseWorkMessage(record.body, deps.now) });
    } catch (error) {
      malformed += 1;
      failures.add(record.messageId);
      deps.logger.error(
        'message is not a work message; it goes to the dead-letter queue after its receives',
        {
          messageId: record.messageId,
          receiveCount: record.attributes?.ApproximateReceiveCount,
          reason: describeError(error),
        },
      );
    }
  }
  const report = await workItems(deps, config, items, context);
  for (const id of report.retry) failures.add(id);
  const order = records.map((record) => record.messageId).filter((id) => failures.has(id));
  return {
    response: { batchItemFailures: order.map((itemIdentifier) => ({ itemIdentifier })) },
    summaries: report.summaries,
    malformed,
  };
}
