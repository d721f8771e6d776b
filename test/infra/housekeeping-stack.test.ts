import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Duration } from 'aws-cdk-lib';
import { Annotations, Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lambda/app/config.ts';
import { expectCountAlarm, expectDashboardShows, expectFunctionAlarm } from './alarms.ts';
import { CLI_TEST, offlineCdk, pluginReports, REQUIRED_CONTEXT, writtenResources } from './cdk-cli.ts';
import { acknowledgements, expectNoCdkErrorOrWarning, nagFindings } from './nag.ts';
import { run } from './offline.ts';
import {
  actionsOf,
  bundleOf,
  expectSafeQueues,
  expectScheduleRoleLimitedTo,
  FUNCTION_RUNTIME,
  functionStatements,
  itRejects,
  SECRET_NAME,
  type Statement,
  type Synthesized,
  synthesizer,
} from './synth.ts';

const synth = synthesizer();

/** Every statement of every identity policy in the template (managed, inline and role policies). */
function identityStatements(template: Template): Statement[] {
  const documents: unknown[] = [];
  for (const resource of Object.values(template.findResources('AWS::IAM::Policy'))) {
    documents.push(resource.Properties.PolicyDocument);
  }
  for (const resource of Object.values(template.findResources('AWS::IAM::ManagedPolicy'))) {
    documents.push(resource.Properties.PolicyDocument);
  }
  for (const resource of Object.values(template.findResources('AWS::IAM::Role'))) {
    for (const policy of resource.Properties.Policies ?? []) documents.push(policy.PolicyDocument);
  }
  return documents.flatMap((document) => (document as { Statement: Statement[] }).Statement);
}

/** The statements of the policy attached to the (pass) function's role. */
const passStatements = (synthesized: Synthesized): Statement[] =>
  functionStatements(synthesized, synthesized.stack.fn);

describe('HousekeepingStack', () => {
  let main: Synthesized;
  let template: Template;

  beforeAll(() => {
    main = synth({}, { bundle: true });
    template = main.template;
  });

  describe('function', () => {
    it('bundles lambda/entries/handler.ts with local esbuild into one minified ESM file with a source map and the SDK inside', () => {
      const { files, code } = bundleOf(main.app, main.stack.fn);

      expect(files).toEqual(['index.mjs', 'index.mjs.map']);
      expect(code.startsWith("import { createRequire } from 'node:module';")).toBe(true);
      expect(code).not.toMatch(/from\s*["']@aws-sdk\//);
      expect(code).toMatch(/sourceMappingURL=index\.mjs\.map/);
    });

    it('runs on Node.js 24, arm64, with 1024 MB, 15 minutes, JSON logs and reserved concurrency 1', () => {
      template.hasResourceProperties('AWS::Lambda::Function', {
        ...FUNCTION_RUNTIME,
        ReservedConcurrentExecutions: 1,
        LoggingConfig: Match.objectLike({ LogFormat: 'JSON', LogGroup: Match.anyValue() }),
      });
      template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
    });

    it('gets its configuration from the environment contract', () => {
      template.hasResourceProperties('AWS::Lambda::Function', {
        Environment: {
          Variables: Match.objectLike({
            TOKENS_API_URL: 'https://tokens.example.com',
            SESSION_KEY_SECRET_ID: SECRET_NAME,
            ARCHIVE_BUCKET: main.stack.resolve(main.stack.bucket.bucketName),
            ARCHIVE_PREFIX: 'tokens/',
            LINE_CONCURRENCY: '16',
            POWERTOOLS_SERVICE_NAME: 'tokens-housekeeper',
            POWERTOOLS_METRICS_NAMESPACE: 'TokensHousekeeper',
            POWERTOOLS_LOG_LEVEL: 'INFO',
            NODE_OPTIONS: '--enable-source-maps',
          }),
        },
      });
    });

    it("starts Node with the stack's NODE_OPTIONS only, and leaves the exec wrapper slot to layers", () => {
      const functions = Object.values(template.findResources('AWS::Lambda::Function'));
      for (const fn of functions) {
        const variables = (fn as { Properties: { Environment?: { Variables?: Record<string, string> } } })
          .Properties.Environment?.Variables;
        expect(variables?.AWS_LAMBDA_EXEC_WRAPPER).toBeUndefined();
      }
    });

    it('does not retry failed asynchronous invocations and sends them to the failure queue', () => {
      template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
        MaximumRetryAttempts: 0,
        MaximumEventAgeInSeconds: 3600,
        DestinationConfig: {
          OnFailure: { Destination: main.stack.resolve(main.stack.failureQueue.queueArn) },
        },
      });
    });
  });

  describe('schedule', () => {
    it('invokes the function hourly with an empty event, bounded retries and a dead-letter queue', () => {
      template.hasResourceProperties('AWS::Scheduler::Schedule', {
        ScheduleExpression: 'rate(1 hour)',
        State: 'ENABLED',
        Target: Match.objectLike({
          Arn: main.stack.resolve(main.stack.fn.functionArn),
          Input: '{}',
          RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 3600 },
          DeadLetterConfig: { Arn: main.stack.resolve(main.stack.scheduleDeadLetterQueue.queueArn) },
        }),
      });
    });

    it('lets the scheduler role invoke only this function and write only to its dead-letter queue', () => {
      expectScheduleRoleLimitedTo(main, main.stack.fn);
    });

    it('keeps both queues encrypted, SSL-only and for 14 days', () => {
      expectSafeQueues(template, 2, 2);
    });
  });

  describe('archive bucket', () => {
    it('is versioned, private, encrypted, logged and retained when the stack is deleted', () => {
      template.hasResource('AWS::S3::Bucket', {
        Properties: Match.objectLike({
          VersioningConfiguration: { Status: 'Enabled' },
          PublicAccessBlockConfiguration: {
            BlockPublicAcls: true,
            BlockPublicPolicy: true,
            IgnorePublicAcls: true,
            RestrictPublicBuckets: true,
          },
          BucketEncryption: {
            ServerSideEncryptionConfiguration: [
              { ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } },
            ],
          },
          LoggingConfiguration: Match.objectLike({ DestinationBucketName: Match.anyValue() }),
          LifecycleConfiguration: {
            Rules: Match.arrayWith([
              Match.objectLike({
                AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 },
                Status: 'Enabled',
              }),
              // Pending-DELETE markers only: never the archive itself.
              Match.objectLike({
                Prefix: 'tokens/_pending/',
                ExpirationInDays: 30,
                NoncurrentVersionExpiration: { NoncurrentDays: 30 },
                Status: 'Enabled',
              }),
              // A dry run's whole plan, written when its Lambda reply holds only the first lines.
              Match.objectLike({ Prefix: 'tokens/_plans/', ExpirationInDays: 30, Status: 'Enabled' }),
            ]),
          },
        }),
        DeletionPolicy: 'Retain',
        UpdateReplacePolicy: 'Retain',
      });
    });

    it('never deletes objects: every bucket is retained and there is no auto-delete', () => {
      const buckets = Object.values(template.findResources('AWS::S3::Bucket'));
      expect(buckets).toHaveLength(2);
      for (const bucket of buckets) expect(bucket.DeletionPolicy).toBe('Retain');
      expect(template.findResources('Custom::S3AutoDeleteObjects')).toEqual({});
    });

    it('denies requests without TLS', () => {
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: main.stack.resolve(main.stack.bucket.bucketName),
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Action: 's3:*',
              Principal: { AWS: '*' },
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
          ]),
        },
      });
    });

    it('writes access logs to a private, encrypted, SSL-only bucket that expires them', () => {
      template.hasResourceProperties('AWS::S3::Bucket', {
        BucketEncryption: Match.anyValue(),
        PublicAccessBlockConfiguration: Match.objectLike({
          BlockPublicAcls: true,
          RestrictPublicBuckets: true,
        }),
        LifecycleConfiguration: {
          Rules: [Match.objectLike({ ExpirationInDays: 365, Status: 'Enabled' })],
        },
      });
      template.resourcePropertiesCountIs(
        'AWS::S3::BucketPolicy',
        {
          PolicyDocument: {
            Statement: Match.arrayWith([
              Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
            ]),
          },
        },
        2,
      );
    });
  });

  describe('permissions', () => {
    it('allows object reads and writes only under the archive prefix', () => {
      const statements = passStatements(main);
      const objects = main.stack.resolve(main.stack.bucket.arnForObjects('tokens/*'));

      expect(statements).toContainEqual(
        expect.objectContaining({
          Effect: 'Allow',
          Action: ['s3:AbortMultipartUpload', 's3:GetObject', 's3:ListMultipartUploadParts', 's3:PutObject'],
          Resource: objects,
        }),
      );
      const s3ObjectStatements = statements.filter((s) =>
        actionsOf(s).some((a) => a.startsWith('s3:') && a !== 's3:ListBucket'),
      );
      expect(s3ObjectStatements.map((s) => s.Resource)).toEqual([objects]);
    });

    it('allows listing the bucket only with an s3:prefix inside the archive prefix', () => {
      const listing = passStatements(main).filter((s) => actionsOf(s).includes('s3:ListBucket'));

      expect(listing).toEqual([
        expect.objectContaining({
          Action: 's3:ListBucket',
          Resource: main.stack.resolve(main.stack.bucket.bucketArn),
          Condition: { StringLike: { 's3:prefix': ['tokens/*'] } },
        }),
      ]);
    });

    it('allows only GetSecretValue, on the one secret', () => {
      const secretStatements = identityStatements(template).filter((s) =>
        actionsOf(s).some((a) => a.startsWith('secretsmanager:')),
      );

      expect(secretStatements).toEqual([
        expect.objectContaining({
          Effect: 'Allow',
          Action: 'secretsmanager:GetSecretValue',
          Resource: `arn:aws:secretsmanager:eu-west-1:123456789012:secret:${SECRET_NAME}-??????`,
        }),
      ]);
    });

    it('grants no wildcard action, no delete and no managed policy', () => {
      const actions = identityStatements(template).flatMap(actionsOf);

      expect(actions.filter((a) => a === '*' || a.endsWith(':*'))).toEqual([]);
      expect(actions.filter((a) => /^s3:Delete/.test(a))).toEqual([]);
      for (const role of Object.values(template.findResources('AWS::IAM::Role'))) {
        expect(role.Properties.ManagedPolicyArns).toBeUndefined();
      }
    });
  });

  describe('alarms and dashboard', () => {
    const topicRef = (): unknown => main.stack.resolve(main.stack.alarmTopic.topicArn);

    it('alarms when a pass reports a failed line', () => {
      expectCountAlarm(main, 'LinesFailed');
    });

    it('alarms when the dismantle guard holds a line', () => {
      expectCountAlarm(main, 'LinesHeld', {
        AlarmName: 'Housekeeper-dismantle-guard',
        AlarmDescription: Match.stringLikeRegexp('MAX_DISMANTLES_PER_RUN.*docs/operations.md#alarms'),
      });
    });

    it('alarms when a pass reports a line in conflict with its archive', () => {
      expectCountAlarm(main, 'Conflicts', {
        AlarmName: 'Housekeeper-conflicts',
        AlarmDescription: Match.stringLikeRegexp('docs/operations.md#alarms'),
      });
    });

    it('alarms on function errors and on throttles', () => {
      for (const metricName of ['Errors', 'Throttles']) expectFunctionAlarm(main, main.stack.fn, metricName);
    });

    it('alarms when the longest run exceeds 80% of the timeout', () => {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/Lambda',
        MetricName: 'Duration',
        Statistic: 'Maximum',
        Threshold: 720_000,
        ComparisonOperator: 'GreaterThanThreshold',
      });
    });

    it('alarms when the dead-letter queue or the failure queue holds a message', () => {
      for (const queue of [main.stack.scheduleDeadLetterQueue, main.stack.failureQueue]) {
        template.hasResourceProperties('AWS::CloudWatch::Alarm', {
          Namespace: 'AWS/SQS',
          MetricName: 'ApproximateNumberOfMessagesVisible',
          Dimensions: [{ Name: 'QueueName', Value: main.stack.resolve(queue.queueName) }],
          Threshold: 1,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
          AlarmActions: [topicRef()],
        });
      }
    });

    it('exposes every alarm, each notifying the encrypted, SSL-only topic', () => {
      const alarms = template.findResources('AWS::CloudWatch::Alarm');

      expect(main.stack.alarms).toHaveLength(Object.keys(alarms).length);
      for (const alarm of Object.values(alarms)) expect(alarm.Properties.AlarmActions).toEqual([topicRef()]);
      template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
      template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
      template.hasResourceProperties('AWS::SNS::TopicPolicy', {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          ]),
        },
      });
      template.resourceCountIs('AWS::SNS::Subscription', 0);
    });

    it('draws runs, lines, bytes, duration against the timeout, errors and queue depth', () => {
      expect(Object.keys(template.findResources('AWS::CloudWatch::Dashboard'))).toHaveLength(1);
      expectDashboardShows(template, [
        'Invocations',
        'Errors',
        'LinesArchived',
        'LinesDismantled',
        'LinesFailed',
        'LinesDeferred',
        'LinesHeld',
        'Conflicts',
        'BytesArchived',
        'Duration',
        'ApproximateNumberOfMessagesVisible',
        'Timeout',
      ]);
    });
  });

  describe('cdk-nag', () => {
    it('reports no unacknowledged AwsSolutions error or warning', () => {
      expect(nagFindings(main.app)).toEqual([]);
      expect(
        Annotations.fromStack(main.stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*')),
      ).toEqual([]);
      expect(
        Annotations.fromStack(main.stack).findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*')),
      ).toEqual([]);
    });

    it('gives every acknowledgement a reason', () => {
      const acknowledged = acknowledgements(main.app.node.findAll());

      expect(acknowledged.length).toBeGreaterThan(0);
      for (const [id, reason] of acknowledged) {
        expect(id).toMatch(/AwsSolutions-/);
        expect(reason.length).toBeGreaterThan(40);
      }
    });

    it('emits no CDK error or warning at all', () => {
      expectNoCdkErrorOrWarning(main.stack);
    });
  });
});

