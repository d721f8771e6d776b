import {
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { parseSessionKey, secretsManagerSessionKey } from '../../../lambda/secrets/session-key.ts';
import { SecretError } from '../../../lambda/shared/errors.ts';
import { thrownBy } from '../../support/thrown.ts';

const SECRET_ID = 'tokens-housekeeper/session-key';
/** Distinctive, so any leak into a message is found by a plain substring search. */
const SECRET = 'SK-9f3e-ZEBRA-QUARTZ-41d7';
const ROTATED = 'SK-0a1b-OTTER-GARNET-77c2';

/** Runs `parse` and returns the SecretError it threw, failing the test otherwise. */
const secretErrorOf = (parse: () => unknown): SecretError => thrownBy(SecretError, parse);

/** Everything an error would show in a log line: message, stack and cause. */
function everythingShownOf(error: SecretError): string {
  return [error.message, error.stack ?? '', String(error.cause ?? ''), JSON.stringify(error)].join('\n');
}

describe('parseSessionKey', () => {
  it('reads a bare key', () => {
    const key = parseSessionKey(SECRET_ID, SECRET);

    expect(key).toBe(SECRET);
  });

  it('trims whitespace around a bare key', () => {
    const key = parseSessionKey(SECRET_ID, `  ${SECRET}\n`);

    expect(key).toBe(SECRET);
  });

  it('reads the sessionKey field of a JSON secret', () => {
    const key = parseSessionKey(SECRET_ID, JSON.stringify({ sessionKey: SECRET, note: 'rotated monthly' }));

    expect(key).toBe(SECRET);
  });

  it('trims whitespace around the JSON secret and inside its sessionKey', () => {
    const key = parseSessionKey(SECRET_ID, `\n  {"sessionKey": "  ${SECRET} "}  \n`);

    expect(key).toBe(SECRET);
  });

  describe('refusals, which never show the secret', () => {
    it.each([
      ['an empty string', ''],
      ['only whitespace', ' \n\t '],
      ['JSON without sessionKey', JSON.stringify({ key: SECRET, session: SECRET })],
      ['JSON with a numeric sessionKey', `{"sessionKey": 42, "other": "${SECRET}"}`],
      ['JSON with a null sessionKey', `{"sessionKey": null, "other": "${SECRET}"}`],
      ['JSON with an empty sessionKey', `{"sessionKey": "   ", "other": "${SECRET}"}`],
      ['malformed JSON', `{"sessionKey": "${SECRET}"`],
      ['malformed JSON with the secret first', `{${SECRET}}`],
      ['JSON with a trailing comma', `{"sessionKey": "${SECRET}",}`],
      ['a key with a line break', `${SECRET}\n${SECRET}`],
      ['a key with a NUL', `${SECRET}\u0000`],
      ['a JSON key with a line break', JSON.stringify({ sessionKey: `${SECRET}\r\nX-Injected: 1` })],
    ])('refuses %s, naming the secret id only', (_what, secretString) => {
      const error = secretErrorOf(() => parseSessionKey(SECRET_ID, secretString));

      expect(error.secretId).toBe(SECRET_ID);
      expect(error.message).toContain(SECRET_ID);
      expect(everythingShownOf(error)).not.toContain(SECRET);
    });

    it.for([
      ['a year', '2026', '2026'],
      ['a word', 'quartz', 'quartz'],
      ['15 characters', 'SK-9f3e-ZEBRA-Q', 'SK-9f3e-ZEBRA-Q'],
      ['15 characters in JSON, padded', '{"sessionKey": "  SK-9f3e-ZEBRA-Q  "}', 'SK-9f3e-ZEBRA-Q'],
    ] as const)(
      'refuses a key shorter than 16 characters (%s), which could stand in a record by chance',
      ([, secretString, key]) => {
        const error = secretErrorOf(() => parseSessionKey(SECRET_ID, secretString));

        expect(error.secretId).toBe(SECRET_ID);
        expect(error.message).toMatch(/the session key is \d+ characters long; at least 16 are needed/);
        expect(everythingShownOf(error)).not.toContain(key);
      },
    );

    it.for([
      ['a quote', 'SK-9f3e-"ZEBRA-Q41'],
      ['a backslash', 'SK-9f3e-\\ZEBRA-Q41'],
      ['a quote in JSON', JSON.stringify({ sessionKey: '"body": "{\\"data\\":' })],
    ] as const)(
      'refuses a key with %s, which a record could write across its own text and what the service sent',
      ([, secretString]) => {
        const error = secretErrorOf(() => parseSessionKey(SECRET_ID, secretString));

        expect(error.secretId).toBe(SECRET_ID);
        expect(error.message).toContain('the session key contains a quote or a backslash');
        expect(everythingShownOf(error)).not.toContain('ZEBRA');
      },
    );

    it('reads a key of exactly 16 characters', () => {
      expect(parseSessionKey(SECRET_ID, 'rotated-key-0000')).toBe('rotated-key-0000');
    });

    it('refuses a missing SecretString', () => {
      const error = secretErrorOf(() => parseSessionKey(SECRET_ID, undefined));

      expect(error.secretId).toBe(SECRET_ID);
      expect(error.message).toContain('empty or missing');
    });
  });
});

describe('secretsManagerSessionKey', () => {
  const client = new SecretsManagerClient({ region: 'us-east-1' });
  const secrets = mockClient(client);

  afterEach(() => {
    secrets.reset();
  });

  /** A clock the test moves by hand. */
  function manualClock(start = 1_000_000) {
    let time = start;
    return {
      now: () => time,
      advance: (ms: number) => {
        time += ms;
      },
    };
  }

  /** The session key read through the mocked client, cached for a minute by the clock `now`. */
  const sourceAt = (now: () => number) =>
    secretsManagerSessionKey({ client, secretId: SECRET_ID, ttlMs: 60_000, now });

  /** The secret holds SECRET at the first read and ROTATED at the second. */
  function rotatedAfterFirstRead(): void {
    secrets
      .on(GetSecretValueCommand)
      .resolvesOnce({ SecretString: SECRET })
      .resolvesOnce({ SecretString: ROTATED });
  }

  function reads(): number {
    return secrets.commandCalls(GetSecretValueCommand).length;
  }

  it('reads the secret by its id', async () => {
    secrets.on(GetSecretValueCommand, { SecretId: SECRET_ID }).resolves({ SecretString: SECRET });
    const source = sourceAt(() => 0);

    const key = await source.get();

    expect(key).toBe(SECRET);
    expect(secrets.commandCalls(GetSecretValueCommand)[0]?.args[0].input).toEqual({ SecretId: SECRET_ID });
  });

  it('serves the cached key within the TTL with one read', async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: SECRET });
    const clock = manualClock();
    const source = sourceAt(clock.now);

    const first = await source.get();
    clock.advance(59_999);
    const second = await source.get();

    expect([first, second]).toEqual([SECRET, SECRET]);
    expect(reads()).toBe(1);
  });

  it('reads the secret again once the TTL has passed', async () => {
    rotatedAfterFirstRead();
    const clock = manualClock();
    const source = sourceAt(clock.now);

    const first = await source.get();
    clock.advance(60_000);
    const second = await source.get();

    expect(first).toBe(SECRET);
    expect(second).toBe(ROTATED);
    expect(reads()).toBe(2);
  });

  it('reads the secret again after invalidate()', async () => {
    rotatedAfterFirstRead();
    const source = sourceAt(() => 0);

    await source.get();
    source.invalidate();
    const key = await source.get();

    expect(key).toBe(ROTATED);
    expect(reads()).toBe(2);
  });

  it('shares one read between concurrent callers', async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: SECRET });
    const source = sourceAt(() => 0);

    const keys = await Promise.all([source.get(), source.get(), source.get(), source.get()]);

    expect(keys).toEqual([SECRET, SECRET, SECRET, SECRET]);
    expect(reads()).toBe(1);
  });

  it('turns a ResourceNotFoundException into a SecretError naming the secret id', async () => {
    const notFound = new ResourceNotFoundException({
      message: "Secrets Manager can't find the specified secret.",
      $metadata: { httpStatusCode: 400 },
    });
    secrets.on(GetSecretValueCommand).rejects(notFound);
    const source = sourceAt(() => 0);

    const error = await source.get().catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(SecretError);
    expect(error).toMatchObject({ secretId: SECRET_ID, cause: notFound });
    expect((error as SecretError).message).toContain(SECRET_ID);
    expect((error as SecretError).message).toContain('ResourceNotFoundException');
  });

  it('does not cache a failed read', async () => {
    secrets
      .on(GetSecretValueCommand)
      .rejectsOnce(new ResourceNotFoundException({ message: 'not yet', $metadata: {} }))
      .resolvesOnce({ SecretString: SECRET });
    const source = sourceAt(() => 0);

    await source.get().catch(() => undefined);
    const key = await source.get();

    expect(key).toBe(SECRET);
    expect(reads()).toBe(2);
  });

  it('refuses an unusable secret without showing it', async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: `{"sessionKey": "${SECRET}"` });
    const source = sourceAt(() => 0);

    const error = await source.get().catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(SecretError);
    expect(everythingShownOf(error as SecretError)).not.toContain(SECRET);
  });

  it('reads on every call when the TTL is 0', async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: SECRET });
    const source = secretsManagerSessionKey({ client, secretId: SECRET_ID, ttlMs: 0, now: () => 0 });

    await source.get();
    await source.get();

    expect(reads()).toBe(2);
  });
});
