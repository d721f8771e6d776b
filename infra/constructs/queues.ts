import { Duration, Validations } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

/** Dead-letter and failure queues keep messages as long as SQS allows. */
const QUEUE_RETENTION = Duration.days(14);

/** Why the queues of the schedule and of asynchronous invocations have no dead-letter queue themselves. */
const OWN_DEAD_LETTER_QUEUE_REASON =
  'This queue is itself a dead-letter destination (of the schedule or of asynchronous invocations); ' +
  'it is alarmed on and read by an operator, so a queue behind it would add nothing.';

/**
 * A queue that holds what failed, for an operator to read: encrypted, TLS only, kept 14 days. It is
 * itself a dead-letter destination, so cdk-nag's "has no DLQ" (AwsSolutions-SQS3) is acknowledged
 * with `reason`.
 * @param scope where the queue goes; its id there is `id`
 */
export function createDeadLetterQueue(
  scope: Construct,
  id: string,
  reason = OWN_DEAD_LETTER_QUEUE_REASON,
): sqs.Queue {
  const queue = new sqs.Queue(scope, id, {
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    retentionPeriod: QUEUE_RETENTION,
  });
  Validations.of(queue).acknowledge({ id: 'AwsSolutions-SQS3', reason });
  return queue;
}
