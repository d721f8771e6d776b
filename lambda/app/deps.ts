import type { Logger } from '@aws-lambda-powertools/logger';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SQSClient } from '@aws-sdk/client-sqs';
import PQueue from 'p-queue';
import { Agent } from 'undici';
import { Archive } from '../archive/archive.ts';
import { signWithStatedPayloadHash } from '../archive/stated-payload-hash.ts';
import type { ArchiveConfig, Config, Deps, FanoutConfig, MetricsSink } from '../core/types.ts';
import { secretsManagerSessionKey } from '../secrets/session-key.ts';
import { BYTES_READ_AHEAD_PER_DOWNLOAD, downloadsAtOnce } from '../shared/contract.ts';
import { describeError } from '../shared/errors.ts';
import type { RequestGate } from '../tokens/api.ts';
import { TokensApi } from '../tokens/api.ts';
import { BandwidthCap } from '../tokens/bandwidth.ts';
import { loadArchiveConfig } from './config.ts';

/**
 * How an audit (which talks to no service) reads the DELETE replies receipts kept: the tokens
 * adapter's reading, the one a pass gives a live reply.
 */
export { readKeptReply } from '../tokens/document.ts';

import { serviceLogger } from './logging.ts';
import { formatUndiciNoticesPlainly } from './stack-traces.ts';

/** The AWS SDK's console warnings, sent to our logger instead (we abort failed uploads on purpose). */
function sdkLogger(logger: Logger) {
  return {
    debug: () => undefined,
    info: () => undefined,
    warn: (...args: unknown[]) => logger.debug('aws sdk warning', { detail: args.map(sdkDetail).join(' ') }),
    error: (...args: unknown[]) => logger.debug('aws sdk error', { detail: args.map(sdkDetail).join(' ') }),
  };
}

/** What every SDK client of the housekeeper is given: our logger, the endpoint override, timeouts. */
function clientOptions(
  logger: Logger,
  endpoint: string | undefined,
  connectTimeoutMs: number,
  requestTimeoutMs: number,
  maxSockets = SDK_MAX_SOCKETS,
) {
  const agent = { keepAlive: true, maxSockets };
  return {
    logger: sdkLogger(logger),
    ...(endpoint === undefined ? {} : { endpoint }),
    requestHandler: {
      connectionTimeout: connectTimeoutMs,
      requestTimeout: requestTimeoutMs,
      httpAgent: agent,
      httpsAgent: agent,
    },
  };
}

/** The SDK's own default of sockets per host (`NodeHttpHandler`), kept as the least. */
const SDK_MAX_SOCKETS = 50;

/**
 * Sockets to S3 a pass may hold at once: each file in flight with its parts and one more (its
 * record or receipt), and never fewer than the SDK's 50. A request waiting for a socket counts
 * against the connect timeout, so too few would fail requests that are only queued.
 */
export function s3Sockets(config: {
  readonly lineConcurrency: number;
  readonly fileConcurrency: number;
  readonly upload: { readonly partsInFlight: number };
}): number {
  const files = downloadsAtOnce(config.lineConcurrency, config.fileConcurrency);
  return Math.max(SDK_MAX_SOCKETS, files * (config.upload.partsInFlight + 1));
}

/** The S3 client of the archive. Region and credentials come from the standard AWS_* variables. */
export function createS3Client(config: ArchiveConfig, logger: Logger, maxSockets?: number): S3Client {
  const s3 = new S3Client({
    // The override was read from AWS_ENDPOINT_URL_S3 and is passed on so the config's
    // environment is the one that counts; a local or third-party store has no per-bucket DNS names.
    ...clientOptions(logger, config.s3EndpointOverride, config.http.connectTimeoutMs, 120_000, maxSockets),
    ...(config.s3EndpointOverride === undefined ? {} : { forcePathStyle: true }),
  });
  signWithStatedPayloadHash(s3);
  // Its per-request log (each input and output copied through the SDK's log filters) goes to an
  // info our logger drops; a failed request is reported by the archive's own errors.
  s3.middlewareStack.remove('loggerMiddleware');
  return s3;
}

/** The SQS client of the fan-out planner. Region and credentials come from the standard AWS_* variables. */
export function createSqsClient(
  config: Pick<Config, 'http'> & { fanout: FanoutConfig },
  logger: Logger,
): SQSClient {
  // With an override (local runs) requests go there, not to the host named in the queue URL.
  return new SQSClient(
    clientOptions(logger, config.fanout.sqsEndpointOverride, config.http.connectTimeoutMs, 30_000),
  );
}

