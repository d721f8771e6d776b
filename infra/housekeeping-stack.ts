import { fileURLToPath } from 'node:url';
import {
  Annotations,
  Arn,
  ArnFormat,
  CfnOutput,
  Duration,
  RemovalPolicy,
  Stack,
  type StackProps,
  Validations,
} from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import {
  type BundlingOptions,
  NodejsFunction,
  type NodejsFunctionProps,
  OutputFormat,
} from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import {
  DEFAULT_MEMORY_SIZE,
  EXEC_WRAPPER_FILE,
  EXEC_WRAPPER_PATH,
  FUNCTION_NODE_OPTIONS,
} from './function-runtime.ts';
import { HousekeepingMonitoring, METRICS_NAMESPACE, SERVICE_NAME } from './monitoring.ts';

/** Repository root: bundling resolves `lambda/handler.ts` and `package-lock.json` from here. */
const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));

export const DEFAULT_SCHEDULE = 'rate(1 hour)';
export const DEFAULT_ARCHIVE_PREFIX = 'tokens/';
export { DEFAULT_MEMORY_SIZE };
export const DEFAULT_TIMEOUT = Duration.minutes(15);
/** From the benchmark's concurrency sweep: 1.8x the lines/s of 4 with 20 ms round trips; ~170 MB peak with 8 large files. */
export const DEFAULT_LINE_CONCURRENCY = 8;
/** How long server access logs of the archive bucket are kept. */
const ACCESS_LOG_RETENTION = Duration.days(365);
/** Dead-letter and failure queues keep messages as long as SQS allows. */
const QUEUE_RETENTION = Duration.days(14);
/** Fan-out: worker invocations at once (the event source mapping's maximum concurrency). */
export const DEFAULT_WORKER_MAX_CONCURRENCY = 8;
/** Fan-out: messages, so lines, per worker invocation; as many as a worker handles at once by default. */
export const DEFAULT_WORKER_BATCH_SIZE = 4;
/** Fan-out: receives of a work message before SQS moves it to the worker dead-letter queue. */
export const WORK_MAX_RECEIVE_COUNT = 3;
/** AWS's guidance for SQS event sources: a visibility timeout of at least six function timeouts. */
const VISIBILITY_TIMEOUTS_PER_WORKER_TIMEOUT = 6;
/** Fan-out: queued markers are deleted by a lifecycle rule after this long. */
const QUEUED_MARKER_EXPIRATION = Duration.days(1);
/**
 * Pending-DELETE markers (a 202 not yet seen done) are deleted after this long: each run confirms
 * the ones it can, and a line still not gone after a month needs a person, not a marker.
 */
const PENDING_MARKER_EXPIRATION = Duration.days(30);

/** Local esbuild into one minified ESM file with a source map; the same for every function. */
const BUNDLING: BundlingOptions = {
  // Local esbuild from devDependencies; never Docker.
  forceDockerBundling: false,
  format: OutputFormat.ESM,
  // CommonJS dependencies bundled into ESM still call require(); give them one.
  banner: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
  mainFields: ['module', 'main'],
  minify: true,
  sourceMap: true,
  // Stack traces keep file, line and column; the map leaves out the sources themselves, which
  // made it 5 MB that Node parses at start under --enable-source-maps (memory, cold start).
  sourcesContent: false,
  // Bundle the AWS SDK too, so the pinned versions from package-lock.json run, not the runtime's.
  externalModules: [],
  // The exec wrapper (AWS_LAMBDA_EXEC_WRAPPER) goes next to the bundle, executable.
  commandHooks: {
    beforeBundling: () => [],
    beforeInstall: () => [],
    afterBundling: (inputDir, outputDir) => {
      const target = shellQuote(`${outputDir}/${EXEC_WRAPPER_FILE}`);
      return [`cp ${shellQuote(`${inputDir}/lambda/${EXEC_WRAPPER_FILE}`)} ${target}`, `chmod 755 ${target}`];
    },
  },
};

/** One shell word, whatever the path holds. */
function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** What every function of the stack shares: runtime, architecture, and where its code comes from. */
const FUNCTION_BASE = {
  handler: 'handler',
  projectRoot: PROJECT_ROOT,
  depsLockFilePath: `${PROJECT_ROOT}package-lock.json`,
  runtime: lambda.Runtime.NODEJS_24_X,
  architecture: lambda.Architecture.ARM_64,
  loggingFormat: lambda.LoggingFormat.JSON,
  bundling: BUNDLING,
} as const;

