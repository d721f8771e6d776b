import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { type FanoutSettings, type Settings, WORK_MAX_RECEIVE_COUNT } from '../settings.ts';
import { createFunction, LAMBDA_ENTRIES } from './housekeeper-function.ts';
import { createDeadLetterQueue } from './queues.ts';

/** The fan-out resources (mode `fanout`). */
export interface FanoutResources {
  /** One message per finished line, sent by the planner. */
  readonly workQueue: sqs.Queue;
  /** Work messages received {@link WORK_MAX_RECEIVE_COUNT} times without success. */
  readonly workerDeadLetterQueue: sqs.Queue;
  /** Archives and dismantles the lines of the work queue. */
  readonly worker: NodejsFunction;
}

/**
 * Fan-out: the work queue (`WorkQueue`) with its dead-letter queue (`WorkerDeadLetterQueue`), and
 * the worker (`Worker`) that consumes it through an event source mapping (partial batch responses,
 * bounded concurrency). The worker runs the same per-line code as the pass, with the same access to
 * the secret and the archive.
 */
export function createFanout(
  scope: Construct,
  settings: Settings,
  fanout: FanoutSettings,
  bucket: s3.IBucket,
): FanoutResources {
  const workerDeadLetterQueue = createDeadLetterQueue(
    scope,
    'WorkerDeadLetterQueue',
    'This queue is itself the dead-letter destination of the work queue; it is alarmed on and read by an ' +
      'operator (the line of each message stays on the service), so a queue behind it would add nothing.',
  );
  const workQueue = new sqs.Queue(scope, 'WorkQueue', {
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    // Above the worker's timeout, so a message is never handed to a second worker while the
    // first still holds it; six times, as AWS advises, to leave room for throttled retries.
    visibilityTimeout: fanout.visibilityTimeout,
    deadLetterQueue: { queue: workerDeadLetterQueue, maxReceiveCount: WORK_MAX_RECEIVE_COUNT },
  });

  const { fn: worker } = createFunction(scope, 'Worker', settings, bucket, {
    logGroupId: 'WorkerLogs',
    roleId: 'WorkerRole',
    roleDescription:
      'tokens-housekeeper worker: read the session key, write the archive, consume the work queue, write its logs',
    description:
      'Fan-out worker: archives the tokens lines of the work queue to S3, verified, then deletes them',
    entry: LAMBDA_ENTRIES.worker,
    timeout: fanout.workerTimeout,
    // No reserved concurrency: the event source mapping's maximum concurrency bounds the
    // workers without setting account concurrency aside while the queue is empty.
  });
  // Also grants the worker's role the consume actions on this queue only.
  worker.addEventSource(
    new SqsEventSource(workQueue, {
      batchSize: fanout.batchSize,
      maxConcurrency: fanout.maxConcurrency,
      reportBatchItemFailures: true,
    }),
  );
  return { workQueue, workerDeadLetterQueue, worker };
}
