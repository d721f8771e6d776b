import { Duration, Validations } from 'aws-cdk-lib';
import { Annotations, Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectCountAlarm, expectDashboardShows, expectFunctionAlarm } from './alarms.ts';
import { CLI_TEST, offlineCdk, pluginReports, REQUIRED_CONTEXT, writtenResources } from './cdk-cli.ts';
import { acknowledgements, expectNoCdkErrorOrWarning, nagFindings } from './nag.ts';
import {
  actionsOf,
  bundleOf,
  expectSafeQueues,
  FUNCTION_RUNTIME,
  functionStatements,
  itRejects,
  type Statement,
  type Synthesized,
  synthesizer,
} from './synth.ts';

/** One app with one fan-out stack and the AWS Solutions checks, as infra/app.ts does with `-c mode=fanout`. */
const synth = synthesizer({ mode: 'fanout' });

/** What consuming the work queue takes (an event source mapping's grant), sorted. */
const CONSUME_WORK = [
  'sqs:ChangeMessageVisibility',
  'sqs:DeleteMessage',
  'sqs:GetQueueAttributes',
  'sqs:GetQueueUrl',
  'sqs:ReceiveMessage',
];

/** Every identity policy statement of the template that names `resource`. */
function statementsOn(template: Template, resource: unknown): Statement[] {
  return Object.values(template.findResources('AWS::IAM::Policy'))
    .flatMap((policy) => policy.Properties.PolicyDocument.Statement as Statement[])
    .filter((statement) => JSON.stringify(statement.Resource) === JSON.stringify(resource));
}

