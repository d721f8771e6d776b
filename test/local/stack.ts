import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { type FauxqsServer, startFauxqs } from 'fauxqs';
import { positiveIntegerFlag } from '../../lambda/entries/terminal.ts';
import { VARIABLES as V } from '../../lambda/shared/environment.ts';
import { type LocalSecretsManager, startSecretsManager } from './secrets-manager.ts';
import { type LineSpec, startTokensService, type TokensService } from './tokens-service.ts';

/**
 * The flags of the local commands (`npm start`, `npm run local`): `--lines N` (default 12) and
 * `--file-size BYTES` (default 256 KiB) of the simulator's mix, and, where `corrupt` is allowed,
 * `--corrupt`. Refused by the flag's name.
 */
export function simulatorFlags(
  args: readonly string[],
  allow: { readonly corrupt?: boolean } = {},
): { readonly lines: number; readonly fileSize: number; readonly corrupt: boolean } {
  const { values } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: false,
    options: {
      lines: { type: 'string', default: '12' },
      'file-size': { type: 'string', default: String(256 * 1024) },
      ...(allow.corrupt === true ? { corrupt: { type: 'boolean', default: false } as const } : {}),
    },
  });
  return {
    lines: positiveIntegerFlag('--lines', values.lines),
    fileSize: positiveIntegerFlag('--file-size', values['file-size']),
    corrupt: values.corrupt === true,
  };
}

/** The three local servers a pass needs, and the environment that points the housekeeper at them. */
export interface LocalStack {
  readonly tokens: TokensService;
  readonly s3: FauxqsServer;
  readonly secrets: LocalSecretsManager;
  /** The session key the simulator accepts (tests check it never leaks). */
  readonly sessionKey: string;
  readonly bucket: string;
  readonly secretId: string;
  /** Everything `loadConfig` and the AWS SDK need, for an in-process handler or a child process. */
  readonly env: Record<string, string>;
  /** An S3 client for assertions, pointed at the local server. */
  readonly s3Client: S3Client;
  close(): Promise<void>;
}

export interface LocalStackOptions {
  readonly lines?: LineSpec[];
  readonly pageSize?: number;
  /** Extra or overriding environment for the housekeeper. */
  readonly env?: Record<string, string>;
  /** Store S3 objects as files in this directory instead of memory (large files). */
  readonly s3StorageDir?: string;
}

/** The dummy credentials every local client uses: nothing here can reach AWS. */
export const LOCAL_AWS_ENV = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'local',
  AWS_SECRET_ACCESS_KEY: 'local',
  AWS_EC2_METADATA_DISABLED: 'true',
} as const;

/** An S3 client of a local S3 server (or a proxy in front of one), with the dummy credentials. */
export function localS3Client(endpoint: string, config: S3ClientConfig = {}): S3Client {
  return new S3Client({
    endpoint,
    forcePathStyle: true,
    region: LOCAL_AWS_ENV.AWS_REGION,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    ...config,
  });
}

/** Starts the simulator, the S3 server and the Secrets Manager endpoint, each on a port the OS picks. */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const sessionKey = randomUUID();
  const bucket = 'tokens-archive';
  const secretId = 'tokens/session-key';
  const tokens = await startTokensService({
    sessionKey,
    lines: options.lines ?? [],
    ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
  });
  const s3 = await startFauxqs({
    port: 0,
    logger: false,
    host: '127.0.0.1',
    ...(options.s3StorageDir === undefined ? {} : { s3StorageDir: options.s3StorageDir }),
  });
  s3.createBucket(bucket);
  const secrets = await startSecretsManager();
  secrets.setSecret(secretId, JSON.stringify({ sessionKey }));
  const env: Record<string, string> = {
    ...LOCAL_AWS_ENV,
    [V.TOKENS_API_URL.name]: tokens.url,
    [V.SESSION_KEY_SECRET_ID.name]: secretId,
    [V.ARCHIVE_BUCKET.name]: bucket,
    [V.ARCHIVE_PREFIX.name]: 'tokens/',
    [V.AWS_ENDPOINT_URL_S3.name]: s3.address,
    [V.AWS_ENDPOINT_URL_SECRETS_MANAGER.name]: secrets.url,
    // Faults are injected on purpose: keep the backoff short so the suite stays fast.
    [V.RETRY_BASE_DELAY_MS.name]: '5',
    [V.RETRY_MAX_DELAY_MS.name]: '2000',
    [V.HTTP_BODY_TIMEOUT_MS.name]: '2000',
    ...options.env,
  };
  const s3Client = localS3Client(s3.address);
  return {
    tokens,
    s3,
    secrets,
    sessionKey,
    bucket,
    secretId,
    env,
    s3Client,
    async close() {
      s3Client.destroy();
      await Promise.all([tokens.close(), s3.stop(), secrets.close()]);
    },
  };
}