export interface HousekeepingStackProps extends StackProps {
  /** Base URL of the tokens service; must be https. */
  readonly tokensApiUrl: string;
  /**
   * Secrets Manager secret holding the session key: a name (`tokens/session-key`) or an ARN.
   * A complete ARN ends with the 6-character suffix Secrets Manager adds (`-AbC123`); an ARN
   * without it is treated as a partial ARN.
   */
  readonly sessionKeySecret: string;
  /** EventBridge Scheduler expression: `rate(...)`, `cron(...)` or `at(...)`. @default rate(1 hour) */
  readonly scheduleExpression?: string;
  /**
   * Archive into this existing bucket instead of creating one. The stack then manages neither its
   * configuration (versioning, lifecycle, logging, Object Lock) nor its lifetime.
   * @default - a bucket is created and retained
   */
  readonly bucketName?: string;
  /** Key prefix of all archived objects; ends with `/`. @default tokens/ */
  readonly archivePrefix?: string;
  /** Subscribe this address to the alarm topic. @default - no subscription */
  readonly alarmEmail?: string;
  /** Function memory in MB. @default 1024 */
  readonly memorySize?: number;
  /** Function timeout, at most 15 minutes. @default 15 minutes */
  readonly timeout?: Duration;
  /** Lines handled in parallel within one pass. @default 8 (DEFAULT_LINE_CONCURRENCY) */
  readonly lineConcurrency?: number;
  /**
   * A grace period (`MIN_AGE`): a line finished more recently waits for a later run. Whole seconds.
   * @default - none: every finished line is taken
   */
  readonly minAge?: Duration;
  /**
   * A cap on the requests each function process sends to the tokens service
   * (`MAX_REQUESTS_PER_SECOND`), retries included; in fan-out mode the service sees up to
   * `workerMaxConcurrency` times this.
   * @default - no cap
   */
  readonly maxRequestsPerSecond?: number;
  /** Move archived objects to Glacier Instant Retrieval after this many days. @default - no transition */
  readonly archiveTransitionDays?: number;
  /**
   * Enable S3 Object Lock on the created bucket with this default retention in governance mode.
   * Only possible when the stack creates the bucket, and only at creation.
   * @default - no Object Lock
   */
  readonly objectLockRetentionDays?: number;
  /**
   * `single`: the scheduled function runs the whole pass. `fanout`: it is a planner that sends one
   * SQS message per finished line, and a worker function archives and dismantles each line.
   * @default single
   */
  readonly mode?: 'single' | 'fanout';
  /** Fan-out only: at most this many worker invocations at once (2 to 1000). @default 8 */
  readonly workerMaxConcurrency?: number;
  /** Fan-out only: messages (lines) per worker invocation (1 to 10). @default 4 */
  readonly workerBatchSize?: number;
  /** Fan-out only: the worker's timeout, at most 15 minutes. @default - the function timeout */
  readonly workerTimeout?: Duration;
}

/** The fan-out resources (mode `fanout`). */
export interface FanoutResources {
  /** One message per finished line, sent by the planner. */
  readonly workQueue: sqs.Queue;
  /** Work messages received {@link WORK_MAX_RECEIVE_COUNT} times without success. */
  readonly workerDeadLetterQueue: sqs.Queue;
  readonly worker: NodejsFunction;
}

/**
 * The tokens housekeeper: a scheduled Lambda that archives finished tokens lines to S3 and then
 * dismantles them, with its schedule, archive bucket, failure queues, alarms and dashboard.
 */
export class HousekeepingStack extends Stack {
  public readonly fn: NodejsFunction;
  public readonly bucket: s3.IBucket;
  public readonly schedule: scheduler.Schedule;
  /** Receives the event of an asynchronous invocation that failed or expired. */
  public readonly failureQueue: sqs.Queue;
  /** Receives the event when EventBridge Scheduler could not invoke the function. */
  public readonly scheduleDeadLetterQueue: sqs.Queue;
  public readonly alarmTopic: sns.Topic;
  public readonly alarms: readonly cloudwatch.Alarm[];
  public readonly dashboard: cloudwatch.Dashboard;
  /** The work queue, its dead-letter queue and the worker; only in mode `fanout`. */
  public readonly fanout: FanoutResources | undefined;

