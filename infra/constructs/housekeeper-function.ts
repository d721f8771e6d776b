import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import {
  type BundlingOptions,
  NodejsFunction,
  type NodejsFunctionProps,
  OutputFormat,
} from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { METRICS_NAMESPACE, SERVICE_NAME } from '../../lambda/shared/contract.ts';
import { VARIABLES as V } from '../../lambda/shared/environment.ts';
import { FUNCTION_NODE_OPTIONS } from '../function-runtime.ts';
import type { Settings } from '../settings.ts';
import { grantArchiveAccess, grantEnqueueWork, grantSecretRead } from './function-grants.ts';

/** Repository root: bundling resolves the entries under `lambda/` and `package-lock.json` from here. */
export const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The Lambda handlers, as files under `lambda/` without `.ts`. */
export const LAMBDA_ENTRIES = {
  /** Mode `single`: the whole pass. */
  pass: 'handler',
  /** Mode `fanout`: the scheduled planner. */
  planner: 'planner-handler',
  /** Mode `fanout`: the consumer of the work queue. */
  worker: 'worker-handler',
  /** The restore drill (its own function and schedule, unless `restoreDrills` is off). */
  drill: 'drill-handler',
} as const;

/** Local esbuild into one minified ESM file with a source map; the same for every function. */
const BUNDLING: BundlingOptions = {
  // Local esbuild from devDependencies; never Docker.
  forceDockerBundling: false,
  format: OutputFormat.ESM,
  // CommonJS dependencies bundled into ESM still call require(); give them one.
  banner: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
  mainFields: ['module', 'main'],
  minify: true,
  // Class and function names survive minification: an error's constructor (as the runtime prints
  // an init error, `ConfigError` rather than `t`) and the functions of a stack trace keep their names.
  keepNames: true,
  sourceMap: true,
  // Stack traces keep file, line and column; the map leaves out the sources themselves, which
  // made it 5 MB that Node parses at start under --enable-source-maps (memory, cold start).
  sourcesContent: false,
  // Bundle the AWS SDK too, so the pinned versions from package-lock.json run, not the runtime's.
  externalModules: [],
};

/** What every function of the stack shares: runtime, architecture, and where its code comes from. */
export const FUNCTION_BASE = {
  handler: 'handler',
  projectRoot: PROJECT_ROOT,
  depsLockFilePath: `${PROJECT_ROOT}package-lock.json`,
  runtime: lambda.Runtime.NODEJS_24_X,
  architecture: lambda.Architecture.ARM_64,
  loggingFormat: lambda.LoggingFormat.JSON,
  bundling: BUNDLING,
} as const;

/** How one function of the stack differs from the others. */
interface FunctionOptions
  extends Pick<
    NodejsFunctionProps,
    'reservedConcurrentExecutions' | 'retryAttempts' | 'maxEventAge' | 'onFailure'
  > {
  /** Construct id of its log group. */
  readonly logGroupId: string;
  /** Construct id of its role. */
  readonly roleId: string;
  /** What the role may do, in IAM's description. */
  readonly roleDescription: string;
  /** What the function does, in Lambda's description. */
  readonly description: string;
  /** The file under lambda/entries/, without `.ts`: one of {@link LAMBDA_ENTRIES}. */
  readonly entry: string;
  /** At most 15 minutes, checked by resolveSettings. */
  readonly timeout: Duration;
  /** Variables on top of {@link functionEnvironment}. @default - none */
  readonly extraEnvironment?: Record<string, string>;
}

/**
 * A function of the stack (id `id`, created in `scope`): its own retained log group (the logs
 * record which lines were dismantled; the retention still expires them), its own role that may
 * write that log group, read the secret and write the archive, and the shared runtime, bundling
 * and environment.
 */
export function createFunction(
  scope: Construct,
  id: string,
  settings: Settings,
  bucket: s3.IBucket,
  options: FunctionOptions,
): { fn: NodejsFunction; role: iam.Role } {
  const { logGroupId, roleId, roleDescription, entry, extraEnvironment, ...functionProps } = options;
  const logGroup = new logs.LogGroup(scope, logGroupId, {
    retention: logs.RetentionDays.THREE_MONTHS,
    removalPolicy: RemovalPolicy.RETAIN,
  });
  const role = new iam.Role(scope, roleId, {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: roleDescription,
  });
  logGroup.grantWrite(role);
  const fn = new NodejsFunction(scope, id, {
    ...functionProps,
    entry: `${PROJECT_ROOT}lambda/entries/${entry}.ts`,
    ...FUNCTION_BASE,
    // Defaults from the benchmark (see DEFAULT_MEMORY_SIZE), exposed as props.
    memorySize: settings.memorySize,
    role,
    logGroup,
    environment: { ...functionEnvironment(settings, bucket), ...extraEnvironment },
  });
  grantSecretRead(role, settings.sessionKeySecret);
  grantArchiveAccess(role, bucket, settings.archivePrefix);
  return { fn, role };
}

