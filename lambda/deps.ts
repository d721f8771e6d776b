import { Logger } from '@aws-lambda-powertools/logger';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Agent } from 'undici';
import type { Config } from './config.ts';
import type { Deps, MetricsSink } from './housekeeping.ts';
import { secretsManagerSessionKey } from './session-key.ts';

/** Production wiring: the only place SDK clients and the HTTP agent are built. */
export function createDeps(config: Config, options: { logger?: Logger; metrics?: MetricsSink } = {}): Deps {
  // Region and credentials come from the standard AWS_* variables; the endpoint overrides were
  // read from them too, and are passed on so the config's environment is the one that counts.
  const logger = options.logger ?? new Logger({ serviceName: 'tokens-housekeeper' });
  // The SDK warns on console when a streamed upload fails; we abort those on purpose.
  const sdkLogger = {
    debug: () => undefined,
    info: () => undefined,
    warn: (...args: unknown[]) => logger.debug('aws sdk warning', { detail: args.map(String).join(' ') }),
    error: (...args: unknown[]) => logger.debug('aws sdk error', { detail: args.map(String).join(' ') }),
  };
  const s3 = new S3Client({
    logger: sdkLogger,
    ...(config.s3EndpointOverride === undefined ? {} : { endpoint: config.s3EndpointOverride }),
    // A local or third-party endpoint has no per-bucket DNS names.
    forcePathStyle: config.s3EndpointOverride !== undefined,
    requestHandler: { connectionTimeout: config.http.connectTimeoutMs, requestTimeout: 120_000 },
  });
  const secrets = new SecretsManagerClient({
    logger: sdkLogger,
    ...(config.secretsEndpointOverride === undefined ? {} : { endpoint: config.secretsEndpointOverride }),
    requestHandler: { connectionTimeout: config.http.connectTimeoutMs, requestTimeout: 30_000 },
  });
  const http = new Agent({
    connect: { timeout: config.http.connectTimeoutMs },
    headersTimeout: config.http.headersTimeoutMs,
    bodyTimeout: config.http.bodyTimeoutMs,
    keepAliveTimeout: 10_000,
  });
  const now = () => Date.now();
  return {
    s3,
    http,
    now,
    sessionKey: secretsManagerSessionKey({
      client: secrets,
      secretId: config.sessionKeySecretId,
      ttlMs: config.sessionKeyTtlMs,
      now,
    }),
    logger,
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
  };
}
