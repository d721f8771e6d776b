import type { SQSEvent, SQSRecord } from 'aws-lambda';

/** What a test says about one message; the rest of the record is filled in as Lambda would. */
export interface MessageSpec {
  readonly messageId: string;
  readonly body: string;
  readonly receiveCount?: number;
  readonly receiptHandle?: string;
}

export const WORK_QUEUE_ARN = 'arn:aws:sqs:us-east-1:000000000000:tokens-work';

/** One SQS record as the event source mapping delivers it to the worker. */
export function sqsRecord(spec: MessageSpec): SQSRecord {
  const now = String(Date.now());
  return {
    messageId: spec.messageId,
    receiptHandle: spec.receiptHandle ?? `handle-${spec.messageId}`,
    body: spec.body,
    attributes: {
      ApproximateReceiveCount: String(spec.receiveCount ?? 1),
      SentTimestamp: now,
      SenderId: 'AIDAPLANNER',
      ApproximateFirstReceiveTimestamp: now,
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: WORK_QUEUE_ARN,
    awsRegion: 'us-east-1',
  };
}

/** An SQS event of these messages, in order. */
export function sqsEvent(specs: readonly MessageSpec[]): SQSEvent {
  return { Records: specs.map(sqsRecord) };
}
