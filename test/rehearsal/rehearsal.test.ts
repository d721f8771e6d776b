/**
 * The deployed artifact, rehearsed: what `cdk deploy` ships (the synthesized bundle, alone in a
 * folder), started by the real Lambda Runtime Interface Client (`aws-lambda-ric`, built once into
 * `.cache/`) with the template's environment and the runtime's Node flags, against a Runtime API
 * emulator and the local servers. Every other test calls the handler in-process; this one is the
 * only one that sees what only the deployed form can get wrong (names lost to minification, plain
 * text in a JSON log, a line without the request id, a reply past Lambda's limits).
 */
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import type { SQSBatchResponse } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLAN_LINES_IN_REPLY } from '../../lambda/app/invoke.ts';
import type { Summary } from '../../lambda/core/types.ts';
import { type LocalStack, startLocalStack } from '../local/stack.ts';
import { listKeys, objectJson } from '../support/archive-inspect.ts';
import { drain, startFanoutStack } from '../support/fanout-stack.ts';
import {
  type DeployedFunction,
  jsonLines,
  onlyFunction,
  type RunningFunction,
  requestIdOf,
  resolvedEnvironment,
  type Synthesized,
  startFunction,
  startInvocable,
  synthesize,
} from './deployed.ts';
import { asRole, type PolicyFronts, policyFronts, refusalOf } from './policy-fronts.ts';
import { RUNTIME_CLIENT_SETUP_MS, runtimeClient } from './ric.ts';
import { type InvocationResult, RuntimeApi } from './runtime-api.ts';

let ric: string;
let synthesized: Synthesized;
let fanout: Synthesized;
let pass: DeployedFunction;

beforeAll(async () => {
  [ric, synthesized, fanout] = await Promise.all([
    runtimeClient(),
    synthesize(),
    synthesize({ mode: 'fanout' }),
  ]);
  // The restore drill's function (on by default) is not the pass: drill-rehearsal.test.ts rehearses it.
  pass = onlyFunction(
    synthesized,
    (fn) => !fn.description.startsWith('Restore drill'),
    'pass function in single mode',
  );
}, RUNTIME_CLIENT_SETUP_MS);

afterAll(async () => {
  await synthesized?.close();
  await fanout?.close();
});

/** The local servers, the emulator and the function process of one test. */
interface Rehearsal {
  readonly local: LocalStack;
  readonly api: RuntimeApi;
  readonly fn: RunningFunction;
  readonly fronts: PolicyFronts;
  invoke(event: unknown, timeoutMs?: number): Promise<InvocationResult>;
  close(): Promise<void>;
}

async function rehearse(
  lines: number,
  overrides: Readonly<Record<string, string>> = {},
  fileSize = 2000,
): Promise<Rehearsal> {
  const local = await startLocalStack({
    lines: Array.from({ length: lines }, () => ({ status: 'finished' as const, fileSize })),
  });
  const api = await RuntimeApi.start();
  const fronts = await policyFronts(synthesized, pass, local);
  // The template's references, and the one value only the deployed account knows, made local.
  const environment = {
    ...resolvedEnvironment(pass, {
      TOKENS_API_URL: local.env.TOKENS_API_URL as string,
      SESSION_KEY_SECRET_ID: local.secretId,
      ARCHIVE_BUCKET: local.bucket,
    }),
    ...fronts.endpoints,
    ...overrides,
  };
  const fn = await startFunction(pass, { ric, runtimeApi: api.address, environment });
  return {
    local,
    api,
    fn,
    fronts,
    // The template's timeout, as Lambda gives it (with less, every line would be deferred).
    invoke: (event, timeoutMs = pass.timeoutSeconds * 1000) =>
      api.invoke(event, { timeoutMs, onTimeout: () => fn.kill() }),
    async close() {
      await fn.close();
      await api.close().catch(() => undefined);
      await fronts.close();
      await local.close();
    },
  };
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
      // Every request to S3 and Secrets Manager was one the deployed role may make.
      expect(r.fronts.denied).toEqual([]);
      expect(r.fronts.decisions.length).toBeGreaterThan(10);
    } finally {
      await r.close();
    }
  }, 120_000);

  it('answers a dry run of more lines than a reply carries with the first ones and the key of the whole plan; no log line grows with the listing', async () => {
    const r = await rehearse(PLAN_LINES_IN_REPLY + 50);
    try {
      const dry = await r.invoke({ dryRun: true });

      expect(dry).toMatchObject({ kind: 'response', body: { planLines: PLAN_LINES_IN_REPLY + 50 } });
      const summary = (dry as { body: Summary }).body;
      expect(summary.plan).toHaveLength(PLAN_LINES_IN_REPLY);
      const stored = (await objectJson(r.local.s3Client, r.local.bucket, summary.planKey ?? '')) as {
        plan: unknown[];
      };
      expect(stored.plan).toHaveLength(PLAN_LINES_IN_REPLY + 50);
      // Counts, never the plan: 150 lines of it would be about 22 KB.
      for (const line of r.fn.lines) expect(line.length).toBeLessThan(4096);
      expect(r.fronts.denied).toEqual([]);
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
      expect(r.fronts.denied).toEqual([]);
    } finally {
      await r.close();
    }
  }, 120_000);

  it('ends a run whose deadline falls mid-upload with the summary: the upload aborted, nothing half-written, the line kept', async () => {
    // Reserves an operator may set, small enough that a 10 s invocation starts its line.
    const r = await rehearse(1, { TIME_RESERVE_MS: '1000', DEADLINE_RESERVE_MS: '5000' }, 600_000);
    try {
      const [id] = [...r.local.tokens.lines.keys()] as [string];
      // 40 KB a second: the 600 KB file would take 15 s, the run's deadline falls 5 s in.
      r.local.tokens.inject({
        target: 'file',
        id,
        fault: { kind: 'trickle', chunkBytes: 4000, everyMs: 100 },
        times: Infinity,
      });

      const result = await r.invoke({}, 10_000);

      expect(result).toMatchObject({ kind: 'response', body: { dismantled: 0, archived: 0 } });
      const summary = (result as { body: Summary }).body;
      expect(summary.failed).toEqual([{ id, reason: expect.stringContaining('run deadline reached') }]);
      expect(r.local.tokens.lines.get(id)?.status).toBe('finished');
      expect(await listKeys(r.local.s3Client, r.local.bucket, `tokens/${id}/`)).toEqual([]);
      expect(r.fn.process.exitCode).toBeNull();
      expect(r.fronts.denied).toEqual([]);
    } finally {
      await r.close();
    }
  }, 120_000);

  it('refuses through the policy front what the deployed role does not grant: a delete, a write outside the prefix, another secret', async () => {
    await asRole(synthesized, pass, async ({ local, fronts, s3, secrets }) => {
      await s3.send(new PutObjectCommand({ Bucket: local.bucket, Key: 'tokens/kept', Body: 'x' }));
      expect(
        await refusalOf(s3.send(new DeleteObjectCommand({ Bucket: local.bucket, Key: 'tokens/kept' }))),
      ).toBe('AccessDenied');
      expect(
        await refusalOf(
          s3.send(new PutObjectCommand({ Bucket: local.bucket, Key: 'elsewhere/x', Body: 'x' })),
        ),
      ).toBe('AccessDenied');
      expect(await refusalOf(secrets.send(new GetSecretValueCommand({ SecretId: 'another/secret' })))).toBe(
        'AccessDeniedException',
      );

      expect(fronts.denied.map((d) => d.action).sort()).toEqual([
        's3:DeleteObject',
        's3:PutObject',
        'secretsmanager:GetSecretValue',
      ]);
      expect(await listKeys(local.s3Client, local.bucket)).toEqual(['tokens/kept']);
    });
  });

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