describe('HousekeepingStack options', () => {
  it('archives into an existing bucket without creating one', () => {
    const synthesized = synth({ bucketName: 'existing-archive', archivePrefix: 'archive/' });
    const { template } = synthesized;

    template.resourceCountIs('AWS::S3::Bucket', 0);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({ ARCHIVE_BUCKET: 'existing-archive', ARCHIVE_PREFIX: 'archive/' }),
      },
    });
    expect(passStatements(synthesized)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ Resource: 'arn:aws:s3:::existing-archive/archive/*' }),
        expect.objectContaining({
          Action: 's3:ListBucket',
          Resource: 'arn:aws:s3:::existing-archive',
          Condition: { StringLike: { 's3:prefix': ['archive/*'] } },
        }),
      ]),
    );
    expect(nagFindings(synthesized.app)).toEqual([]);
  });

  it('uses the given schedule expression and subscribes the alarm email', () => {
    const { template } = synth({ scheduleExpression: 'cron(15 2 * * ? *)', alarmEmail: 'ops@example.com' });

    template.hasResourceProperties('AWS::Scheduler::Schedule', { ScheduleExpression: 'cron(15 2 * * ? *)' });
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
  });

  it('takes memory, timeout and line concurrency as props and scales the duration alarm', () => {
    const { template } = synth({ memorySize: 2048, timeout: Duration.minutes(10), lineConcurrency: 8 });

    template.hasResourceProperties('AWS::Lambda::Function', {
      MemorySize: 2048,
      Timeout: 600,
      Environment: { Variables: Match.objectLike({ LINE_CONCURRENCY: '8' }) },
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Duration', Threshold: 480_000 });
  });

  it('passes the dismantle guard to the functions only when asked, and refuses what the function would', () => {
    const guarded = synth({ maxDismantlesPerRun: 50, maxDismantleShare: 0.5, maxDismantleShareMinLines: 40 });

    guarded.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          MAX_DISMANTLES_PER_RUN: '50',
          MAX_DISMANTLE_SHARE: '0.5',
          MAX_DISMANTLE_SHARE_MIN_LINES: '40',
        }),
      },
    });
    const plain = JSON.stringify(synth().template.findResources('AWS::Lambda::Function'));
    expect(plain).not.toContain('MAX_DISMANTLE');
    expect(() => synth({ maxDismantlesPerRun: -1 })).toThrow(
      /maxDismantlesPerRun must be an integer between 0/,
    );
    expect(() => synth({ maxDismantleShare: 0 })).toThrow(
      /maxDismantleShare must be above 0 and at most 1, got 0/,
    );
    expect(() => synth({ maxDismantleShare: 1.5 })).toThrow(/maxDismantleShare must be above 0/);
    expect(() => synth({ maxDismantleShareMinLines: 10 })).toThrow(
      /maxDismantleShareMinLines applies only with maxDismantleShare/,
    );
  });

  it('writes the dismantle share as the function reads it, and refuses one it would write as 1e-7', () => {
    const written = (share: number) =>
      Object.values(synth({ maxDismantleShare: share }).template.findResources('AWS::Lambda::Function')).map(
        (fn) => (fn.Properties.Environment.Variables as Record<string, string>).MAX_DISMANTLE_SHARE,
      )[0] ?? '';
    const read = (text: string) =>
      loadConfig({
        TOKENS_API_URL: 'https://tokens.example.com',
        SESSION_KEY_SECRET_ID: SECRET_NAME,
        ARCHIVE_BUCKET: 'tokens-archive',
        MAX_DISMANTLE_SHARE: text,
      }).dismantleGuard.maxShare;

    expect(read(written(0.000001))).toBe(0.000001);
    expect(read(written(1))).toBe(1);
    expect(() => synth({ maxDismantleShare: 1e-7 })).toThrow(
      /maxDismantleShare must be .*at least 0\.000001/,
    );
  });

  it('passes a grace period and a request cap to the function only when asked', () => {
    const plain = synth();
    const controlled = synth({ minAge: Duration.hours(24), maxRequestsPerSecond: 5 });

    const variables = (template: typeof plain.template) =>
      Object.values(template.findResources('AWS::Lambda::Function')).map(
        (fn) =>
          (fn as { Properties: { Environment: { Variables: Record<string, string> } } }).Properties
            .Environment.Variables,
      );
    for (const env of variables(plain.template)) {
      expect(env.MIN_AGE).toBeUndefined();
      expect(env.MAX_REQUESTS_PER_SECOND).toBeUndefined();
    }
    controlled.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ MIN_AGE: '86400', MAX_REQUESTS_PER_SECOND: '5' }) },
    });
    expect(() => synth({ maxRequestsPerSecond: 0 })).toThrow(/maxRequestsPerSecond must be an integer/);
    expect(() => synth({ minAge: Duration.millis(1500) })).toThrow(
      /minAge must be a whole number of seconds/,
    );
  });

  it('passes a byte cap to the function only when asked', () => {
    const plain = synth();
    const capped = synth({ maxBytesPerSecond: 8 * 1024 * 1024 });

    for (const fn of Object.values(plain.template.findResources('AWS::Lambda::Function'))) {
      const env = (fn as { Properties: { Environment: { Variables: Record<string, string> } } }).Properties
        .Environment.Variables;
      expect(env.MAX_BYTES_PER_SECOND).toBeUndefined();
    }
    capped.template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ MAX_BYTES_PER_SECOND: '8388608' }) },
    });
  });

  it('adds the archive transition and Object Lock in governance mode when asked', () => {
    const synthesized = synth({ archiveTransitionDays: 30, objectLockRetentionDays: 365 });

    synthesized.template.hasResourceProperties('AWS::S3::Bucket', {
      ObjectLockEnabled: true,
      ObjectLockConfiguration: {
        ObjectLockEnabled: 'Enabled',
        Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 365 } },
      },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({
            Prefix: 'tokens/',
            Transitions: [{ StorageClass: 'GLACIER_IR', TransitionInDays: 30 }],
          }),
        ]),
      },
    });
    expect(nagFindings(synthesized.app)).toEqual([]);
  });

  it.each([
    ['a complete ARN exactly', 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:tokens/key-AbC123', ''],
    [
      'a partial ARN with the suffix wildcard',
      'arn:aws:secretsmanager:eu-west-1:123456789012:secret:tokens/key',
      '-??????',
    ],
  ])('grants GetSecretValue on %s', (_label, arn, suffix) => {
    const { template } = synth({ sessionKeySecret: arn });
    const statements = identityStatements(template).filter((s) =>
      actionsOf(s).includes('secretsmanager:GetSecretValue'),
    );

    expect(statements.map((s) => s.Resource)).toEqual([`${arn}${suffix}`]);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ SESSION_KEY_SECRET_ID: arn }) },
    });
  });

  itRejects(synth, [
    [{ tokensApiUrl: 'http://tokens.example.com' }, /tokensApiUrl must be an https URL/],
    [{ tokensApiUrl: 'tokens.example.com' }, /tokensApiUrl is not a URL/],
    // The function's own rule (parseTokensApiUrl): what it would refuse at every cold start.
    [{ tokensApiUrl: 'https://user:secret@tokens.example.com' }, /tokensApiUrl must not carry credentials/],
    [{ tokensApiUrl: 'https://tokens.example.com/?key=1' }, /tokensApiUrl must not have a query or fragment/],
    // Plain http to a loopback host is for local runs: a deployed function cannot reach one.
    [{ tokensApiUrl: 'http://127.0.0.1:8080' }, /tokensApiUrl must be an https URL/],
    [{ scheduleExpression: 'every hour' }, /scheduleExpression must be rate/],
    [{ archivePrefix: 'tokens' }, /archivePrefix must be .* ending in "\/"/],
    [{ archivePrefix: '/tokens/' }, /archivePrefix must be/],
    [{ timeout: Duration.minutes(20) }, /timeout must be between/],
    // No working time after the 90 s time reserve: every run would defer every line.
    [
      { timeout: Duration.minutes(1) },
      /timeout of 1 minute leaves 0 s of working time after the function's 90 s time reserve \(TIME_RESERVE_MS.*at least 60 s is needed: set timeout to 150 s or more/,
    ],
    [{ timeout: Duration.minutes(2) }, /timeout of 2 minutes leaves 30 s of working time/],
    // The function's own ranges: a value it would refuse on every run fails the synth.
    [{ lineConcurrency: 65 }, /lineConcurrency must be an integer between 1 and 64, got 65/],
    [{ lineConcurrency: 0 }, /lineConcurrency must be an integer between 1 and 64/],
    [{ maxRequestsPerSecond: 100_001 }, /maxRequestsPerSecond must be an integer between 1 and 100000/],
    [
      { maxBytesPerSecond: 1023 },
      /maxBytesPerSecond must be an integer between 1024 and 10737418240, got 1023/,
    ],
    [{ maxBytesPerSecond: 1.5 * 1024 * 1024 + 0.5 }, /maxBytesPerSecond must be an integer between 1024/],
    // Sixteen lines at once (and a listing) read up to 128 KiB each ahead of the cap: 4.25 MiB at least.
    [
      { maxBytesPerSecond: 4 * 1024 * 1024 },
      /maxBytesPerSecond 4194304 is too small for lineConcurrency 16: at least 4456448/,
    ],
    [
      { bucketName: 'existing', objectLockRetentionDays: 30 },
      /objectLockRetentionDays applies only to a bucket the stack creates/,
    ],
  ]);
});

