import { describe, expect } from 'vitest';
import type { LocalStack } from '../local/stack.ts';
import { closeAfterEach, localStack, runCli } from './harness.ts';
import { checkInvariant, cliOutcome, observedPass, snapshot } from './invariant.ts';
import { it } from './ledger.ts';

const track = closeAfterEach();

/** A broken secret, and the text of it that must never be printed. */
interface BrokenSecret {
  readonly what: string;
  /** Sets the broken secret; returns the text that must not leak (the key itself when present). */
  readonly apply: (local: LocalStack) => string | undefined;
  readonly reason: RegExp;
}

const broken: readonly BrokenSecret[] = [
  {
    what: 'missing',
    apply: (local) => {
      local.secrets.deleteSecret(local.secretId);
      return undefined;
    },
    reason: /GetSecretValue failed at http:\/\/127\.0\.0\.1:\d+ \(ResourceNotFoundException: /,
  },
  {
    what: 'empty',
    apply: (local) => {
      local.secrets.setSecret(local.secretId, '   ');
      return undefined;
    },
    reason: /empty/,
  },
  {
    what: 'malformed JSON',
    apply: (local) => {
      const text = `{"sessionKey": "${local.sessionKey}",`;
      local.secrets.setSecret(local.secretId, text);
      return text;
    },
    reason: /not valid JSON/,
  },
  {
    what: 'JSON without a sessionKey',
    apply: (local) => {
      const text = JSON.stringify({ key: local.sessionKey });
      local.secrets.setSecret(local.secretId, text);
      return text;
    },
    reason: /without a string "sessionKey"/,
  },
  {
    what: 'a key with a line break',
    apply: (local) => {
      const text = JSON.stringify({ sessionKey: `${local.sessionKey}\nX-Injected: 1` });
      local.secrets.setSecret(local.secretId, text);
      return text;
    },
    reason: /line break/,
  },
  {
    what: 'a key too short to be told from a record’s own numbers',
    apply: (local) => {
      const text = JSON.stringify({ sessionKey: '2026' });
      local.secrets.setSecret(local.secretId, text);
      return text;
    },
    reason: /the session key is 4 characters long; at least 16 are needed/,
  },
];

describe('a secret that cannot give a session key', () => {
  for (const secret of broken) {
    it(`fails the run before any request, deleting nothing, when the secret is ${secret.what}`, async ({
      s,
    }) => {
      const local = await localStack(track, {
        lines: [{ status: 'finished', fileSize: 1000 }, { status: 'started' }],
      });
      const leak = secret.apply(local);
      s.fault(`secret: ${secret.what}`);

      const { before, run } = await observedPass(local);

      expect(run.error).toMatchObject({ name: 'SecretError', message: expect.stringMatching(secret.reason) });
      expect(local.tokens.requests).toEqual([]);
      await checkInvariant(s, local, { before, runs: [run], secrets: leak === undefined ? [] : [leak] });
    });
  }

  it('fails the run when Secrets Manager answers 500 to every attempt', async ({ s }) => {
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 1000 }] });
    local.secrets.failNext(100);
    s.fault('secrets manager: 500 to every request');

    const { before, run } = await observedPass(local);

    expect(run.error).toMatchObject({ name: 'SecretError' });
    expect(local.tokens.requests).toEqual([]);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('reads the secret again after Secrets Manager fails once, and archives', async ({ s }) => {
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 1000 }] });
    local.secrets.failNext(1);
    s.fault('secrets manager: 500 once');

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ dismantled: 1, failed: [] });
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('exits 2 from the CLI with a malformed secret, and prints neither the secret nor the key', async ({
    s,
  }) => {
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 1000 }] });
    const text = `{"sessionKey": "${local.sessionKey}"`;
    local.secrets.setSecret(local.secretId, text);
    s.fault('secret: malformed JSON (CLI)');
    const before = snapshot(local.tokens);

    const result = await runCli(track, local.env);

    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/SecretError: secret tokens\/session-key: SecretString starts with "\{"/);
    expect(local.tokens.requests).toEqual([]);
    await checkInvariant(s, local, { before, runs: [cliOutcome(result)], secrets: [text] });
  });
});
