import { Logger } from '@aws-lambda-powertools/logger';
import { ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { Agent } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, loadPlannerConfig } from '../../../lambda/app/config.ts';
import { createArchive, createDeps } from '../../../lambda/app/deps.ts';
import { workBatch } from '../../../lambda/app/work-batch.ts';
import { planFanout } from '../../../lambda/core/fanout-planner.ts';
import { FULL_PASS } from '../../../lambda/core/request.ts';
import type { Deps, LineRecord, MetricsSink, RunRequest } from '../../../lambda/core/types.ts';
import type { QueueEntry, SendFailure, WorkQueue } from '../../../lambda/queue/work-queue.ts';
import { ConfigError, EventError } from '../../../lambda/shared/errors.ts';
import { TokensApi } from '../../../lambda/tokens/api.ts';
import { type LocalStack, startLocalStack } from '../../local/stack.ts';
import { type LineSpec, startTokensService, type TokensService } from '../../local/tokens-service.ts';
import { listKeys, objectJson } from '../../support/archive-inspect.ts';
import { type MessageSpec, sqsEvent } from '../../support/sqs-event.ts';

const RUN_ID = '0b7e4c1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b';
const OTHER_RUN_ID = '9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d';
const NOW = Date.parse('2026-05-01T10:00:00.000Z');
const QUEUE_URL = 'https://sqs.eu-west-1.amazonaws.com/123456789012/tokens-work';
const BASE_ENV = {
  TOKENS_API_URL: 'https://tokens.example.com',
  SESSION_KEY_SECRET_ID: 'tokens/session-key',
  ARCHIVE_BUCKET: 'tokens-archive',
};

const silent = () => new Logger({ serviceName: 'test', logLevel: 'SILENT' });

/** A metrics sink that remembers what was added, summed by name. */
function recordingMetrics(): MetricsSink & { readonly values: Map<string, number> } {
  const values = new Map<string, number>();
  return {
    values,
    addMetric(name, _unit, value) {
      values.set(name, (values.get(name) ?? 0) + value);
    },
  };
}

/** A work queue that records each batch and answers with what `refuse` says for it. */
function fakeQueue(
  refuse: (entries: readonly QueueEntry[], call: number) => SendFailure[] | Error = () => [],
) {
  const batches: QueueEntry[][] = [];
  const queue: WorkQueue = {
    async sendBatch(entries) {
      batches.push([...entries]);
      const answer = refuse(entries, batches.length);
      if (answer instanceof Error) throw answer;
      return answer;
    },
  };
  const sentLineIds = () =>
    batches.flatMap((batch, index) =>
      batch
        .filter((entry) => {
          const answer = refuse(batch, index + 1);
          return !(answer instanceof Error) && !answer.some((failure) => failure.id === entry.id);
        })
        .map((entry) => (JSON.parse(entry.body) as { lineId: string }).lineId),
    );
  return { queue, batches, sentLineIds };
}

