/**
 * The deployed artifact, rehearsed: what `cdk deploy` ships (the synthesized bundle, alone in a
 * folder), started by the real Lambda Runtime Interface Client (`aws-lambda-ric`, built once into
 * `.cache/`) with the template's environment and the runtime's Node flags, against a Runtime API
 * emulator and the local servers. Every other test calls the handler in-process; this one is the
 * only one that sees what only the deployed form can get wrong (names lost to minification, plain
 * text in a JSON log, a line without the request id, a reply past Lambda's limits).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Summary } from '../../lambda/core/types.ts';
import { type LocalStack, startLocalStack } from '../local/stack.ts';
import {
  type DeployedFunction,
  type RunningFunction,
  resolvedEnvironment,
  type Synthesized,
  startFunction,
  synthesize,
} from './deployed.ts';
import { runtimeClient } from './ric.ts';
import { type InvocationResult, RuntimeApi } from './runtime-api.ts';

/** Installing the client builds curl and a native addon: minutes on a busy 2-core machine. */
const SETUP_MS = 15 * 60_000;

let ric: string;
let synthesized: Synthesized;
let pass: DeployedFunction;

beforeAll(async () => {
  [ric, synthesized] = await Promise.all([runtimeClient(), synthesize()]);
  const [only, ...others] = synthesized.functions;
  if (only === undefined || others.length > 0)
    throw new Error(`single mode: expected one function, found ${synthesized.functions.length}`);
  pass = only;
}, SETUP_MS);

afterAll(async () => {
  await synthesized?.close();
});

/** The local servers, the emulator and the function process of one test. */
interface Rehearsal {
  readonly local: LocalStack;
  readonly api: RuntimeApi;
  readonly fn: RunningFunction;
  invoke(event: unknown, timeoutMs?: number): Promise<InvocationResult>;
  close(): Promise<void>;
}

async function rehearse(lines: number, overrides: Readonly<Record<string, string>> = {}): Promise<Rehearsal> {
  const local = await startLocalStack({
    lines: Array.from({ length: lines }, () => ({ status: 'finished' as const, fileSize: 2000 })),
  });
  const api = await RuntimeApi.start();
  // The template's references, and the one value only the deployed account knows, made local.
  const environment = {
    ...resolvedEnvironment(pass, {
      TOKENS_API_URL: local.env.TOKENS_API_URL as string,
      SESSION_KEY_SECRET_ID: local.secretId,
      ARCHIVE_BUCKET: local.bucket,
    }),
    AWS_ENDPOINT_URL_S3: local.env.AWS_ENDPOINT_URL_S3 as string,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: local.env.AWS_ENDPOINT_URL_SECRETS_MANAGER as string,
    ...overrides,
  };
  const fn = await startFunction(pass, { ric, runtimeApi: api.address, environment });
  return {
    local,
    api,
    fn,
    // The template's timeout, as Lambda gives it (with less, every line would be deferred).
    invoke: (event, timeoutMs = pass.timeoutSeconds * 1000) =>
      api.invoke(event, { timeoutMs, onTimeout: () => fn.kill() }),
    async close() {
      await fn.close();
      await api.close().catch(() => undefined);
      await local.close();
    },
  };
}

/** Every line the process wrote, parsed: each must be JSON. */
function jsonLines(fn: RunningFunction): Record<string, unknown>[] {
  return fn.lines.map((line) => {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new Error(`a log line that is not JSON: ${line.slice(0, 300)}`);
    }
  });
}

/** The request id a log line carries: ours (`function_request_id`) or the runtime's (`requestId`). */
function requestIdOf(line: Record<string, unknown>): unknown {
  return line.function_request_id ?? line.requestId;
}

describe('the deployed bundle under the Lambda runtime client (single mode)', () => {
  it('runs the schedule input, then a warm dry run, ids with archiveOnly and a malformed payload, every line JSON with its request id', async () => {
    const r = await rehearse(3);
    try {
      const ids = [...r.local.tokens.lines.keys()];

      // The schedule's exact Input: the whole pass.
      const scheduled = await r.invoke(synthesized.scheduleInput);
      expect(scheduled).toMatchObject({ kind: 'response' });
      const summary = (scheduled as { body: Summary }).body;
      expect(summary).toMatchObject({ listed: 3, archived: 3, dismantled: 3, failed: [] });
      expect([...r.local.tokens.lines.values()].every((line) => line.status === 'deleted')).toBe(true);
      const initLines = r.fn.lines.length;

      // Warm: the same process takes the next ones.
      const dry = await r.invoke({ dryRun: true });
      expect(dry).toMatchObject({ kind: 'response', body: { dryRun: true, listed: 0 } });
      const chosen = await r.invoke({ ids: [ids[0]], archiveOnly: true });
      expect(chosen).toMatchObject({ kind: 'response', body: { archiveOnly: true, dismantled: 0 } });
      const malformed = await r.invoke({ ids: 'not a list' });
      expect(malformed).toMatchObject({ kind: 'error', errorType: 'EventError' });
      expect(r.api.polls).toBeGreaterThanOrEqual(4);
      expect(r.fn.process.exitCode).toBeNull();

      const lines = jsonLines(r.fn);
      const invocations = [scheduled, dry, chosen, malformed].map((result) =>
        'invocation' in result ? result.invocation.requestId : undefined,
      );
      // After the cold start, every line names the invocation it belongs to.
      const later = lines.slice(
        initLines > 0 ? lines.findIndex((line) => requestIdOf(line) !== undefined) : 0,
      );
      expect(later.length).toBeGreaterThan(8);
      for (const line of later) expect(invocations, JSON.stringify(line)).toContain(requestIdOf(line));
      // Powertools Metrics' notice on an invocation with no metrics is JSON too (the dry run's).
      expect(lines.find((line) => String(line.message).startsWith('No application metrics'))).toMatchObject({
        level: 'WARN',
      });
      expect(JSON.stringify(lines)).not.toContain(r.local.sessionKey);
    } finally {
      await r.close();
    }
  }, 120_000);

  it('answers an invocation started with seconds left with a summary that says why nothing was listed', async () => {
    const r = await rehearse(1);
    try {
      const result = await r.invoke({}, 3_000);

      expect(result).toMatchObject({
        kind: 'response',
        body: { listed: 0, notStarted: expect.stringMatching(/^no line was listed/) },
      });
      expect([...r.local.tokens.lines.values()].every((line) => line.status === 'finished')).toBe(true);
    } finally {
      await r.close();
    }
  }, 120_000);

  it('reports an init error by its class name when a variable is wrong, and starts no invocation', async () => {
    const r = await rehearse(1, { LINE_CONCURRENCY: 'many' });
    try {
      const init = await r.api.initError;

      expect(init).toMatchObject({ kind: 'init-error', errorType: expect.stringContaining('ConfigError') });
      expect(init.errorMessage).toContain('LINE_CONCURRENCY');
      expect(r.local.tokens.requests).toEqual([]);
    } finally {
      await r.close();
    }
  }, 120_000);
});