describe('HousekeepingStack in fan-out mode', () => {
  let main: Synthesized;
  let template: Template;
  let workQueueArn: unknown;

  beforeAll(() => {
    main = synth({}, { bundle: true });
    template = main.template;
    workQueueArn = main.stack.resolve(main.stack.fanout?.workQueue.queueArn);
  });

  describe('functions', () => {
    it('bundles the planner and the worker entries, each into one ESM file with a source map', () => {
      const planner = bundleOf(main.app, main.stack.fn);
      const worker = bundleOf(main.app, main.stack.fanout?.worker);

      expect(planner.files).toEqual(['index.mjs', 'index.mjs.map']);
      expect(worker.files).toEqual(['index.mjs', 'index.mjs.map']);
      expect(planner.code).toContain('QUEUE_URL');
      expect(worker.code).toContain('batchItemFailures');
      expect(worker.code).not.toMatch(/from\s*["']@aws-sdk\//);
    });

    it('makes the scheduled function the planner: same schedule, reserved concurrency 1, the queue in its environment', () => {
      template.hasResourceProperties('AWS::Lambda::Function', {
        Description: Match.stringLikeRegexp('^Fan-out planner'),
        ReservedConcurrentExecutions: 1,
        Timeout: 900,
        Environment: {
          Variables: Match.objectLike({
            QUEUE_URL: main.stack.resolve(main.stack.fanout?.workQueue.queueUrl),
            // maxReceiveCount visibility timeouts: 3 x 90 minutes.
            QUEUE_MARKER_TTL_SECONDS: '16200',
          }),
        },
      });
      template.hasResourceProperties('AWS::Scheduler::Schedule', {
        ScheduleExpression: 'rate(1 hour)',
        Target: Match.objectLike({ Arn: main.stack.resolve(main.stack.fn.functionArn), Input: '{}' }),
      });
    });

    it('runs the worker like the pass (Node.js 24, arm64, 1024 MB, 15 minutes, JSON logs) without reserved concurrency', () => {
      const workers = template.findResources('AWS::Lambda::Function', {
        Properties: { Description: Match.stringLikeRegexp('^Fan-out worker') },
      });
      const worker = Object.values(workers)[0]?.Properties;

      expect(Object.keys(workers)).toHaveLength(1);
      expect(worker).toMatchObject({
        ...FUNCTION_RUNTIME,
        LoggingConfig: { LogFormat: 'JSON' },
        Environment: {
          Variables: {
            TOKENS_API_URL: 'https://tokens.example.com',
            SESSION_KEY_SECRET_ID: 'tokens/session-key',
            ARCHIVE_PREFIX: 'tokens/',
            LINE_CONCURRENCY: '16',
            POWERTOOLS_SERVICE_NAME: 'tokens-housekeeper',
            // The same Node flags as the planner.
            NODE_OPTIONS: '--enable-source-maps',
          },
        },
      });
      expect(worker?.ReservedConcurrentExecutions).toBeUndefined();
      expect(worker?.Environment.Variables.QUEUE_URL).toBeUndefined();
    });
  });

  describe('work queue', () => {
    it('dead-letters a message after 3 receives, and hides a received one for 6 worker timeouts', () => {
      template.hasResourceProperties('AWS::SQS::Queue', {
        SqsManagedSseEnabled: true,
        VisibilityTimeout: 5400,
        RedrivePolicy: {
          deadLetterTargetArn: main.stack.resolve(main.stack.fanout?.workerDeadLetterQueue.queueArn),
          maxReceiveCount: 3,
        },
      });
    });

    it('keeps all four queues encrypted and SSL-only, the dead-letter ones for 14 days', () => {
      template.resourceCountIs('AWS::SQS::Queue', 4);
      expectSafeQueues(template, 3, 4);
    });

    it('feeds the worker through an event source mapping with partial batch responses and a maximum concurrency', () => {
      template.resourceCountIs('AWS::Lambda::EventSourceMapping', 1);
      template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        EventSourceArn: workQueueArn,
        FunctionName: main.stack.resolve(main.stack.fanout?.worker.functionName),
        BatchSize: 4,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        ScalingConfig: { MaximumConcurrency: 8 },
      });
    });
  });

  describe('permissions', () => {
    it('lets the planner only send to the work queue', () => {
      const planner = functionStatements(main, main.stack.fn);
      const onQueue = planner.filter((s) => JSON.stringify(s.Resource) === JSON.stringify(workQueueArn));

      expect(onQueue).toEqual([expect.objectContaining({ Sid: 'EnqueueWork', Action: 'sqs:SendMessage' })]);
    });

    it('lets the worker consume the work queue, read the secret and write under the prefix, and nothing more', () => {
      const worker = functionStatements(main, main.stack.fanout?.worker);
      const onQueue = worker.filter((s) => JSON.stringify(s.Resource) === JSON.stringify(workQueueArn));

      expect(onQueue.flatMap(actionsOf).sort()).toEqual(CONSUME_WORK);
      expect(worker.flatMap(actionsOf).sort()).toEqual(
        [
          ...onQueue.flatMap(actionsOf),
          'logs:CreateLogStream',
          'logs:PutLogEvents',
          'secretsmanager:GetSecretValue',
          's3:AbortMultipartUpload',
          's3:GetObject',
          's3:ListMultipartUploadParts',
          's3:PutObject',
          's3:ListBucket',
        ].sort(),
      );
      expect(worker.flatMap(actionsOf).some((a) => a.includes('Delete') && a.startsWith('s3:'))).toBe(false);
      expect(worker.flatMap(actionsOf).some((a) => a.includes('*'))).toBe(false);
    });

    it('gives no one but the planner and the worker any access to the work queue', () => {
      const statements = statementsOn(template, workQueueArn);

      // Sorted: SendMessage comes after every consumer action.
      expect(statements.flatMap(actionsOf).sort()).toEqual([...CONSUME_WORK, 'sqs:SendMessage']);
    });
  });

  describe('archive bucket', () => {
    it('expires queued markers, their old versions and their delete markers after a day', () => {
      template.hasResourceProperties('AWS::S3::Bucket', {
        VersioningConfiguration: { Status: 'Enabled' },
        LifecycleConfiguration: {
          Rules: Match.arrayWith([
            Match.objectLike({
              Prefix: 'tokens/_queued/',
              ExpirationInDays: 1,
              NoncurrentVersionExpiration: { NoncurrentDays: 1 },
            }),
            Match.objectLike({ Prefix: 'tokens/_queued/', ExpiredObjectDeleteMarker: true }),
          ]),
        },
      });
    });
  });

  describe('alarms and dashboard', () => {
    it('alarms when the worker dead-letter queue holds a message, and on worker errors', () => {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: 'Housekeeper-worker-dlq-not-empty',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [
          {
            Name: 'QueueName',
            Value: main.stack.resolve(main.stack.fanout?.workerDeadLetterQueue.queueName),
          },
        ],
        Threshold: 1,
        AlarmActions: [main.stack.resolve(main.stack.alarmTopic.topicArn)],
      });
      expectFunctionAlarm(main, main.stack.fanout?.worker, 'Errors', {
        AlarmName: 'Housekeeper-worker-errors',
      });
      // Eleven of the housekeeper's, and three of the restore drills (on by default).
      expect(main.stack.alarms).toHaveLength(14);
    });

    it('alarms on conflicts reported by the workers, with the pass metric alarm', () => {
      // Workers emit the pass metrics under the same namespace and dimension: one alarm covers them.
      expect(
        Object.keys(
          template.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'Conflicts' } }),
        ),
      ).toHaveLength(1);
      expectCountAlarm(main, 'Conflicts', { AlarmName: 'Housekeeper-conflicts' });
    });

    it('draws the work queue, the workers and what the planner sent', () => {
      expectDashboardShows(template, [
        'Work queue',
        'ApproximateAgeOfOldestMessage',
        'ApproximateNumberOfMessagesNotVisible',
        'ConcurrentExecutions',
        'LinesEnqueued',
        'LinesAlreadyQueued',
        'fan-out',
      ]);
    });

    it('outputs the worker, the work queue and its dead-letter queue', () => {
      for (const output of ['WorkerFunctionName', 'WorkQueueUrl', 'WorkerDeadLetterQueueUrl']) {
        template.hasOutput(output, {});
      }
    });
  });

  describe('cdk-nag', () => {
    it('reports no unacknowledged AwsSolutions error or warning', () => {
      expect(nagFindings(main.app)).toEqual([]);
    });

    it('gives every acknowledgement a specific reason', () => {
      const acknowledged = acknowledgements(main.app.node.findAll());

      expect(acknowledged.map(([id]) => id).sort()).toEqual([
        expect.stringMatching(
          /^Annotation::AwsSolutions-IAM5\[Resource::<ArchiveBucket.*\.Arn>\/tokens\/\*\]$/,
        ),
        expect.stringMatching(
          /^Annotation::AwsSolutions-IAM5\[Resource::<ArchiveBucket.*\.Arn>\/tokens\/\*\]$/,
        ),
        // The restore drill's: reading the archive, and writing its reports.
        expect.stringMatching(
          /^Annotation::AwsSolutions-IAM5\[Resource::<ArchiveBucket.*\.Arn>\/tokens\/\*\]$/,
        ),
        expect.stringMatching(
          /^Annotation::AwsSolutions-IAM5\[Resource::<ArchiveBucket.*\.Arn>\/tokens\/_drills\/\*\]$/,
        ),
        'Annotation::AwsSolutions-SQS3',
        'Annotation::AwsSolutions-SQS3',
        'Annotation::AwsSolutions-SQS3',
      ]);
      for (const [, reason] of acknowledged) expect(reason.length).toBeGreaterThan(40);
      const workerDlq = main.stack.fanout?.workerDeadLetterQueue.node.metadata.find(
        (entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY,
      );
      expect(JSON.stringify(workerDlq?.data)).toContain('dead-letter destination of the work queue');
    });

    it('emits no CDK error or warning at all', () => {
      expectNoCdkErrorOrWarning(main.stack);
    });
  });
});

