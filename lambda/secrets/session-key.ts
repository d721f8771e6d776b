import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SecretError } from '../shared/errors.ts';
import { registerSecret } from '../shared/redact.ts';
import type { SessionKeySource } from '../shared/session-key-source.ts';

/**
 * The shortest session key taken. The service's keys are UUIDs (36 characters); the key is cut out
 * of every log line, record and reply kept (shared/redact.ts), so a key as short as `2026` would
 * be cut out of timestamps and sizes too, and the records would no longer tell the truth.
 */
const MIN_KEY_LENGTH = 16;

/**
 * Extracts the key from a SecretString: either the bare key, or JSON with a `sessionKey`
 * field. Errors name the secret, never its content.
 */
export function parseSessionKey(secretId: string, secretString: string | undefined): string {
  const text = secretString?.trim() ?? '';
  if (text === '') throw new SecretError(secretId, 'SecretString is empty or missing');
  let key: unknown = text;
  if (text.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Deliberately no cause: the parser's message can quote the secret.
      throw new SecretError(secretId, 'SecretString starts with "{" but is not valid JSON');
    }
    key =
      typeof parsed === 'object' && parsed !== null
        ? (parsed as Record<string, unknown>).sessionKey
        : undefined;
    if (typeof key !== 'string') {
      throw new SecretError(secretId, 'SecretString is JSON without a string "sessionKey" field');
    }
  }
  const value = (key as string).trim();
  if (value === '') throw new SecretError(secretId, 'the session key is empty');
  if (/[\r\n\0]/.test(value)) throw new SecretError(secretId, 'the session key contains a line break or NUL');
  // Every boundary of a string in a JSON record is a quote: a key without one (nor the backslash
  // that escapes it) cannot span a record's own text and what the service sent, where cutting it
  // out would leave no JSON (a manifest, a receipt no longer telling what was kept).
  if (/["\\]/.test(value)) {
    throw new SecretError(
      secretId,
      'the session key contains a quote or a backslash (every record has the key removed, and such a key could span its JSON)',
    );
  }
  if (value.length < MIN_KEY_LENGTH) {
    throw new SecretError(
      secretId,
      `the session key is ${value.length} characters long; at least ${MIN_KEY_LENGTH} are needed ` +
        '(every record has the key removed, and a shorter one could stand in a timestamp, a size or an id by chance)',
    );
  }
  return value;
}

/**
 * A {@link SessionKeySource} over Secrets Manager, cached for `ttlMs` across warm invocations.
 * Each key read is registered as a secret (shared/redact.ts), a rotated one too.
 */
export function secretsManagerSessionKey(options: {
  readonly client: SecretsManagerClient;
  readonly secretId: string;
  readonly ttlMs: number;
  readonly now: () => number;
  /** The Secrets Manager endpoint override, named in errors (where the request went). */
  readonly endpoint?: string | undefined;
}): SessionKeySource {
  const { client, secretId, ttlMs, now, endpoint } = options;
  let cached: { key: string; until: number } | undefined;
  let pending: Promise<string> | undefined;

  async function read(): Promise<string> {
    let secretString: string | undefined;
    try {
      const reply = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
      secretString = reply.SecretString;
    } catch (error) {
      // The SDK's name and message say why (no region, endpoint unreachable, access denied);
      // they never hold the secret's value, which was not read.
      const what = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      const where = endpoint === undefined ? '' : ` at ${endpoint}`;
      throw new SecretError(secretId, `GetSecretValue failed${where} (${what})`, { cause: error });
    }
    const key = parseSessionKey(secretId, secretString);
    // From here on, every log line, record and printed result of the process is cleaned of it.
    registerSecret(key);
    cached = { key, until: now() + ttlMs };
    return key;
  }

  return {
    get() {
      if (cached !== undefined && now() < cached.until) return Promise.resolve(cached.key);
      // Concurrent lines share one read instead of each asking Secrets Manager.
      pending ??= read().finally(() => {
        pending = undefined;
      });
      return pending;
    },
    invalidate() {
      cached = undefined;
    },
  };
}
