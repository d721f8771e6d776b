import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { expect } from 'vitest';
import { summarize } from '../../lambda/core/summary.ts';
import type { FanoutPlan, LineRecord, Summary } from '../../lambda/core/types.ts';
import { LOCAL_AWS_ENV, type LocalStack, type LocalStackOptions, startLocalStack } from '../local/stack.ts';
import { listKeys, objectJson } from './archive-inspect.ts';
import { sqsEvent } from './sqs-event.ts';

/** Receives before SQS moves a message to the dead-letter queue (the stack uses 3). */
export const MAX_RECEIVE_COUNT = 2;
/** Messages per worker invocation (the stack's batch size). */
const BATCH_SIZE = 4;

/** The local stack, a work queue with its dead-letter queue, and the environment of both functions. */
export interface FanoutStack {
  readonly local: LocalStack;
  readonly env: Record<string, string>;
  readonly sqs: SQSClient;
  readonly queueUrl: string;
  readonly dlqUrl: string;
  close(): Promise<void>;
}

/**
 * The local stack plus a work queue and its dead-letter queue on the same fauxqs server, and the
 * environment of both functions. Queue URLs are built on the server's address: fauxqs names them
 * `sqs.<region>.127.0.0.1`, which is not a valid URL host.
 */
export async function startFanoutStack(options: LocalStackOptions = {}): Promise<FanoutStack> {
  const local = await startLocalStack({ ...options, env: { RETRY_ATTEMPTS: '2', ...options.env } });
  const dlq = local.s3.createQueue('tokens-work-dlq');
  local.s3.createQueue('tokens-work', {
    attributes: {
      VisibilityTimeout: '60',
      RedrivePolicy: JSON.stringify({
        deadLetterTargetArn: dlq.queueArn,
        maxReceiveCount: MAX_RECEIVE_COUNT,
      }),
    },
  });
  const queueUrl = `${local.s3.address}/000000000000/tokens-work`;
  const dlqUrl = `${local.s3.address}/000000000000/tokens-work-dlq`;
  const env = { ...local.env, QUEUE_URL: queueUrl, AWS_ENDPOINT_URL_SQS: local.s3.address };
  const sqs = new SQSClient({
    endpoint: local.s3.address,
    region: LOCAL_AWS_ENV.AWS_REGION,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  return {
    local,
    env,
    sqs,
    queueUrl,
    dlqUrl,
    async close() {
      sqs.destroy();
      await local.close();
    },
  };
}

/** A worker function as the event source mapping invokes it. */
export type Worker = (event: SQSEvent) => Promise<SQSBatchResponse>;

/**
 * Stands in for Lambda's event source mapping: receive a batch, invoke the worker with it, delete
 * the messages it did not report; a reported one is made visible again at once (standing in for
 * its visibility timeout running out), until SQS moves it to the dead-letter queue.
 */
export async function drain(stack: FanoutStack, worker: Worker, batchSize = BATCH_SIZE): Promise<number> {
  let invocations = 0;
  for (let round = 0; round < 100; round++) {
    const { Messages = [] } = await stack.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: stack.queueUrl,
        MaxNumberOfMessages: batchSize,
        WaitTimeSeconds: 0,
        MessageSystemAttributeNames: ['All'],
      }),
    );
    if (Messages.length === 0) return invocations;
    invocations += 1;
    const response = await worker(
      sqsEvent(
        Messages.map((m: Message) => ({
          messageId: m.MessageId ?? '?',
          body: m.Body ?? '',
          receiptHandle: m.ReceiptHandle ?? '?',
          receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? '1'),
        })),
      ),
    );
    const failed = new Set(response.batchItemFailures.map((failure) => failure.itemIdentifier));
    for (const message of Messages) {
      const handle = { QueueUrl: stack.queueUrl, ReceiptHandle: message.ReceiptHandle };
      if (failed.has(message.MessageId ?? '?')) {
        await stack.sqs.send(new ChangeMessageVisibilityCommand({ ...handle, VisibilityTimeout: 0 }));
      } else {
        await stack.sqs.send(new DeleteMessageCommand(handle));
      }
    }
  }
  throw new Error('the queue did not drain in 100 rounds');
}

/** Messages in a queue, visible or in flight. */
export async function messagesIn(stack: FanoutStack, queueUrl: string): Promise<number> {
  const { Attributes = {} } = await stack.sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return (
    Number(Attributes.ApproximateNumberOfMessages) + Number(Attributes.ApproximateNumberOfMessagesNotVisible)
  );
}

/** The bodies waiting in a queue, inspected on the server (receiving would count as a delivery). */
export function bodiesIn(stack: FanoutStack, name: string): string[] {
  const queue = stack.local.s3.inspectQueue(name);
  const messages = [
    ...(queue?.messages.ready ?? []),
    ...(queue?.messages.inflight.map((m) => m.message) ?? []),
  ];
  return messages.map((message) => message.body).sort();
}

/** The key of a run's report, `tokens/_runs/{date}/{runId}.json`, as found in the bucket. */
export async function runReportKey(local: LocalStack, runId: string): Promise<string> {
  const key = (await listKeys(local.s3Client, local.bucket, 'tokens/_runs/')).find((k) =>
    k.endsWith(`/${runId}.json`),
  );
  expect(key, 'the planner run report').toBeDefined();
  return key ?? '';
}

/** The record a worker kept of one line of a run, `tokens/_runs/{date}/{runId}/lines/{id}.json`. */
export async function lineRecordOf(local: LocalStack, runId: string, lineId: string): Promise<LineRecord> {
  const folder = (await runReportKey(local, runId)).replace(/\.json$/, '/lines/');
  return (await objectJson(local.s3Client, local.bucket, `${folder}${lineId}.json`)) as LineRecord;
}

/**
 * The whole run, from what it left in the bucket: the planner's report and one record per line
 * written by the workers, summed up the way a single-mode pass sums its lines.
 */
export async function wholeRun(local: LocalStack, runId: string): Promise<Summary> {
  const reportKey = await runReportKey(local, runId);
  const report = (await objectJson(local.s3Client, local.bucket, reportKey)) as { summary: FanoutPlan };
  const plan = report.summary;
  const recordKeys = await listKeys(local.s3Client, local.bucket, reportKey.replace(/\.json$/, '/lines/'));
  const records = await Promise.all(
    recordKeys.map(async (key) => (await objectJson(local.s3Client, local.bucket, key)) as LineRecord),
  );
  return summarize(
    records.map((record) => record.result),
    {
      runId,
      dryRun: false,
      archiveOnly: plan.archiveOnly,
      listed: plan.listed,
      finished: plan.finished,
      skipped: plan.skipped,
      deferred: plan.deferred,
      tally: { retries: plan.retries, hashMismatches: 0, hashMismatchAttempts: 0 },
      durationMs: plan.durationMs,
    },
  );
}