describe('HousekeepingStack archive encryption', () => {
  const KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6';
  const kmsStatements = (statements: Statement[]) =>
    statements.filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));

  it('keeps S3-managed keys by default, and grants no KMS action', () => {
    const synthesized = synth();

    synthesized.template.hasResourceProperties('AWS::S3::Bucket', {
      VersioningConfiguration: { Status: 'Enabled' },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
    });
    expect(Object.keys(synthesized.template.findResources('AWS::KMS::Key'))).not.toContainEqual(
      expect.stringMatching(/^ArchiveKey/),
    );
    expect(kmsStatements(passStatements(synthesized))).toEqual([]);
  });

  it('encrypts with a key it creates, with rotation and S3 Bucket Keys, and grants exactly GenerateDataKey and Decrypt on it (cdk-nag clean)', () => {
    const synthesized = synth({ archiveEncryption: 'kms' });
    const { template, stack } = synthesized;

    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    const keyId = Object.keys(template.findResources('AWS::KMS::Key')).find((id) =>
      id.startsWith('ArchiveKey'),
    );
    template.hasResourceProperties('AWS::S3::Bucket', {
      VersioningConfiguration: { Status: 'Enabled' },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          {
            ServerSideEncryptionByDefault: {
              SSEAlgorithm: 'aws:kms',
              KMSMasterKeyID: { 'Fn::GetAtt': [keyId, 'Arn'] },
            },
            BucketKeyEnabled: true,
          },
        ],
      },
    });
    expect(kmsStatements(passStatements(synthesized))).toEqual([
      expect.objectContaining({
        Sid: 'UseArchiveKey',
        Effect: 'Allow',
        Condition: { StringEquals: { 'kms:ViaService': 's3.eu-west-1.amazonaws.com' } },
        Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
        Resource: { 'Fn::GetAtt': [keyId, 'Arn'] },
      }),
    ]);
    expect(nagFindings(synthesized.app)).toEqual([]);
    expect(stack.bucket.encryptionKey).toBeDefined();
  });

  it('uses a named key: the bucket encrypts with it, and the functions are granted only it', () => {
    const synthesized = synth({ archiveKmsKeyArn: KEY_ARN });

    expect(Object.keys(synthesized.template.findResources('AWS::KMS::Key'))).not.toContainEqual(
      expect.stringMatching(/^ArchiveKey/),
    );
    synthesized.template.hasResourceProperties('AWS::S3::Bucket', {
      VersioningConfiguration: { Status: 'Enabled' },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          {
            ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: KEY_ARN },
            BucketKeyEnabled: true,
          },
        ],
      },
    });
    expect(kmsStatements(passStatements(synthesized))).toEqual([
      expect.objectContaining({ Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: KEY_ARN }),
    ]);
    expect(nagFindings(synthesized.app)).toEqual([]);
  });

  it('grants the key of an existing bucket, named by archiveKmsKeyArn', () => {
    const synthesized = synth({ bucketName: 'existing-archive', archiveKmsKeyArn: KEY_ARN });

    expect(kmsStatements(passStatements(synthesized))).toEqual([
      expect.objectContaining({ Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: KEY_ARN }),
    ]);
  });

  itRejects(synth, [
    [{ archiveEncryption: 'aes' as 'kms' }, /archiveEncryption must be "s3" or "kms", got "aes"/],
    [{ archiveKmsKeyArn: 'alias/archive' }, /archiveKmsKeyArn must be a KMS key ARN/],
    [
      { archiveEncryption: 's3' as const, archiveKmsKeyArn: KEY_ARN },
      /archiveKmsKeyArn applies only with archiveEncryption "kms"/,
    ],
    [
      { archiveEncryption: 'kms' as const, bucketName: 'existing' },
      /with an existing bucket needs archiveKmsKeyArn/,
    ],
  ]);
});