/**
 * The scheduled function (id `Function`): the whole pass in mode `single`; in mode `fanout` the
 * planner, which may send to `workQueue` and nothing more. One runs at a time, and a failed or
 * expired invocation goes to `failureQueue`.
 */
export function createScheduledFunction(
  scope: Construct,
  settings: Settings,
  bucket: s3.IBucket,
  queues: { readonly failureQueue: sqs.IQueue; readonly workQueue: sqs.IQueue | undefined },
): NodejsFunction {
  const { failureQueue, workQueue } = queues;
  const planner = workQueue !== undefined && settings.fanout !== undefined;
  const { fn, role } = createFunction(scope, 'Function', settings, bucket, {
    logGroupId: 'FunctionLogs',
    roleId: 'FunctionRole',
    // An explicit role instead of the AWSLambdaBasicExecutionRole managed policy: writing to
    // its own log group is all the function needs besides the grants below.
    roleDescription: 'tokens-housekeeper: read the session key, write the archive, write its logs',
    description: planner
      ? 'Fan-out planner: sends one message per finished tokens line to the work queue'
      : 'Archives finished tokens lines to S3, verified by SHA-256, then deletes them on the service',
    entry: planner ? LAMBDA_ENTRIES.planner : LAMBDA_ENTRIES.pass,
    timeout: settings.timeout,
    // Overlap guard: a pass never runs next to another one (a manual invoke meanwhile is throttled).
    reservedConcurrentExecutions: 1,
    // Asynchronous invocations (the schedule) are not retried: a failed pass is simply re-run by
    // the next scheduled one, and a retry could start while that one runs. Events that still
    // fail, or wait longer than maxEventAge (e.g. throttled behind a long pass), go to the
    // failure queue.
    retryAttempts: 0,
    maxEventAge: Duration.hours(1),
    onFailure: new destinations.SqsDestination(failureQueue),
    extraEnvironment:
      planner && settings.fanout !== undefined
        ? {
            [V.QUEUE_URL.name]: workQueue.queueUrl,
            [V.QUEUE_MARKER_TTL_SECONDS.name]: String(settings.fanout.markerTtl.toSeconds()),
          }
        : {},
  });
  if (planner) grantEnqueueWork(role, workQueue);
  return fn;
}

/**
 * The environment contract of the functions (read by lambda/app/config.ts), named by the table of
 * lambda/shared/environment.ts.
 */
function functionEnvironment(settings: Settings, bucket: s3.IBucket): Record<string, string> {
  return {
    [V.TOKENS_API_URL.name]: settings.tokensApiUrl,
    [V.SESSION_KEY_SECRET_ID.name]: settings.sessionKeySecret,
    [V.ARCHIVE_BUCKET.name]: bucket.bucketName,
    [V.ARCHIVE_PREFIX.name]: settings.archivePrefix,
    [V.LINE_CONCURRENCY.name]: String(settings.lineConcurrency),
    ...(settings.minAge === undefined ? {} : { [V.MIN_AGE.name]: String(settings.minAge.toSeconds()) }),
    ...(settings.maxRequestsPerSecond === undefined
      ? {}
      : { [V.MAX_REQUESTS_PER_SECOND.name]: String(settings.maxRequestsPerSecond) }),
    ...settings.dismantleGuard,
    ...(settings.maxBytesPerSecond === undefined
      ? {}
      : { [V.MAX_BYTES_PER_SECOND.name]: String(settings.maxBytesPerSecond) }),
    ...runtimeEnvironment(),
  };
}

/** What every function of the stack sets for Powertools and Node.js, the restore drill's included. */
export function runtimeEnvironment(): Record<string, string> {
  return {
    [V.POWERTOOLS_SERVICE_NAME.name]: SERVICE_NAME,
    [V.POWERTOOLS_METRICS_NAMESPACE.name]: METRICS_NAMESPACE,
    [V.POWERTOOLS_LOG_LEVEL.name]: V.POWERTOOLS_LOG_LEVEL.default,
    // Node flags and the wrapper that lets them apply: infra/function-runtime.ts.
    [V.NODE_OPTIONS.name]: FUNCTION_NODE_OPTIONS,
  };
}