describe('HousekeepingStack fan-out options', () => {
  it('takes the worker concurrency, batch size and timeout, and derives visibility and marker TTL', () => {
    const { template } = synth({
      workerMaxConcurrency: 20,
      workerBatchSize: 2,
      workerTimeout: Duration.minutes(5),
    });

    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      BatchSize: 2,
      ScalingConfig: { MaximumConcurrency: 20 },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('^Fan-out worker'),
      Timeout: 300,
    });
    template.hasResourceProperties('AWS::SQS::Queue', { VisibilityTimeout: 1800 });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ QUEUE_MARKER_TTL_SECONDS: '5400' }) },
    });
  });

  it('archives into an existing bucket, and warns that the queued-marker lifecycle rule is the owner’s to add', () => {
    const synthesized = synth({ bucketName: 'existing-archive' });

    synthesized.template.resourceCountIs('AWS::S3::Bucket', 0);
    expect(
      Annotations.fromStack(synthesized.stack).findWarning('*', Match.stringLikeRegexp('tokens/_queued/')),
    ).toHaveLength(1);
    expect(nagFindings(synthesized.app)).toEqual([]);
  });

  it('creates none of it in single mode', () => {
    const { template, stack } = synth({ mode: 'single' });

    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 0);
    template.resourceCountIs('AWS::SQS::Queue', 2);
    expect(stack.fanout).toBeUndefined();
    expect(JSON.stringify(template.toJSON())).not.toContain('_queued/');
  });

  itRejects(synth, [
    [{ mode: 'fan-out' as 'fanout' }, /mode must be "single" or "fanout"/],
    [{ mode: 'single' as const, workerBatchSize: 2 }, /workerBatchSize applies only to mode "fanout"/],
    [{ workerBatchSize: 11 }, /workerBatchSize must be an integer between 1 and 10/],
    [{ workerMaxConcurrency: 1 }, /workerMaxConcurrency must be an integer between 2 and 1000/],
    [{ workerTimeout: Duration.minutes(16) }, /workerTimeout must be between/],
    [
      { workerTimeout: Duration.seconds(100) },
      /workerTimeout of 1 minute 40 seconds leaves 10 s of working time/,
    ],
  ]);
});

describe('cdk synth -c mode=fanout', () => {
  const cdk = offlineCdk('housekeeper-fanout-synth-');

  it('synthesizes the fan-out stack offline with a clean cdk-nag report', CLI_TEST, async () => {
    const { code, output, outdir } = await cdk.synth({ ...REQUIRED_CONTEXT, mode: 'fanout' }, 'cdk.out');

    expect(code, output).toBe(0);
    expect(writtenResources(outdir).filter((r) => r.Type === 'AWS::Lambda::EventSourceMapping')).toHaveLength(
      1,
    );
    expect(pluginReports(outdir)).toEqual([]);
  });

  it('fails naming a mode it does not know', CLI_TEST, async () => {
    const { code, output } = await cdk.synth({ ...REQUIRED_CONTEXT, mode: 'parallel' }, 'cdk.out.bad');

    expect(code).not.toBe(0);
    expect(output).toMatch(/context "mode" must be "single" or "fanout", got "parallel"/);
  });
});