describe('the deployed bundles under the Lambda runtime client (fan-out mode)', () => {
  it('plans the schedule input onto the queue, and the worker takes the batches as the event source mapping delivers them', async () => {
    const stack = await startFanoutStack({
      lines: Array.from({ length: 3 }, () => ({ status: 'finished' as const, fileSize: 2000 })),
    });
    const byRole = (pattern: RegExp) => {
      const found = fanout.functions.find((fn) => pattern.test(fn.description));
      if (found === undefined) throw new Error(`no function described ${pattern}`);
      return found;
    };
    const local = {
      TOKENS_API_URL: stack.env.TOKENS_API_URL as string,
      SESSION_KEY_SECRET_ID: stack.local.secretId,
      ARCHIVE_BUCKET: stack.local.bucket,
      QUEUE_URL: stack.queueUrl,
    };
    const plannerFn = byRole(/^(?!Fan-out worker)/);
    const workerFn = byRole(/^Fan-out worker/);
    // Each function's requests through a front enforcing its own role.
    const queues = { WorkQueueDeadLetter: 'tokens-work-dlq', WorkQueue: 'tokens-work' };
    const plannerFronts = await policyFronts(fanout, plannerFn, stack.local, queues);
    const workerFronts = await policyFronts(fanout, workerFn, stack.local, queues);
    const planner = await startInvocable(plannerFn, {
      ric,
      environment: {
        ...resolvedEnvironment(plannerFn, local),
        ...plannerFronts.endpoints,
      },
    });
    const worker = await startInvocable(workerFn, {
      ric,
      environment: {
        ...resolvedEnvironment(workerFn, local),
        ...workerFronts.endpoints,
      },
    });
    try {
      const planned = await planner.invoke(fanout.scheduleInput);
      expect(planned).toMatchObject({ kind: 'response', body: { enqueued: 3 } });

      const batches = await drain(
        stack,
        async (event) => {
          const answer = await worker.invoke(event);
          if (answer.kind !== 'response') throw new Error(`the worker answered ${JSON.stringify(answer)}`);
          return answer.body as SQSBatchResponse;
        },
        2,
      );

      expect(batches).toBe(2);
      expect([...stack.local.tokens.lines.values()].every((line) => line.status === 'deleted')).toBe(true);
      for (const fn of [planner.fn, worker.fn]) {
        const lines = jsonLines(fn);
        // After the cold start, every line names an invocation.
        const later = lines.slice(lines.findIndex((line) => requestIdOf(line) !== undefined));
        expect(later.length).toBeGreaterThan(2);
        for (const line of later) expect(requestIdOf(line), JSON.stringify(line)).toEqual(expect.any(String));
        expect(JSON.stringify(lines)).not.toContain(stack.local.sessionKey);
      }
      for (const fronts of [plannerFronts, workerFronts]) {
        expect(fronts.denied).toEqual([]);
        expect(fronts.decisions.length).toBeGreaterThan(3);
      }
    } finally {
      await planner.close();
      await worker.close();
      await plannerFronts.close();
      await workerFronts.close();
      await stack.close();
    }
  }, 120_000);
});
