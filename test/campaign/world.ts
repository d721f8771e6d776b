/**
 * The servers a campaign worker keeps for all its schedules (the local S3, which also serves the
 * fan-out queues), and the stage of one schedule: a fresh simulator, Secrets Manager and
 * enforcing S3 proxy, and the bucket emptied.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { type FauxqsServer, startFauxqs } from 'fauxqs';
import { type LocalSecretsManager, startSecretsManager } from '../local/secrets-manager.ts';
import { LOCAL_AWS_ENV, localS3Client } from '../local/stack.ts';
import { startTokensService, type TokensService } from '../local/tokens-service.ts';
import type { ArchiveUnderTest } from '../reliability/invariant.ts';
import { type S3Proxy, startS3Proxy } from '../reliability/s3-proxy.ts';
import type { Schedule } from './schedule.ts';

export const BUCKET = 'tokens-archive';
export const PREFIX = 'tokens/';
const SECRET_ID = 'tokens/session-key';

/** What a worker starts once: the local S3 (and SQS) server, and a client that reads it unchecked. */
export interface World {
  readonly s3: FauxqsServer;
  /** Hands back stored bytes as they are (no response checksum check: tampered objects must be read). */
  readonly s3Client: S3Client;
  close(): Promise<void>;
}

export async function startWorld(): Promise<World> {
  const s3 = await startFauxqs({ port: 0, logger: false, host: '127.0.0.1' });
  s3.createBucket(BUCKET);
  const s3Client = localS3Client(s3.address, { responseChecksumValidation: 'WHEN_REQUIRED' });
  return {
    s3,
    s3Client,
    async close() {
      s3Client.destroy();
      await s3.stop();
    },
  };
}

/** One schedule's servers, as the invariant checker knows an archive under test. */
export interface Stage extends ArchiveUnderTest {
  readonly world: World;
  readonly tokens: TokensService;
  readonly proxy: S3Proxy;
  readonly secrets: LocalSecretsManager;
  /** The housekeeper's environment: the store behind the enforcing proxy. */
  readonly env: Record<string, string>;
  /** Fan-out mode: the schedule's own work queue (on the local S3 server, which serves SQS too). */
  readonly queueUrl: string;
  close(): Promise<void>;
}

/**
 * The housekeeper's variables a schedule's settings set (the stage adds its servers'): every one
 * the config judges against the others (concurrency, caps), so a test can load them as drawn.
 */
export function settingsEnv(schedule: Schedule): Record<string, string> {
  const { settings } = schedule;
  return {
    // Short backoff and a low cap: a Retry-After of 1 s ends the retries instead of waiting.
    RETRY_BASE_DELAY_MS: '2',
    RETRY_MAX_DELAY_MS: '100',
    RETRY_ATTEMPTS: String(settings.retryAttempts),
    HTTP_BODY_TIMEOUT_MS: '2000',
    LINE_CONCURRENCY: String(settings.lineConcurrency),
    FILE_CONCURRENCY: String(settings.fileConcurrency),
    VERIFY_READBACK: settings.readback,
    // The proxy enforces conditional writes as S3 does: half the schedules (by seed, so earlier
    // seeds replay their draws unchanged) let a line's first round assume an empty archive.
    S3_CONDITIONAL_WRITES: schedule.seed % 2 === 0 ? 'enforced' : 'ignored',
    ...(settings.maxDismantles === undefined
      ? {}
      : { MAX_DISMANTLES_PER_RUN: String(settings.maxDismantles) }),
    ...(settings.maxRequestsPerSecond === undefined
      ? {}
      : { MAX_REQUESTS_PER_SECOND: String(settings.maxRequestsPerSecond) }),
    ...(settings.maxBytesPerSecond === undefined
      ? {}
      : { MAX_BYTES_PER_SECOND: String(settings.maxBytesPerSecond) }),
  };
}

/** The stage of a schedule: its lines created, the bucket empty, the session key its own. */
export async function stageFor(world: World, schedule: Schedule): Promise<Stage> {
  world.s3.emptyBucket(BUCKET);
  const { sessionKey } = schedule;
  const tokens = await startTokensService({
    sessionKey,
    lines: schedule.lines.map((line) => ({
      id: line.id,
      status: line.status,
      analysis: line.analysis,
      fileSize: line.fileSize,
    })),
  });
  const proxy = await startS3Proxy(world.s3.address, { enforceConditionalWrites: true });
  const secrets = await startSecretsManager();
  secrets.setSecret(SECRET_ID, JSON.stringify({ sessionKey }));
  const queue = `work-${schedule.seed}`;
  // fauxqs names queue URLs by a host that is not a valid URL host: build it on the server's address.
  const queueUrl = `${world.s3.address}/000000000000/${queue}`;
  if (schedule.mode === 'fanout') world.s3.createQueue(queue, { attributes: { VisibilityTimeout: '60' } });
  const env: Record<string, string> = {
    ...LOCAL_AWS_ENV,
    TOKENS_API_URL: tokens.url,
    SESSION_KEY_SECRET_ID: SECRET_ID,
    ARCHIVE_BUCKET: BUCKET,
    ARCHIVE_PREFIX: PREFIX,
    AWS_ENDPOINT_URL_S3: proxy.url,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.url,
    ...settingsEnv(schedule),
    // Fan-out: every run enqueues every line again (a queued marker would hold a line back for hours).
    ...(schedule.mode === 'fanout'
      ? { QUEUE_URL: queueUrl, AWS_ENDPOINT_URL_SQS: world.s3.address, QUEUE_MARKER_TTL_SECONDS: '0' }
      : {}),
  };
  return {
    world,
    tokens,
    proxy,
    secrets,
    sessionKey,
    bucket: BUCKET,
    s3: { address: world.s3.address },
    s3Client: world.s3Client,
    env,
    queueUrl,
    async close() {
      tokens.onRequest(undefined);
      tokens.beforeRequest(undefined);
      if (schedule.mode === 'fanout') world.s3.deleteQueue(queue);
      await Promise.all([tokens.close(), proxy.close(), secrets.close()]);
    },
  };
}