describe('loadPlannerConfig', () => {
  it('names QUEUE_URL when it is missing', () => {
    const load = () => loadPlannerConfig(BASE_ENV);

    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/^QUEUE_URL: is required/);
  });

  it('reads the queue URL and the marker TTL, 2 hours by default', () => {
    const config = loadPlannerConfig({ ...BASE_ENV, QUEUE_URL });
    const shorter = loadPlannerConfig({ ...BASE_ENV, QUEUE_URL, QUEUE_MARKER_TTL_SECONDS: '600' });

    expect(config.fanout).toEqual({
      queueUrl: QUEUE_URL,
      queueMarkerTtlMs: 7_200_000,
      sqsEndpointOverride: undefined,
    });
    expect(shorter.fanout.queueMarkerTtlMs).toBe(600_000);
  });

  it.each([
    ['not a URL', 'work-queue', /QUEUE_URL: is not a URL/],
    ['plain http to AWS', 'http://sqs.eu-west-1.amazonaws.com/123456789012/q', /QUEUE_URL: must be https/],
    ['no queue path', 'https://sqs.eu-west-1.amazonaws.com/', /QUEUE_URL: must be a queue URL/],
  ])('refuses a queue URL that is %s', (_what, value, message) => {
    expect(() => loadPlannerConfig({ ...BASE_ENV, QUEUE_URL: value })).toThrow(message);
  });

  it('refuses a marker TTL longer than the day markers are kept', () => {
    expect(() => loadPlannerConfig({ ...BASE_ENV, QUEUE_URL, QUEUE_MARKER_TTL_SECONDS: '90000' })).toThrow(
      /QUEUE_MARKER_TTL_SECONDS: must be between 0 and 86400/,
    );
  });

  it('accepts a local http queue URL when the SQS endpoint is overridden', () => {
    const config = loadPlannerConfig({
      ...BASE_ENV,
      QUEUE_URL: 'http://127.0.0.1:4566/000000000000/tokens-work',
      AWS_ENDPOINT_URL_SQS: 'http://127.0.0.1:4566',
    });

    expect(config.fanout.sqsEndpointOverride).toBe('http://127.0.0.1:4566');
  });

  it('leaves the worker needing no QUEUE_URL', () => {
    expect(() => loadConfig(BASE_ENV)).not.toThrow();
  });
});