  constructor(scope: Construct, id: string, props: HousekeepingStackProps) {
    super(scope, id, props);
    const settings = resolveSettings(props);

    // ---- Archive bucket -------------------------------------------------------------------
    this.bucket =
      props.bucketName === undefined
        ? this.createArchiveBucket(settings)
        : s3.Bucket.fromBucketName(this, 'ArchiveBucket', props.bucketName);

    // ---- Queues for what could not be delivered or did not succeed -------------------------
    this.failureQueue = this.createQueue('FailureQueue');
    this.scheduleDeadLetterQueue = this.createQueue('ScheduleDeadLetterQueue');
    this.fanout =
      settings.fanout === undefined ? undefined : this.createFanout(settings, settings.fanout, props);

    // ---- Function -------------------------------------------------------------------------
    const { fn, role } = this.createFunction('Function', settings, props.sessionKeySecret, {
      logGroupId: 'FunctionLogs',
      roleId: 'FunctionRole',
      // An explicit role instead of the AWSLambdaBasicExecutionRole managed policy: writing to
      // its own log group is all the function needs besides the grants below.
      roleDescription: 'tokens-housekeeper: read the session key, write the archive, write its logs',
      description:
        this.fanout === undefined
          ? 'Archives finished tokens lines to S3, verified by SHA-256, then deletes them on the service'
          : 'Fan-out planner: sends one message per finished tokens line to the work queue',
      entry: this.fanout === undefined ? 'handler' : 'planner-handler',
      timeout: settings.timeout,
      // Overlap guard: a pass never runs next to another one (a manual invoke meanwhile is throttled).
      reservedConcurrentExecutions: 1,
      // Asynchronous invocations (the schedule) are not retried: a failed pass is simply re-run by
      // the next scheduled one, and a retry could start while that one runs. Events that still
      // fail, or wait longer than maxEventAge (e.g. throttled behind a long pass), go to the
      // failure queue.
      retryAttempts: 0,
      maxEventAge: Duration.hours(1),
      onFailure: new destinations.SqsDestination(this.failureQueue),
      extraEnvironment:
        this.fanout === undefined || settings.fanout === undefined
          ? {}
          : {
              QUEUE_URL: this.fanout.workQueue.queueUrl,
              QUEUE_MARKER_TTL_SECONDS: String(settings.fanout.markerTtl.toSeconds()),
            },
    });
    this.fn = fn;

    if (this.fanout !== undefined) {
      // SendMessageBatch is authorised by sqs:SendMessage; nothing else on the work queue.
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'EnqueueWork',
          actions: ['sqs:SendMessage'],
          resources: [this.fanout.workQueue.queueArn],
        }),
      );
    }

    // ---- Schedule -------------------------------------------------------------------------
    this.schedule = new scheduler.Schedule(this, 'Schedule', {
      description: 'Full housekeeping pass of tokens-housekeeper',
      schedule: scheduler.ScheduleExpression.expression(settings.scheduleExpression),
      target: new targets.LambdaInvoke(this.fn, {
        role: this.createSchedulerRole(),
        input: scheduler.ScheduleTargetInput.fromObject({}),
        // A pass that could not be started within the hour is dropped to the DLQ: the next
        // scheduled pass does the same work, so catching up old ones has no value.
        retryAttempts: 2,
        maxEventAge: Duration.hours(1),
        deadLetterQueue: this.scheduleDeadLetterQueue,
      }),
    });

    // ---- Alarms and dashboard -------------------------------------------------------------
    this.alarmTopic = this.createAlarmTopic(props.alarmEmail);
    const monitoring = new HousekeepingMonitoring(this, 'Monitoring', {
      fn: this.fn,
      timeout: settings.timeout,
      scheduleExpression: settings.scheduleExpression,
      alarmTopic: this.alarmTopic,
      namePrefix: this.stackName,
      ...(this.fanout === undefined || settings.fanout === undefined
        ? {}
        : {
            fanout: {
              worker: this.fanout.worker,
              workerTimeout: settings.fanout.workerTimeout,
              workQueue: this.fanout.workQueue,
              maxConcurrency: settings.fanout.maxConcurrency,
            },
          }),
      queues: [
        {
          label: 'schedule-dlq',
          queue: this.scheduleDeadLetterQueue,
          meaning:
            'EventBridge Scheduler could not invoke the function (permissions, function missing, throttled API).',
        },
        {
          label: 'failure-queue',
          queue: this.failureQueue,
          meaning: 'A scheduled pass failed or expired before it could run; the message holds the error.',
        },
        ...(this.fanout === undefined
          ? []
          : [
              {
                label: 'worker-dlq',
                queue: this.fanout.workerDeadLetterQueue,
                meaning:
                  `A work message failed ${WORK_MAX_RECEIVE_COUNT} times: its line could not be archived or ` +
                  'dismantled (the line stays on the service), or the message is not a work message.',
              },
            ]),
      ],
    });
    this.alarms = monitoring.alarms;
    this.dashboard = monitoring.dashboard;

    new CfnOutput(this, 'FunctionName', { value: this.fn.functionName });
    new CfnOutput(this, 'ScheduleName', { value: this.schedule.scheduleName });
    new CfnOutput(this, 'ArchiveBucketName', { value: this.bucket.bucketName });
    new CfnOutput(this, 'FailureQueueUrl', { value: this.failureQueue.queueUrl });
    new CfnOutput(this, 'ScheduleDeadLetterQueueUrl', { value: this.scheduleDeadLetterQueue.queueUrl });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alarmTopic.topicArn });
    if (this.fanout !== undefined) {
      new CfnOutput(this, 'WorkerFunctionName', { value: this.fanout.worker.functionName });
      new CfnOutput(this, 'WorkQueueUrl', { value: this.fanout.workQueue.queueUrl });
      new CfnOutput(this, 'WorkerDeadLetterQueueUrl', { value: this.fanout.workerDeadLetterQueue.queueUrl });
    }
  }

  /** The environment contract of the functions (see lambda/config.ts). */
  private functionEnvironment(settings: Settings, sessionKeySecret: string): Record<string, string> {
    return {
      TOKENS_API_URL: settings.tokensApiUrl,
      SESSION_KEY_SECRET_ID: sessionKeySecret,
      ARCHIVE_BUCKET: this.bucket.bucketName,
      ARCHIVE_PREFIX: settings.archivePrefix,
      LINE_CONCURRENCY: String(settings.lineConcurrency),
      ...(settings.minAge === undefined ? {} : { MIN_AGE: String(settings.minAge.toSeconds()) }),
      ...(settings.maxRequestsPerSecond === undefined
        ? {}
        : { MAX_REQUESTS_PER_SECOND: String(settings.maxRequestsPerSecond) }),
      POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
      POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
      POWERTOOLS_LOG_LEVEL: 'INFO',
      // Node flags and the wrapper that lets them apply: infra/function-runtime.ts.
      NODE_OPTIONS: FUNCTION_NODE_OPTIONS,
      AWS_LAMBDA_EXEC_WRAPPER: EXEC_WRAPPER_PATH,
    };
  }

  /**
   * Fan-out: the work queue with its dead-letter queue, and the worker that consumes it through an
   * event source mapping (partial batch responses, bounded concurrency). The worker runs the same
   * per-line code as the pass, with the same access to the secret and the archive.
   */
  private createFanout(
    settings: Settings,
    fanout: FanoutSettings,
    props: HousekeepingStackProps,
  ): FanoutResources {
    const workerDeadLetterQueue = this.createQueue(
      'WorkerDeadLetterQueue',
      'This queue is itself the dead-letter destination of the work queue; it is alarmed on and read by an ' +
        'operator (the line of each message stays on the service), so a queue behind it would add nothing.',
    );
    const workQueue = new sqs.Queue(this, 'WorkQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // Above the worker's timeout, so a message is never handed to a second worker while the
      // first still holds it; six times, as AWS advises, to leave room for throttled retries.
      visibilityTimeout: fanout.visibilityTimeout,
      deadLetterQueue: { queue: workerDeadLetterQueue, maxReceiveCount: WORK_MAX_RECEIVE_COUNT },
    });

    const { fn: worker } = this.createFunction('Worker', settings, props.sessionKeySecret, {
      logGroupId: 'WorkerLogs',
      roleId: 'WorkerRole',
      roleDescription:
        'tokens-housekeeper worker: read the session key, write the archive, consume the work queue, write its logs',
      description:
        'Fan-out worker: archives the tokens lines of the work queue to S3, verified, then deletes them',
      entry: 'worker-handler',
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
    if (props.bucketName !== undefined) {
      Annotations.of(this).addWarningV2(
        'tokens-housekeeper:queuedMarkersLifecycle',
        `Fan-out into an existing bucket: add a lifecycle rule expiring "${settings.archivePrefix}_queued/" ` +
          'after 1 day (and its noncurrent versions) yourself; the stack cannot.',
      );
    }
    return { workQueue, workerDeadLetterQueue, worker };
  }

  /**
   * A function of the stack: its own retained log group (the logs record which lines were
   * dismantled; the retention still expires them), its own role that may write that log group,
   * read the secret and write the archive, and the shared runtime, bundling and environment.
   */
  private createFunction(
    id: string,
    settings: Settings,
    sessionKeySecret: string,
    options: {
      readonly logGroupId: string;
      readonly roleId: string;
      readonly roleDescription: string;
      readonly description: string;
      /** The file under lambda/, without `.ts`. */
      readonly entry: string;
      readonly timeout: Duration;
      readonly extraEnvironment?: Record<string, string>;
    } & Pick<
      NodejsFunctionProps,
      'reservedConcurrentExecutions' | 'retryAttempts' | 'maxEventAge' | 'onFailure'
    >,
  ): { fn: NodejsFunction; role: iam.Role } {
    const { logGroupId, roleId, roleDescription, entry, extraEnvironment, ...functionProps } = options;
    const logGroup = new logs.LogGroup(this, logGroupId, {
      retention: logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const role = new iam.Role(this, roleId, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: roleDescription,
    });
    logGroup.grantWrite(role);
    const fn = new NodejsFunction(this, id, {
      ...functionProps,
      entry: `${PROJECT_ROOT}lambda/${entry}.ts`,
      ...FUNCTION_BASE,
      // Defaults from the benchmark (see DEFAULT_MEMORY_SIZE), exposed as props.
      memorySize: settings.memorySize,
      role,
      logGroup,
      environment: { ...this.functionEnvironment(settings, sessionKeySecret), ...extraEnvironment },
    });
    this.grantSecretRead(role, sessionKeySecret);
    this.grantArchiveAccess(role, settings.archivePrefix);
    return { fn, role };
  }

  private createArchiveBucket(settings: Settings): s3.Bucket {
    const accessLogs = new s3.Bucket(this, 'AccessLogsBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: 'expire-access-logs', expiration: ACCESS_LOG_RETENTION }],
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const lifecycleRules: s3.LifecycleRule[] = [
      { id: 'abort-incomplete-multipart-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
      {
        id: 'expire-pending-markers',
        prefix: `${settings.archivePrefix}_pending/`,
        expiration: PENDING_MARKER_EXPIRATION,
        noncurrentVersionExpiration: PENDING_MARKER_EXPIRATION,
      },
    ];
    if (settings.fanout !== undefined) {
      // The planner's markers matter for a few hours; the function cannot delete them, S3 does.
      const prefix = `${settings.archivePrefix}_queued/`;
      lifecycleRules.push(
        {
          id: 'expire-queued-markers',
          prefix,
          expiration: QUEUED_MARKER_EXPIRATION,
          noncurrentVersionExpiration: QUEUED_MARKER_EXPIRATION,
        },
        // A separate rule: S3 does not take this action together with an expiration in days.
        { id: 'remove-queued-marker-delete-markers', prefix, expiredObjectDeleteMarker: true },
      );
    }
    if (settings.archiveTransitionDays !== undefined) {
      lifecycleRules.push({
        id: 'archive-transition',
        prefix: settings.archivePrefix,
        transitions: [
          {
            storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
            transitionAfter: Duration.days(settings.archiveTransitionDays),
          },
        ],
      });
    }

    return new s3.Bucket(this, 'ArchiveBucket', {
      versioned: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'archive-bucket/',
      lifecycleRules,
      ...(settings.objectLockRetentionDays === undefined
        ? {}
        : {
            objectLockEnabled: true,
            objectLockDefaultRetention: s3.ObjectLockRetention.governance(
              Duration.days(settings.objectLockRetentionDays),
            ),
          }),
      // The archive outlives the stack: deleting the stack never deletes archived lines.
      removalPolicy: RemovalPolicy.RETAIN,
      autoDeleteObjects: false,
    });
  }

  private createQueue(
    id: string,
    reason = 'This queue is itself a dead-letter destination (of the schedule or of asynchronous invocations); ' +
      'it is alarmed on and read by an operator, so a queue behind it would add nothing.',
  ): sqs.Queue {
    const queue = new sqs.Queue(this, id, {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: QUEUE_RETENTION,
    });
    Validations.of(queue).acknowledge({ id: 'AwsSolutions-SQS3', reason });
    return queue;
  }

  /** GetSecretValue on the one secret, nothing else (grantRead would add DescribeSecret). */
  private grantSecretRead(role: iam.IRole, secretRef: string): void {
    // Imported once; the worker (fan-out) is granted the same.
    const secret =
      (this.node.tryFindChild('SessionKeySecret') as secretsmanager.ISecret | undefined) ??
      importSecret(this, secretRef);
    // A name or partial ARN matches the full ARN only with the 6-character suffix wildcard.
    const resource = secret.secretFullArn ?? `${secret.secretArn}-??????`;
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadSessionKey',
        actions: ['secretsmanager:GetSecretValue'],
        resources: [resource],
      }),
    );
  }

  /**
   * Object access under the prefix only, listing only within it, and never a delete. The
   * conditioned ListBucket also makes a missing key under the prefix answer 404 instead of 403
   * (S3 evaluates `s3:prefix` as the requested key), which the function's existence checks need.
   */
  private grantArchiveAccess(role: iam.Role, prefix: string): void {
    const objects = this.bucket.arnForObjects(`${prefix}*`);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ArchiveObjects',
        actions: ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
        resources: [objects],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ListArchivePrefix',
        actions: ['s3:ListBucket'],
        resources: [this.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } },
      }),
    );
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagFlatten(this.resolve(objects))}]`,
      reason:
        'Object keys are created at run time (one per archived file, manifest and receipt); the wildcard is ' +
        `limited to the archive prefix "${prefix}" of the one bucket, and no delete action is granted.`,
    });
  }

  /**
   * The scheduler's role, with InvokeFunction on the function itself only. It is handed to the
   * target as immutable so the target's own grant (which adds the `:*` qualifier wildcard) and
   * its DLQ grant do not widen it; both are given here explicitly.
   */
  private createSchedulerRole(): iam.IRole {
    const role = new iam.Role(this, 'SchedulerRole', {
      description: 'EventBridge Scheduler: invoke tokens-housekeeper, dead-letter to its queue',
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: {
          StringEquals: {
            'aws:SourceAccount': this.account,
            'aws:SourceArn': this.formatArn({
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
        resources: [this.fn.functionArn],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'DeadLetter',
        actions: ['sqs:SendMessage'],
        resources: [this.scheduleDeadLetterQueue.queueArn],
      }),
    );
    return role.withoutPolicyUpdates();
  }

  private createAlarmTopic(alarmEmail: string | undefined): sns.Topic {
    // CloudWatch alarms can publish to an encrypted topic only with a customer managed key
    // whose policy lets CloudWatch use it (the AWS managed SNS key does not).
    const key = new kms.Key(this, 'AlarmTopicKey', {
      description: 'tokens-housekeeper alarm topic encryption',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    key.grant(new iam.ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');
    const topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: 'tokens-housekeeper alarms',
      masterKey: key,
      enforceSSL: true,
    });
    if (alarmEmail !== undefined) {
      topic.addSubscription(new subscriptions.EmailSubscription(alarmEmail));
    }
    return topic;
  }
}

interface Settings {
  readonly tokensApiUrl: string;
  readonly scheduleExpression: string;
  readonly archivePrefix: string;
  readonly memorySize: number;
  readonly timeout: Duration;
  readonly lineConcurrency: number;
  readonly minAge: Duration | undefined;
  readonly maxRequestsPerSecond: number | undefined;
  readonly archiveTransitionDays: number | undefined;
  readonly objectLockRetentionDays: number | undefined;
  /** Only in mode `fanout`. */
  readonly fanout: FanoutSettings | undefined;
}

interface FanoutSettings {
  readonly batchSize: number;
  readonly maxConcurrency: number;
  readonly workerTimeout: Duration;
  /** {@link VISIBILITY_TIMEOUTS_PER_WORKER_TIMEOUT} worker timeouts. */
  readonly visibilityTimeout: Duration;
  /**
   * How long the planner treats a line as queued: as long as its message can be in the queue
   * between deliveries, `maxReceiveCount` visibility timeouts; after that it is done or dead-lettered.
   */
  readonly markerTtl: Duration;
}

/** Defaults applied and every prop checked, so a mistake fails the synth and names the prop. */
function resolveSettings(props: HousekeepingStackProps): Settings {
  const fail = (message: string): never => {
    throw new Error(`HousekeepingStack: ${message}`);
  };

  let url: URL | undefined;
  try {
    url = new URL(props.tokensApiUrl);
  } catch {
    fail(`tokensApiUrl is not a URL: "${props.tokensApiUrl}"`);
  }
  if (url?.protocol !== 'https:') fail(`tokensApiUrl must be an https URL, got "${props.tokensApiUrl}"`);

  if (props.sessionKeySecret.trim() === '') fail('sessionKeySecret is empty');

  const scheduleExpression = props.scheduleExpression ?? DEFAULT_SCHEDULE;
  if (!/^(rate|cron|at)\(.+\)$/.test(scheduleExpression)) {
    fail(`scheduleExpression must be rate(...), cron(...) or at(...), got "${scheduleExpression}"`);
  }

  const archivePrefix = props.archivePrefix ?? DEFAULT_ARCHIVE_PREFIX;
  if (!/^[A-Za-z0-9!_.()'-][A-Za-z0-9!_.()'/-]*\/$/.test(archivePrefix)) {
    fail(
      `archivePrefix must be a non-empty key prefix ending in "/", not starting with "/", without wildcards, got "${archivePrefix}"`,
    );
  }

  const memorySize = props.memorySize ?? DEFAULT_MEMORY_SIZE;
  if (!Number.isInteger(memorySize) || memorySize < 128 || memorySize > 10240) {
    fail(`memorySize must be an integer between 128 and 10240 MB, got ${memorySize}`);
  }
  const timeout = props.timeout ?? DEFAULT_TIMEOUT;
  if (timeout.toSeconds() < 1 || timeout.toSeconds() > 900) {
    fail(`timeout must be between 1 second and 15 minutes, got ${timeout.toHumanString()}`);
  }
  const lineConcurrency = props.lineConcurrency ?? DEFAULT_LINE_CONCURRENCY;
  if (!Number.isInteger(lineConcurrency) || lineConcurrency < 1) {
    fail(`lineConcurrency must be a positive integer, got ${lineConcurrency}`);
  }

  const minAge = props.minAge;
  const minAgeSeconds = minAge?.toSeconds({ integral: false });
  if (minAgeSeconds !== undefined && (!Number.isInteger(minAgeSeconds) || minAgeSeconds < 1)) {
    fail(`minAge must be a whole number of seconds, at least 1, got ${minAge?.toHumanString()}`);
  }
  const maxRequestsPerSecond = props.maxRequestsPerSecond;
  if (
    maxRequestsPerSecond !== undefined &&
    (!Number.isInteger(maxRequestsPerSecond) || maxRequestsPerSecond < 1 || maxRequestsPerSecond > 100_000)
  ) {
    fail(`maxRequestsPerSecond must be an integer between 1 and 100000, got ${maxRequestsPerSecond}`);
  }

  const positiveDays = (name: string, value: number | undefined): number | undefined => {
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
      fail(`${name} must be a positive whole number of days, got ${value}`);
    }
    if (value !== undefined && props.bucketName !== undefined) {
      fail(`${name} applies only to a bucket the stack creates; remove it or bucketName`);
    }
    return value;
  };

  const mode = props.mode ?? 'single';
  if (mode !== 'single' && mode !== 'fanout')
    fail(`mode must be "single" or "fanout", got "${String(mode)}"`);
  const fanoutOnly = <T>(name: string, value: T | undefined): T | undefined => {
    if (value !== undefined && mode !== 'fanout')
      fail(`${name} applies only to mode "fanout"; remove it or set mode`);
    return value;
  };
  const batchSize = fanoutOnly('workerBatchSize', props.workerBatchSize) ?? DEFAULT_WORKER_BATCH_SIZE;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10) {
    fail(`workerBatchSize must be an integer between 1 and 10, got ${batchSize}`);
  }
  const maxConcurrency =
    fanoutOnly('workerMaxConcurrency', props.workerMaxConcurrency) ?? DEFAULT_WORKER_MAX_CONCURRENCY;
  if (!Number.isInteger(maxConcurrency) || maxConcurrency < 2 || maxConcurrency > 1000) {
    fail(`workerMaxConcurrency must be an integer between 2 and 1000, got ${maxConcurrency}`);
  }
  const workerTimeout = fanoutOnly('workerTimeout', props.workerTimeout) ?? timeout;
  if (workerTimeout.toSeconds() < 1 || workerTimeout.toSeconds() > 900) {
    fail(`workerTimeout must be between 1 second and 15 minutes, got ${workerTimeout.toHumanString()}`);
  }
  const visibilityTimeout = Duration.seconds(
    workerTimeout.toSeconds() * VISIBILITY_TIMEOUTS_PER_WORKER_TIMEOUT,
  );

  return {
    tokensApiUrl: props.tokensApiUrl,
    scheduleExpression,
    archivePrefix,
    memorySize,
    timeout,
    lineConcurrency,
    minAge,
    maxRequestsPerSecond,
    archiveTransitionDays: positiveDays('archiveTransitionDays', props.archiveTransitionDays),
    objectLockRetentionDays: positiveDays('objectLockRetentionDays', props.objectLockRetentionDays),
    fanout:
      mode === 'fanout'
        ? {
            batchSize,
            maxConcurrency,
            workerTimeout,
            visibilityTimeout,
            markerTtl: Duration.seconds(visibilityTimeout.toSeconds() * WORK_MAX_RECEIVE_COUNT),
          }
        : undefined,
  };
}

/** Secrets Manager appends "-" and 6 random characters to the name in a secret's full ARN. */
const FULL_SECRET_ARN_SUFFIX = /-[A-Za-z0-9]{6}$/;

function importSecret(scope: Construct, ref: string): secretsmanager.ISecret {
  if (!ref.startsWith('arn:')) {
    return secretsmanager.Secret.fromSecretNameV2(scope, 'SessionKeySecret', ref);
  }
  const name = Arn.split(ref, ArnFormat.COLON_RESOURCE_NAME).resourceName ?? '';
  return FULL_SECRET_ARN_SUFFIX.test(name)
    ? secretsmanager.Secret.fromSecretCompleteArn(scope, 'SessionKeySecret', ref)
    : secretsmanager.Secret.fromSecretPartialArn(scope, 'SessionKeySecret', ref);
}

/**
 * A resolved CloudFormation value flattened the way cdk-nag names IAM5 findings
 * (`Fn::GetAtt` -> `<Id.Attr>`, `Ref` -> `<Id>`, `Fn::Join` joined), so an acknowledgement
 * can name the exact resource instead of silencing the rule for the whole role.
 */
function nagFlatten(value: unknown): string {
  if (typeof value === 'string') return value.replace(/\$\{/g, '<').replace(/\}/g, '>');
  if (value !== null && typeof value === 'object') {
    const node = value as Record<string, unknown>;
    const join = node['Fn::Join'];
    if (Array.isArray(join)) {
      const [delimiter, items] = join as [string, unknown[]];
      return items.map(nagFlatten).join(delimiter);
    }
    const getAtt = node['Fn::GetAtt'];
    if (Array.isArray(getAtt)) return `<${nagFlatten(getAtt[0])}.${nagFlatten(getAtt[1])}>`;
    if ('Ref' in node) return `<${nagFlatten(node.Ref)}>`;
  }
  return JSON.stringify(value);
}
