import { Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { createDeadLetterQueue } from './queues.ts';

/** Where a scheduled pass that did not happen, or did not succeed, is left for an operator. */
export interface ScheduleQueues {
  /** Receives the event of an asynchronous invocation that failed or expired. */
  readonly failureQueue: sqs.Queue;
  /** Receives the event when EventBridge Scheduler could not invoke the function. */
  readonly scheduleDeadLetterQueue: sqs.Queue;
}

/** The two queues of {@link ScheduleQueues}, ids `FailureQueue` and `ScheduleDeadLetterQueue`. */
export function createScheduleQueues(scope: Construct): ScheduleQueues {
  return {
    failureQueue: createDeadLetterQueue(scope, 'FailureQueue'),
    scheduleDeadLetterQueue: createDeadLetterQueue(scope, 'ScheduleDeadLetterQueue'),
  };
}

/**
 * The EventBridge Scheduler schedule (id `Schedule`, or `id`) that invokes `fn` with an empty event,
 * through a role of its own (`SchedulerRole`, or `roleId`), dead-lettering to `deadLetterQueue`.
 */
export function createSchedule(
  scope: Construct,
  props: {
    readonly fn: lambda.IFunction;
    readonly scheduleExpression: string;
    readonly deadLetterQueue: sqs.IQueue;
    /** A second schedule (the restore drill's) needs ids and a description of its own. */
    readonly id?: string;
    readonly roleId?: string;
    readonly description?: string;
  },
): scheduler.Schedule {
  const role = createSchedulerRole(scope, props.fn, props.deadLetterQueue, props.roleId ?? 'SchedulerRole');
  return new scheduler.Schedule(scope, props.id ?? 'Schedule', {
    description: props.description ?? 'Full housekeeping pass of tokens-housekeeper',
    schedule: scheduler.ScheduleExpression.expression(props.scheduleExpression),
    target: new targets.LambdaInvoke(props.fn, {
      role,
      input: scheduler.ScheduleTargetInput.fromObject({}),
      // A pass that could not be started within the hour is dropped to the DLQ: the next
      // scheduled pass does the same work, so catching up old ones has no value.
      retryAttempts: 2,
      maxEventAge: Duration.hours(1),
      deadLetterQueue: props.deadLetterQueue,
    }),
  });
}

/**
 * The scheduler's role, with InvokeFunction on the function itself only. It is handed to the
 * target as immutable so the target's own grant (which adds the `:*` qualifier wildcard) and
 * its DLQ grant do not widen it; both are given here explicitly.
 */
function createSchedulerRole(
  scope: Construct,
  fn: lambda.IFunction,
  deadLetterQueue: sqs.IQueue,
  id: string,
): iam.IRole {
  const stack = Stack.of(scope);
  const role = new iam.Role(scope, id, {
    description: 'EventBridge Scheduler: invoke tokens-housekeeper, dead-letter to its queue',
    assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
      conditions: {
        StringEquals: {
          'aws:SourceAccount': stack.account,
          'aws:SourceArn': stack.formatArn({
            service: 'scheduler',
            resource: 'schedule-group',
            resourceName: 'default',
          }),
        },
      },
    }),
  });
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: 'InvokeHousekeeper',
      actions: ['lambda:InvokeFunction'],
      resources: [fn.functionArn],
    }),
  );
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: 'DeadLetter',
      actions: ['sqs:SendMessage'],
      resources: [deadLetterQueue.queueArn],
    }),
  );
  return role.withoutPolicyUpdates();
}
