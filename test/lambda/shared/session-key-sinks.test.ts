import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { asRun } from '../../../lambda/app/invoke.ts';
import { type LogFormat, logToTerminal, serviceLogger } from '../../../lambda/app/logging.ts';
import { ObjectStore } from '../../../lambda/archive/store.ts';
import { summarize } from '../../../lambda/core/summary.ts';
import type { Deps } from '../../../lambda/core/types.ts';
import { printJson, StderrScreen } from '../../../lambda/entries/terminal.ts';
import { secretsManagerSessionKey } from '../../../lambda/secrets/session-key.ts';
import { ListingError } from '../../../lambda/shared/errors.ts';
import { forgetSecrets, REDACTED, redactText, registerSecret } from '../../../lambda/shared/redact.ts';
import { sha256, silentLogger } from '../../support/fakes.ts';

const KEY = 'SK-9f3e-ZEBRA-QUARTZ-41d7';
const LINE = 'cb06671a-7270-462f-a50d-cc892f676647';

beforeEach(() => registerSecret(KEY));
afterEach(() => {
  forgetSecrets();
  logToTerminal(undefined);
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

describe('secretsManagerSessionKey', () => {
  it('registers the key it reads as a secret, so that every sink removes it', async () => {
    forgetSecrets();
    const client = new SecretsManagerClient({});
    mockClient(client)
      .on(GetSecretValueCommand)
      .resolves({ SecretString: JSON.stringify({ sessionKey: KEY }) });
    const source = secretsManagerSessionKey({ client, secretId: 's', ttlMs: 1000, now: () => 0 });

    await source.get();

    expect(redactText(`echo ${KEY}`)).toBe(`echo ${REDACTED}`);
  });
});

describe('serviceLogger', () => {
  /** A log item holding the key in its message, a detail, a property name, and an error. */
  function logEcho(): void {
    serviceLogger()
      .createChild({ persistentKeys: { lineId: LINE } })
      .error(`status is "${KEY}"`, {
        reason: `x ${KEY}`,
        seen: { [KEY]: 1 },
        error: new Error(`got ${KEY}`),
      });
  }

  it('never prints the session key in Lambda (Powertools JSON on stdout)', () => {
    vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'INFO');
    const printed: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      printed.push(String(chunk));
      return true;
    });
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      printed.push(String(chunk));
      return true;
    });

    logEcho();

    expect(printed.join('')).toContain(REDACTED);
    expect(printed.join('')).not.toContain(KEY);
  });

  it.for(['json', 'text'] as LogFormat[])('never prints the session key at a terminal (%s)', (format) => {
    vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'INFO');
    const lines: string[] = [];
    logToTerminal({ format, color: false, write: (line) => lines.push(line) });

    logEcho();

    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(REDACTED);
    expect(lines[0]).not.toContain(KEY);
  });
});

describe('ObjectStore JSON records', () => {
  it('stores a record with the session key replaced, and the checksum of what is stored', async () => {
    const client = new S3Client({ region: 'us-east-1' });
    const s3 = mockClient(client);
    s3.on(PutObjectCommand).resolves({});
    const store = new ObjectStore(client, 'bucket');

    await store.putJson('tokens/_runs/r.json', { lines: [{ reason: `status is "${KEY}"`, [KEY]: true }] });
    await store.putJsonIf('tokens/x/deleted.json', { note: KEY }, { IfNoneMatch: '*' });

    const puts = s3.commandCalls(PutObjectCommand).map((call) => call.args[0].input);
    expect(puts).toHaveLength(2);
    for (const put of puts) {
      const body = Buffer.from(put.Body as Buffer);
      expect(body.toString('utf8')).not.toContain(KEY);
      expect(body.toString('utf8')).toContain(REDACTED);
      expect(put.ChecksumSHA256).toBe(Buffer.from(sha256(body), 'hex').toString('base64'));
    }
  });
});

describe('summarize', () => {
  it('removes the session key from every reason and from the plan', () => {
    const summary = summarize(
      [
        {
          id: 'a',
          durationMs: 1,
          outcome: 'skipped',
          reason: `status is "${KEY}", not finished`,
          notFinished: true,
        },
        {
          id: 'b',
          durationMs: 1,
          outcome: 'failed',
          reason: `invalid: "${KEY}"`,
          errorName: 'DocumentError',
        },
        {
          id: 'c',
          durationMs: 1,
          outcome: 'pending',
          reason: `DELETE answered ${KEY}`,
          bytes: 0,
          uploaded: 0,
          reused: 0,
        },
        {
          id: 'd',
          durationMs: 1,
          outcome: 'planned',
          plan: { id: 'd', alphabet: KEY, digits: null, files: 1, bytes: 1, action: 'archive' },
        },
      ],
      {
        runId: 'r',
        dryRun: true,
        archiveOnly: false,
        listed: 5,
        finished: 5,
        skipped: [{ id: 'e', reason: `list item: ${KEY}` }],
        deferred: 0,
        tally: { retries: 0, hashMismatches: 0, hashMismatchAttempts: 0 },
        durationMs: 1,
      },
    );

    expect(JSON.stringify(summary)).not.toContain(KEY);
    expect(summary.skipped.map((report) => report.reason)).toEqual([
      `status is "${REDACTED}", not finished`,
      `list item: ${REDACTED}`,
    ]);
    expect(summary.failed[0]?.reason).toBe(`invalid: "${REDACTED}"`);
    expect(summary.pending[0]?.reason).toBe(`DELETE answered ${REDACTED}`);
    expect(summary.plan?.[0]?.alphabet).toBe(REDACTED);
  });
});

describe('what the terminal commands print', () => {
  it('prints a result on stdout, and a message on stderr, with the session key replaced', () => {
    const written: string[] = [];
    const stream = {
      isTTY: false,
      write: (text: string) => written.push(text),
    } as unknown as NodeJS.WriteStream;

    printJson(stream, { failed: [{ reason: `status is "${KEY}"` }] });
    new StderrScreen(stream).print(`housekeep: run failed: ${KEY}`);

    expect(written.join('')).not.toContain(KEY);
    expect(written).toEqual([
      `${JSON.stringify({ failed: [{ reason: `status is "${REDACTED}"` }] }, null, 2)}\n`,
      `housekeep: run failed: ${REDACTED}\n`,
    ]);
  });
});

describe('asRun', () => {
  it('throws a failed run to the Lambda runtime with the session key cut out of its message and stack', async () => {
    const deps: Pick<Deps, 'logger'> = { logger: silentLogger() };
    const failure = new ListingError(3, `links.next repeats /api/tokens?page=${KEY}`);

    const running = asRun(deps, undefined, undefined, async () => {
      throw failure;
    });

    await expect(running).rejects.toBeInstanceOf(ListingError);
    const thrown = await running.catch((error: unknown) => error as Error);
    expect(thrown.message).toContain(REDACTED);
    expect(thrown.message).not.toContain(KEY);
    expect(thrown.stack).not.toContain(KEY);
  });
});