/** The archive over an S3 client, laid out and tuned as the configuration says. */
export function createArchive(s3: S3Client, config: ArchiveConfig): Archive {
  return new Archive({ s3, bucket: config.archiveBucket, prefix: config.archivePrefix, ...config.upload });
}

/** S3 client and archive for the terminal tools that only read the archive (audit, restore). */
export function archiveAccess(env: Readonly<Record<string, string | undefined>>): Archive {
  const config = loadArchiveConfig(env);
  return createArchive(createS3Client(config, serviceLogger()), config);
}

/**
 * The process-wide cap on requests to the tokens service (`MAX_REQUESTS_PER_SECOND`): p-queue,
 * one start per 1/cap of a second in a strict (sliding) window, so no one-second window starts
 * more than the cap and the starts are spread over it, not sent in bursts that the service's
 * arrival times could bunch into more than the cap (the e2e controls test counts there). Requests
 * wait in order; one whose signal aborts while it waits (the run's deadline) leaves the queue and
 * takes no slot, so the requests that go on after it (the GET confirming a DELETE, in its own
 * window) do not wait for the abandoned ones. Urgent requests (those around a DELETE) go before
 * the others waiting, in their own order. Undefined: no cap.
 */
export function requestGate(perSecond: number | undefined): RequestGate | undefined {
  if (perSecond === undefined) return undefined;
  const queue = new PQueue({ intervalCap: 1, interval: 1000 / perSecond, strict: true });
  return async (signal, urgent) => {
    signal?.throwIfAborted();
    const priority = urgent === true ? 1 : 0;
    await queue.add(() => undefined, signal === undefined ? { priority } : { signal, priority });
  };
}

/**
 * Production wiring: the only place SDK clients and the HTTP agent are built. The adapters meet
 * the core's ports here (`Deps`); the archive keeps its S3 type for what only the wiring reads
 * (its upload budget).
 */
export function createDeps(
  config: Config,
  options: { logger?: Logger; metrics?: MetricsSink } = {},
): Deps & { readonly archive: Archive } {
  // Region and credentials come from the standard AWS_* variables; the endpoint overrides were
  // read from them too, and are passed on so the config's environment is the one that counts.
  const logger = options.logger ?? serviceLogger();
  const s3 = createS3Client(config, logger, s3Sockets(config));
  const secrets = new SecretsManagerClient(
    clientOptions(logger, config.secretsEndpointOverride, config.http.connectTimeoutMs, 30_000),
  );
  // The agent's idle connections close with a notice whose stack Node reads: keep it off the source map.
  formatUndiciNoticesPlainly();
  const http = new Agent({
    connect: { timeout: config.http.connectTimeoutMs },
    headersTimeout: config.http.headersTimeoutMs,
    bodyTimeout: config.http.bodyTimeoutMs,
    keepAliveTimeout: 10_000,
  });
  const now = () => Date.now();
  const sessionKey = secretsManagerSessionKey({
    client: secrets,
    secretId: config.sessionKeySecretId,
    ttlMs: config.sessionKeyTtlMs,
    now,
    endpoint: config.secretsEndpointOverride,
  });
  // One per container: the cap holds across every run and line of the process.
  const gate = requestGate(config.maxRequestsPerSecond);
  const bandwidth =
    config.maxBytesPerSecond === undefined
      ? undefined
      : new BandwidthCap(
          config.maxBytesPerSecond,
          downloadsAtOnce(config.lineConcurrency, config.fileConcurrency) * BYTES_READ_AHEAD_PER_DOWNLOAD,
        );
  return {
    archive: createArchive(s3, config),
    tokens: ({ onRetry, signal }) =>
      new TokensApi({
        baseUrl: config.tokensApiUrl,
        dispatcher: http,
        sessionKey,
        retry: config.retry,
        onRetry,
        download: config.download,
        ...(signal === undefined ? {} : { signal }),
        ...(gate === undefined ? {} : { gate }),
        ...(bandwidth === undefined ? {} : { bandwidth }),
      }),
    now,
    logger,
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
  };
}

/** One argument of an SDK log call in words: an error's name and message, an object as JSON. */
function sdkDetail(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value instanceof Error) return describeError(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