describe('planFanout', () => {
  const sessionKey = 'planner-test-session-key';
  const s3Client = new S3Client({
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  const s3 = mockClient(s3Client);
  /** The listings of the planner's queued markers (the planner also lists pending-DELETE markers). */
  const queuedListings = () =>
    s3.commandCalls(ListObjectsV2Command).filter((call) => call.args[0].input.Prefix === 'tokens/_queued/');
  let tokens: TokensService | undefined;
  let http: Agent | undefined;

  beforeEach(() => {
    s3.reset();
    s3.on(ListObjectsV2Command).resolves({ Contents: [] });
    s3.on(PutObjectCommand).resolves({});
  });
  afterEach(async () => {
    await tokens?.close();
    await http?.close();
    tokens = undefined;
    http = undefined;
  });

  async function arrange(lines: LineSpec[], env: Record<string, string> = {}) {
    tokens = await startTokensService({ sessionKey, lines });
    http = new Agent();
    const config = loadPlannerConfig({
      ...BASE_ENV,
      TOKENS_API_URL: tokens.url,
      QUEUE_URL,
      RETRY_BASE_DELAY_MS: '1',
      RETRY_MAX_DELAY_MS: '5',
      ...env,
    });
    const metrics = recordingMetrics();
    const agent = http;
    const deps: Deps = {
      archive: createArchive(s3Client, config),
      tokens: ({ onRetry, signal }) =>
        new TokensApi({
          baseUrl: config.tokensApiUrl,
          dispatcher: agent,
          sessionKey: { get: async () => sessionKey, invalidate: () => undefined },
          retry: config.retry,
          onRetry,
          ...(signal === undefined ? {} : { signal }),
        }),
      now: () => NOW,
      logger: silent(),
      metrics,
    };
    const ids = [...tokens.lines.keys()];
    return { config, deps, metrics, ids };
  }

  const putKeys = () => s3.commandCalls(PutObjectCommand).map((call) => call.args[0].input.Key ?? '?');
  const markerKeys = () => putKeys().filter((key) => key.startsWith('tokens/_queued/'));
  const reportOf = () => {
    const call = s3
      .commandCalls(PutObjectCommand)
      .find((c) => c.args[0].input.Key?.startsWith('tokens/_runs/') === true);
    return JSON.parse(String(call?.args[0].input.Body)) as {
      mode: string;
      summary: Record<string, unknown>;
      enqueued: string[];
      alreadyQueued: string[];
    };
  };

  it('sends one message per finished line in batches of ten, then marks each line and reports the run', async () => {
    const finished = Array.from({ length: 23 }, (): LineSpec => ({ status: 'finished' }));
    const { config, deps, metrics, ids } = await arrange([...finished, { status: 'started' }]);
    const finishedIds = ids.slice(0, 23);
    const { queue, batches } = fakeQueue();

    const plan = await planFanout(deps, config, queue, FULL_PASS, { runId: RUN_ID });

    expect(plan).toMatchObject({
      runId: RUN_ID,
      listed: 24,
      finished: 23,
      enqueued: 23,
      alreadyQueued: 0,
      failed: [],
    });
    expect(batches.map((batch) => batch.length).sort()).toEqual([10, 10, 3]);
    const bodies = batches.flat().map((entry) => JSON.parse(entry.body));
    expect(bodies.map((body) => body.lineId).sort()).toEqual([...finishedIds].sort());
    expect(bodies[0]).toEqual({
      lineId: expect.any(String),
      runId: RUN_ID,
      plannedAt: '2026-05-01T10:00:00.000Z',
    });
    expect(markerKeys().sort()).toEqual(finishedIds.map((id) => `tokens/_queued/${id}.json`).sort());
    const marker = s3
      .commandCalls(PutObjectCommand)
      .find((c) => c.args[0].input.Key === `tokens/_queued/${finishedIds[0]}.json`);
    expect(JSON.parse(String(marker?.args[0].input.Body))).toEqual({
      lineId: finishedIds[0],
      runId: RUN_ID,
      at: '2026-05-01T10:00:00.000Z',
    });
    expect(putKeys()).toContain(`tokens/_runs/2026-05-01/${RUN_ID}.json`);
    expect(reportOf()).toMatchObject({
      mode: 'fanout',
      summary: { enqueued: 23 },
      enqueued: [...finishedIds].sort(),
    });
    expect(metrics.values.get('LinesEnqueued')).toBe(23);
    expect(metrics.values.get('LinesFailed')).toBe(0);
  });

  it('does not send a line whose marker is younger than the TTL, and sends one whose marker is older', async () => {
    const { config, deps, metrics, ids } = await arrange([{ status: 'finished' }, { status: 'finished' }]);
    const [young, old] = ids as [string, string];
    s3.on(ListObjectsV2Command, { Prefix: 'tokens/_queued/' }).resolves({
      Contents: [
        { Key: `tokens/_queued/${young}.json`, LastModified: new Date(NOW - 60 * 60 * 1000) },
        { Key: `tokens/_queued/${old}.json`, LastModified: new Date(NOW - 3 * 60 * 60 * 1000) },
        { Key: 'tokens/_queued/not-a-line.json', LastModified: new Date(NOW) },
      ],
    });
    const { queue, sentLineIds } = fakeQueue();

    const plan = await planFanout(deps, config, queue, FULL_PASS, { runId: RUN_ID });

    expect(plan).toMatchObject({ enqueued: 1, alreadyQueued: 1 });
    expect(sentLineIds()).toEqual([old]);
    expect(markerKeys()).toEqual([`tokens/_queued/${old}.json`]);
    expect(reportOf()).toMatchObject({ enqueued: [old], alreadyQueued: [young] });
    expect(metrics.values.get('LinesAlreadyQueued')).toBe(1);
    expect(queuedListings()[0]?.args[0].input).toMatchObject({
      Bucket: 'tokens-archive',
      Prefix: 'tokens/_queued/',
    });
  });

  it('applies the grace period on the list before sending: a young line waits, one with no finish time is skipped', async () => {
    const { config, deps, metrics, ids } = await arrange(
      [
        { status: 'finished', finishedAgoMs: 10 * 60_000 },
        { status: 'finished', finishedAgoMs: 2 * 3600_000 },
        { status: 'finished', finishedStamp: 'soon' },
      ],
      { MIN_AGE: '1h' },
    );
    const [young, old, unknown] = ids as [string, string, string];
    const { queue, sentLineIds } = fakeQueue();

    const plan = await planFanout({ ...deps, now: () => Date.now() }, config, queue, FULL_PASS, {
      runId: RUN_ID,
    });

    expect(sentLineIds()).toEqual([old]);
    expect(plan).toMatchObject({ finished: 3, enqueued: 1, waiting: 1 });
    expect(plan.skipped).toEqual([{ id: unknown, reason: expect.stringMatching(/MIN_AGE is set/) }]);
    expect(metrics.values.get('LinesWaiting')).toBe(1);
    expect(sentLineIds()).not.toContain(young);
  });

  it('follows the marker listing across pages', async () => {
    const { config, deps, ids } = await arrange([{ status: 'finished' }, { status: 'finished' }]);
    const [first, second] = ids as [string, string];
    const recent = new Date(NOW - 1000);
    s3.on(ListObjectsV2Command, { Prefix: 'tokens/_queued/' })
      .resolvesOnce({
        Contents: [{ Key: `tokens/_queued/${first}.json`, LastModified: recent }],
        IsTruncated: true,
        NextContinuationToken: 'page-2',
      })
      .resolvesOnce({ Contents: [{ Key: `tokens/_queued/${second}.json`, LastModified: recent }] });
    const { queue, batches } = fakeQueue();

    const plan = await planFanout(deps, config, queue, FULL_PASS, { runId: RUN_ID });

    expect(plan).toMatchObject({ enqueued: 0, alreadyQueued: 2 });
    expect(batches).toEqual([]);
    expect(queuedListings()[1]?.args[0].input.ContinuationToken).toBe('page-2');
  });

  it('sends again the entries SQS did not accept, and marks them once accepted', async () => {
    const { config, deps, ids } = await arrange([{ status: 'finished' }, { status: 'finished' }]);
    const { queue, batches } = fakeQueue((entries, call) =>
      call === 1 ? [{ id: entries[1]?.id ?? '?', reason: 'InternalError: later', retryable: true }] : [],
    );

    const plan = await planFanout(deps, config, queue, FULL_PASS, { runId: RUN_ID });

    expect(plan).toMatchObject({ enqueued: 2, failed: [], retries: 1 });
    expect(batches.map((batch) => batch.length)).toEqual([2, 1]);
    expect(markerKeys().sort()).toEqual(ids.map((id) => `tokens/_queued/${id}.json`).sort());
  });

  it('reports a line SQS refuses for good as failed, and leaves it unmarked for the next run', async () => {
    const { config, deps, metrics, ids } = await arrange([{ status: 'finished' }, { status: 'finished' }]);
    const { queue } = fakeQueue((entries) => [
      { id: entries[0]?.id ?? '?', reason: 'InvalidParameterValue: no', retryable: false },
    ]);

    const plan = await planFanout(deps, config, queue, FULL_PASS, { runId: RUN_ID });

    const refusedLine = plan.failed[0]?.id;
    expect(plan.enqueued).toBe(1);
    expect(plan.failed).toEqual([
      { id: expect.any(String), reason: 'not enqueued: InvalidParameterValue: no' },
    ]);
    expect(markerKeys()).toEqual(
      ids.filter((id) => id !== refusedLine).map((id) => `tokens/_queued/${id}.json`),
    );
    expect(metrics.values.get('LinesFailed')).toBe(1);
  });

  it('reports every line of a batch whose request keeps failing, without markers, after the retries', async () => {
    const { config, deps, ids } = await arrange([{ status: 'finished' }], { RETRY_ATTEMPTS: '3' });
    const unreachable = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const { queue, batches } = fakeQueue(() => unreachable);

    const plan = await planFanout(deps, config, queue, FULL_PASS, { runId: RUN_ID });

    expect(batches).toHaveLength(3);
    expect(plan).toMatchObject({
      enqueued: 0,
      failed: [{ id: ids[0], reason: 'not enqueued: connect ECONNREFUSED' }],
    });
    expect(markerKeys()).toEqual([]);
  });

  it('sends lines named by id whatever their markers say, and reads no listing', async () => {
    const { config, deps, ids } = await arrange([{ status: 'finished' }, { status: 'finished' }]);
    const [chosen] = ids as [string];
    s3.on(ListObjectsV2Command).resolves({
      Contents: [{ Key: `tokens/_queued/${chosen}.json`, LastModified: new Date(NOW) }],
    });
    const { queue, sentLineIds } = fakeQueue();
    const request: RunRequest = { ...FULL_PASS, ids: [chosen] };

    const plan = await planFanout(deps, config, queue, request, { runId: RUN_ID });

    expect(plan).toMatchObject({ listed: 1, enqueued: 1, alreadyQueued: 0 });
    expect(sentLineIds()).toEqual([chosen]);
    expect(s3.commandCalls(ListObjectsV2Command)).toEqual([]);
    expect(tokens?.requests.some((r) => r.path === '/api/tokens')).toBe(false);
  });

  it('sends at most maxLines and defers the rest, and carries archiveOnly in the message', async () => {
    const { config, deps } = await arrange([
      { status: 'finished' },
      { status: 'finished' },
      { status: 'finished' },
    ]);
    const { queue, batches } = fakeQueue();

    const plan = await planFanout(
      deps,
      config,
      queue,
      { ...FULL_PASS, maxLines: 2, archiveOnly: true },
      {
        runId: RUN_ID,
      },
    );

    expect(plan).toMatchObject({ enqueued: 2, deferred: 1, archiveOnly: true });
    expect(batches.flat().map((entry) => JSON.parse(entry.body).archiveOnly)).toEqual([true, true]);
  });

  it('defers every batch when the invocation has less than the time reserve left', async () => {
    const { config, deps } = await arrange([{ status: 'finished' }]);
    const { queue, batches } = fakeQueue();

    // Less than the time reserve (90 s), more than the deadline reserve (20 s).
    const plan = await planFanout(deps, config, queue, FULL_PASS, {
      runId: RUN_ID,
      remainingMs: () => 30_000,
    });

    expect(plan).toMatchObject({ enqueued: 0, deferred: 1 });
    expect(batches).toEqual([]);
  });

  it('refuses a dry run, which is the single-mode plan', async () => {
    const { config, deps } = await arrange([]);
    const { queue } = fakeQueue();

    const planning = planFanout(deps, config, queue, { ...FULL_PASS, dryRun: true });

    await expect(planning).rejects.toThrow(EventError);
  });
});

describe('workBatch', () => {
  let local: LocalStack | undefined;
  afterEach(async () => {
    await local?.close();
    local = undefined;
  });

  async function arrange(lines: LineSpec[], env: Record<string, string> = {}) {
    local = await startLocalStack({ lines, env: { RETRY_ATTEMPTS: '2', ...env } });
    const config = loadConfig(local.env);
    const metrics = recordingMetrics();
    const deps = createDeps(config, { logger: silent(), metrics });
    /** One call of the worker on an SQS event of these messages. */
    const work = (messages: readonly MessageSpec[], context?: Parameters<typeof workBatch>[3]) =>
      workBatch(deps, config, sqsEvent(messages), context);
    return { local, metrics, work, ids: [...local.tokens.lines.keys()] };
  }

  const body = (lineId: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({ lineId, runId: RUN_ID, plannedAt: '2026-04-30T23:59:00.000Z', ...extra });
  /** The planner's message `messageId` for line `lineId`, with `extra` fields in its body. */
  const message = (messageId: string, lineId: string, extra?: Record<string, unknown>): MessageSpec => ({
    messageId,
    body: body(lineId, extra),
  });

  async function recordOf(stack: LocalStack, lineId: string, runId = RUN_ID): Promise<LineRecord> {
    const key = `tokens/_runs/2026-04-30/${runId}/lines/${lineId}.json`;
    return (await objectJson(stack.s3Client, stack.bucket, key)) as LineRecord;
  }

  it("archives and dismantles each message's line under the planner's run id, and records it", async () => {
    const { local, work, ids } = await arrange([
      { status: 'finished' },
      { status: 'finished', analysis: 'metrics' },
    ]);
    const [plain, metrics] = ids as [string, string];

    const report = await work([message('a', plain), message('b', metrics)]);

    expect(report.response).toEqual({ batchItemFailures: [] });
    expect(report.summaries).toEqual([
      expect.objectContaining({ runId: RUN_ID, archived: 2, dismantled: 2 }),
    ]);
    for (const id of ids) {
      expect(local.tokens.lines.get(id)?.status).toBe('deleted');
      const manifest = (await objectJson(local.s3Client, local.bucket, `tokens/${id}/manifest.json`)) as {
        runId: string;
      };
      expect(manifest.runId).toBe(RUN_ID);
    }
    // Dated by the planner, so the records sit beside its report even after midnight.
    const record = await recordOf(local, plain);
    expect(record).toMatchObject({
      runId: RUN_ID,
      lineId: plain,
      messageIds: ['a'],
      result: { outcome: 'dismantled' },
    });
  });

  it('reports the message of a line whose file is corrupted, and leaves that line on the service', async () => {
    const { local, metrics, work, ids } = await arrange([{ status: 'finished' }, { status: 'finished' }]);
    const [bad, good] = ids as [string, string];
    local.tokens.inject({ target: 'file', id: bad, fault: { kind: 'corrupt' }, times: Infinity });

    const report = await work([message('bad', bad), message('good', good)]);

    expect(report.response).toEqual({ batchItemFailures: [{ itemIdentifier: 'bad' }] });
    expect(local.tokens.lines.get(bad)?.status).toBe('finished');
    expect(local.tokens.deleteCount(bad)).toBe(0);
    expect(local.tokens.lines.get(good)?.status).toBe('deleted');
    expect(await recordOf(local, bad)).toMatchObject({
      result: { outcome: 'failed', errorName: 'IntegrityError' },
    });
    expect(metrics.values.get('LinesFailed')).toBe(1);
    expect(metrics.values.get('HashMismatches')).toBe(1);
    expect(metrics.values.get('LinesDismantled')).toBe(1);
    expect(metrics.values.has('RunDuration')).toBe(false);
  });

  it('reports malformed bodies as failures and still works the other messages', async () => {
    const { local, work, ids } = await arrange([{ status: 'finished' }]);
    const [id] = ids as [string];

    const report = await work([
      { messageId: 'not-json', body: '{"lineId": ' },
      message('good', id),
      { messageId: 'no-run', body: JSON.stringify({ lineId: id }) },
      message('escape', '../../etc'),
    ]);

    expect(report.response.batchItemFailures).toEqual([
      { itemIdentifier: 'not-json' },
      { itemIdentifier: 'no-run' },
      { itemIdentifier: 'escape' },
    ]);
    expect(report.malformed).toBe(3);
    expect(local.tokens.lines.get(id)?.status).toBe('deleted');
    expect(local.tokens.deleteCount(id)).toBe(1);
  });

  it('works a line sent twice in one batch once, and acknowledges both messages', async () => {
    const { local, work, ids } = await arrange([{ status: 'finished' }]);
    const [id] = ids as [string];

    const report = await work([message('first', id), message('copy', id)]);

    expect(report.response.batchItemFailures).toEqual([]);
    expect(local.tokens.deleteCount(id)).toBe(1);
    expect(
      local.tokens.requests.filter((r) => r.method === 'GET' && r.path === `/api/tokens/${id}/data`),
    ).toHaveLength(1);
    expect((await recordOf(local, id)).messageIds).toEqual(['first', 'copy']);
  });

  it("holds a line whose message carries the planner's hold, whatever the case of its id, and works it once with a copy", async () => {
    const { local, work, ids } = await arrange([{ status: 'finished' }]);
    const [id] = ids as [string];
    const hold = 'MAX_DISMANTLES_PER_RUN (0) reached: archived only, kept on the service';

    const report = await work([message('held', id.toUpperCase(), { hold }), message('copy', id)]);

    expect(report.response.batchItemFailures).toEqual([]);
    expect(local.tokens.deleteCount(id)).toBe(0);
    expect(local.tokens.lines.get(id)?.status).toBe('finished');
    expect(report.summaries).toEqual([expect.objectContaining({ archived: 1, dismantled: 0 })]);
    expect(report.summaries[0]?.held).toEqual([{ id, reason: hold }]);
    expect((await recordOf(local, id)).messageIds).toEqual(['held', 'copy']);
  });

  it("confirms a line whose earlier DELETE is done even when its message carries the planner's hold, sending none", async () => {
    const { local, work, ids } = await arrange([{ status: 'finished' }]);
    const [id] = ids as [string];
    local.tokens.inject({
      target: 'delete',
      id,
      fault: { kind: 'delete-reply', status: 202, acts: false, body: 'none' },
    });
    const taken = await work([message('taken', id, { runId: OTHER_RUN_ID })]);
    expect(taken.summaries[0]?.pending.map((line) => line.id)).toEqual([id]);
    local.tokens.completeDeletion(id);

    const report = await work([message('held', id, { hold: 'MAX_DISMANTLES_PER_RUN (0) reached' })]);

    expect(report.response.batchItemFailures).toEqual([]);
    expect(report.summaries).toEqual([expect.objectContaining({ dismantled: 1, held: [], pending: [] })]);
    expect(local.tokens.deleteCount(id)).toBe(1);
    expect((await recordOf(local, id)).result.outcome).toBe('dismantled');
  });

  it('treats a later delivery of a dismantled line as done, and keeps the record of the dismantling', async () => {
    const { local, work, ids } = await arrange([{ status: 'finished' }]);
    const [id] = ids as [string];
    await work([message('first', id)]);

    const again = await work([{ messageId: 'again', body: body(id), receiveCount: 2 }]);

    expect(again.response.batchItemFailures).toEqual([]);
    expect(again.summaries[0]?.skipped).toEqual([{ id, reason: 'not found (404)' }]);
    expect(local.tokens.deleteCount(id)).toBe(1);
    expect(await recordOf(local, id)).toMatchObject({
      messageIds: ['first'],
      result: { outcome: 'dismantled' },
    });
  });

  it('does not report a skipped line (not finished, or unknown) as a failure', async () => {
    const { local, work, ids } = await arrange([{ status: 'started' }]);
    const [started] = ids as [string];
    const unknown = '00000000-0000-4000-8000-000000000000';

    const report = await work([message('started', started), message('unknown', unknown)]);

    expect(report.response.batchItemFailures).toEqual([]);
    expect(local.tokens.deleteCount(started)).toBe(0);
    expect(await listKeys(local.s3Client, local.bucket, `tokens/${started}/`)).toEqual([]);
  });

  it('archives without DELETE when the message says archiveOnly', async () => {
    const { local, work, ids } = await arrange([{ status: 'finished' }]);
    const [id] = ids as [string];

    const report = await work([message('a', id, { archiveOnly: true })]);

    expect(report.summaries).toEqual([
      expect.objectContaining({ archiveOnly: true, archived: 1, dismantled: 0 }),
    ]);
    expect(local.tokens.deleteCount(id)).toBe(0);
    expect(await listKeys(local.s3Client, local.bucket, `tokens/${id}/`)).toEqual([
      `tokens/${id}/data`,
      `tokens/${id}/manifest.json`,
    ]);
  });

  it('keeps messages of different runs apart, each line under its own run id', async () => {
    const { local, work, ids } = await arrange([{ status: 'finished' }, { status: 'finished' }]);
    const [one, two] = ids as [string, string];

    const report = await work([message('a', one), message('b', two, { runId: OTHER_RUN_ID })]);

    expect(report.summaries.map((s) => [s.runId, s.dismantled]).sort()).toEqual(
      [
        [RUN_ID, 1],
        [OTHER_RUN_ID, 1],
      ].sort(),
    );
    expect((await recordOf(local, two, OTHER_RUN_ID)).result.outcome).toBe('dismantled');
  });

  it('leaves lines in the queue, untouched, when the invocation has less than the time reserve left', async () => {
    const { local, work, ids } = await arrange([{ status: 'finished' }]);
    const [id] = ids as [string];

    const report = await work([message('late', id)], {
      remainingMs: () => 1000,
    });

    expect(report.response.batchItemFailures).toEqual([{ itemIdentifier: 'late' }]);
    expect(report.summaries[0]?.deferred).toBe(1);
    expect(local.tokens.requests.filter((r) => r.path.startsWith(`/api/tokens/${id}`))).toEqual([]);
  });
});