describe('cdk synth', () => {
  const cdk = offlineCdk('housekeeper-synth-');

  it('synthesizes offline without AWS credentials', CLI_TEST, async () => {
    const { code, output, outdir } = await cdk.synth(
      { ...REQUIRED_CONTEXT, maxBytesPerSecond: '8388608' },
      'cdk.out',
    );

    expect(code, output).toBe(0);
    expect(existsSync(join(outdir, 'TokensHousekeeper.template.json'))).toBe(true);
    expect(pluginReports(outdir)).toEqual([]);
    // The bundle keeps class names: an error at init is named by its class, as the runtime logs it.
    const resources = writtenResources(outdir);
    // The context's byte cap reaches the function (infra/app.ts -> settings -> environment).
    const functions = resources.filter((r) => r.Type === 'AWS::Lambda::Function');
    expect(functions.map((fn) => fn.Properties?.Environment?.Variables?.MAX_BYTES_PER_SECOND)).toContain(
      '8388608',
    );
    // The pass's bundle (the restore drill has its own).
    const assets = resources
      .filter(
        (resource) =>
          resource.Type === 'AWS::Lambda::Function' &&
          String(resource.Properties?.Description).startsWith('Archives finished tokens lines'),
      )
      .map((resource) => resource.Metadata?.['aws:asset:path'])
      .filter((path) => path !== undefined && existsSync(join(outdir, path, 'index.mjs')));
    expect(assets).toHaveLength(1);
    const init = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `try { await import(${JSON.stringify(join(outdir, String(assets[0]), 'index.mjs'))}); console.log('no error') } catch (e) { console.log('init error:', e.constructor.name, e.name) }`,
      ],
      cdk.env(),
    );
    expect(init.output).toContain('init error: ConfigError ConfigError');
  });

  it('fails naming the missing context keys', CLI_TEST, async () => {
    const { code, output } = await cdk.synth({}, 'cdk.out.missing');

    expect(code).not.toBe(0);
    expect(output).toMatch(/missing required context "tokensApiUrl" and "sessionKeySecret"/);
  });
});
