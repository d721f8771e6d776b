import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterEach, describe, expect } from 'vitest';
import { createPlannerHandler, createWorkerHandler } from '../../lambda/app/fanout-invoke.ts';
import type { FanoutPlan, LineResult, Summary } from '../../lambda/core/types.ts';
import { EventError } from '../../lambda/shared/errors.ts';
import type { LocalStackOptions } from '../local/stack.ts';
import { checkInvariant, snapshot } from '../reliability/invariant.ts';
import { it } from '../reliability/ledger.ts';
import { type S3Proxy, startS3Proxy } from '../reliability/s3-proxy.ts';
import { listKeys, objectJson } from '../support/archive-inspect.ts';
import {
  bodiesIn,
  drain,
  type FanoutStack,
  lineRecordOf,
  messagesIn,
  startFanoutStack,
  wholeRun,
} from '../support/fanout-stack.ts';
import { sqsEvent } from '../support/sqs-event.ts';

let open: FanoutStack | undefined;
const proxies: S3Proxy[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
  await open?.close();
  open = undefined;
});

/** A fan-out stack (see {@link startFanoutStack}), closed after the test. */
async function fanoutStack(options: LocalStackOptions = {}): Promise<FanoutStack> {
  open = await startFanoutStack(options);
  return open;
}

describe('fan-out over real HTTP and SQS', () => {
  it('plans one message per finished line; workers archive them, survive duplicates and failures, and lose nothing', async ({
    s,
  }) => {
    const stack = await fanoutStack({
      lines: [
        { status: 'finished', fileSize: 35_151 },
        { status: 'finished', analysis: 'metrics', fileSize: 20_000 },
        { status: 'finished', analysis: 'metrics', fileSize: 9_000 },
        { status: 'finished', fileSize: 5_000 },
        { status: 'started' },
        { status: 'requested' },
      ],
    });
    const { local } = stack;
    const [plain, metrics, corrupted, duplicated] = [...local.tokens.lines.keys()] as [
      string,
      string,
      string,
      string,
    ];
    s.inject(local.tokens, {
      target: 'file',
      id: corrupted,
      file: 'score',
      fault: { kind: 'corrupt' },
      times: Infinity,
    });
    const before = snapshot(local.tokens);
    const planner = createPlannerHandler(stack.env);
    const worker = createWorkerHandler(stack.env);

    const plan = (await planner({})) as FanoutPlan;
    const sent = bodiesIn(stack, 'tokens-work');
    // SQS delivers at least once: a copy of a message, and two that are not work messages at all.
    const copy = sent.find((body) => body.includes(duplicated)) ?? '';
    s.fault('sqs: duplicate message');
    s.fault('sqs: malformed message bodies');
    for (const body of [copy, 'not json', JSON.stringify({ lineId: 'nope', runId: plan.runId })]) {
      await stack.sqs.send(new SendMessageCommand({ QueueUrl: stack.queueUrl, MessageBody: body }));
    }
    await drain(stack, worker);

    expect(plan).toMatchObject({ listed: 6, finished: 4, enqueued: 4, alreadyQueued: 0, failed: [] });
    expect(sent.map((body) => JSON.parse(body))).toEqual(
      expect.arrayContaining([{ lineId: plain, runId: plan.runId, plannedAt: expect.any(String) }]),
    );
    for (const id of [plain, metrics, duplicated]) {
      expect(local.tokens.lines.get(id)?.status).toBe('deleted');
      expect(local.tokens.deleteCount(id)).toBe(1);
    }
    expect(local.tokens.lines.get(corrupted)?.status).toBe('finished');
    expect(local.tokens.deleteCount(corrupted)).toBe(0);
    expect(await messagesIn(stack, stack.queueUrl)).toBe(0);
    const deadLetters = bodiesIn(stack, 'tokens-work-dlq');
    expect(deadLetters).toHaveLength(3);
    expect(deadLetters.filter((body) => body.includes(corrupted))).toHaveLength(1);
    expect(deadLetters).toContain('not json');
    const run = await wholeRun(local, plan.runId);
    expect(run).toMatchObject({ finished: 4, archived: 3, dismantled: 3 });
    expect(run.failed).toEqual([{ id: corrupted, reason: expect.stringMatching(/file score.*SHA-256/) }]);
    await checkInvariant(s, local, { before, runs: [{ summary: run }] });
  });

  it('does not enqueue a line already queued by the previous run, unless named by id', async ({ s }) => {
    const stack = await fanoutStack({ lines: [{ status: 'finished' }, { status: 'finished' }] });
    const [first] = [...stack.local.tokens.lines.keys()] as [string];
    const before = snapshot(stack.local.tokens);
    const planner = createPlannerHandler(stack.env);

    const earlier = (await planner({})) as FanoutPlan;
    const later = (await planner({})) as FanoutPlan;
    const byId = (await planner({ ids: [first] })) as FanoutPlan;

    expect(earlier).toMatchObject({ enqueued: 2, alreadyQueued: 0 });
    expect(later).toMatchObject({ enqueued: 0, alreadyQueued: 2 });
    expect(byId).toMatchObject({ enqueued: 1, alreadyQueued: 0 });
    expect(await messagesIn(stack, stack.queueUrl)).toBe(3);
    const markers = await listKeys(stack.local.s3Client, stack.local.bucket, 'tokens/_queued/');
    expect(markers).toHaveLength(2);
    const marker = (await objectJson(
      stack.local.s3Client,
      stack.local.bucket,
      `tokens/_queued/${first}.json`,
    )) as {
      runId: string;
    };
    expect(marker.runId).toBe(byId.runId);
    await checkInvariant(s, stack.local, { before, runs: [] });
  });

  it('enqueues a line again once its marker is older than QUEUE_MARKER_TTL_SECONDS', async () => {
    const stack = await fanoutStack({
      lines: [{ status: 'finished' }],
      env: { QUEUE_MARKER_TTL_SECONDS: '0' },
    });
    const planner = createPlannerHandler(stack.env);

    await planner({});
    const again = (await planner({})) as FanoutPlan;

    expect(again).toMatchObject({ enqueued: 1, alreadyQueued: 0 });
    expect(await messagesIn(stack, stack.queueUrl)).toBe(2);
  });

  it('archives a line once and loses nothing when two workers get its message at the same time', async ({
    s,
  }) => {
    const stack = await fanoutStack({
      lines: [
        { status: 'finished', analysis: 'metrics', fileSize: 400_000 },
        { status: 'finished', fileSize: 300_000 },
      ],
    });
    const before = snapshot(stack.local.tokens);
    const plan = (await createPlannerHandler(stack.env)({})) as FanoutPlan;
    const sent = bodiesIn(stack, 'tokens-work');
    s.fault('sqs: every message delivered twice');
    for (const body of sent) {
      await stack.sqs.send(new SendMessageCommand({ QueueUrl: stack.queueUrl, MessageBody: body }));
    }

    // Two workers side by side, one message each: the copies of a line are worked concurrently.
    await Promise.all([
      drain(stack, createWorkerHandler(stack.env), 1),
      drain(stack, createWorkerHandler(stack.env), 1),
    ]);

    for (const id of stack.local.tokens.lines.keys()) {
      expect(stack.local.tokens.lines.get(id)?.status).toBe('deleted');
    }
    expect(await messagesIn(stack, stack.queueUrl)).toBe(0);
    expect(await messagesIn(stack, stack.dlqUrl)).toBe(0);
    const run = await wholeRun(stack.local, plan.runId);
    expect(run).toMatchObject({ archived: 2, dismantled: 2, failed: [] });
    await checkInvariant(s, stack.local, { before, runs: [{ summary: run }] });
  });

  it('answers a dry run, an audit and a bad payload on the planner as the single-mode function does', async () => {
    const stack = await fanoutStack({ lines: [{ status: 'finished', fileSize: 777 }] });
    const [id] = [...stack.local.tokens.lines.keys()] as [string];
    const planner = createPlannerHandler(stack.env);

    const dry = (await planner({ dryRun: true })) as Summary;
    const audit = await planner({ audit: true });

    expect(dry.plan).toEqual([
      expect.objectContaining({ id, files: 1, bytes: 777, action: 'archive-and-dismantle' }),
    ]);
    expect(audit).toMatchObject({ lines: 0 });
    await expect(planner({ dryRun: 'yes' })).rejects.toThrow(EventError);
    expect(await messagesIn(stack, stack.queueUrl)).toBe(0);
    expect(await listKeys(stack.local.s3Client, stack.local.bucket)).toEqual([]);
  });
});

/** A promise with its opener, to order two workers step by step. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/**
 * The stack's environment with S3 behind a proxy that enforces conditional writes as S3 does, and
 * holds the first PutObject of a key ending in `suffix`: `held` opens when it arrives, and it goes
 * on to the store only once `release` is opened.
 */
async function holdFirstPut(stack: FanoutStack, suffix: string) {
  const held = gate();
  const release = gate();
  const proxy = await startS3Proxy(stack.local.s3.address, { enforceConditionalWrites: true });
  proxies.push(proxy);
  let holding = false;
  proxy.decide = ({ operation, key }) => {
    if (operation !== 'PutObject' || !key.endsWith(suffix) || holding) return 'forward';
    holding = true;
    held.open();
    return { after: release.promise };
  };
  /** Whether S3 refused a conditional write of that key (412) since. */
  const refused = () => proxy.requests.some((r) => r.key.endsWith(suffix) && r.preconditionFailed === true);
  return { held, release, refused, env: { ...stack.env, AWS_ENDPOINT_URL_S3: proxy.url } };
}

/** Whether a worker's result says the line left the service by its DELETE. */
const saysDismantled = (result: LineResult): boolean =>
  result.outcome === 'dismantled' || (result.outcome === 'failed' && result.dismantled === true);

describe('fan-out line records never go backwards', () => {
  it('keeps the record of a line dismantled with a discrepancy when its message comes back and finds the line gone', async () => {
    const stack = await fanoutStack({ lines: [{ status: 'finished', fileSize: 3000 }] });
    const { local } = stack;
    const [id] = [...local.tokens.lines.keys()] as [string];
    local.tokens.onRequest((method, path) => {
      if (method === 'DELETE' && path === `/api/tokens/${id}`) local.tokens.restateFile(id, 'data');
    });
    const plan = (await createPlannerHandler(stack.env)({})) as FanoutPlan;
    const [message] = bodiesIn(stack, 'tokens-work') as [string];
    const worker = createWorkerHandler(stack.env);
    await worker(sqsEvent([{ messageId: 'first', body: message }]));
    const dismantling = await lineRecordOf(local, plan.runId, id);

    // The message goes back to the queue (or SQS delivers it twice): the copy finds the line gone.
    await worker(sqsEvent([{ messageId: 'first', body: message, receiveCount: 2 }]));

    expect(saysDismantled(dismantling.result)).toBe(true);
    expect(local.tokens.deleteCount(id)).toBe(1);
    expect(await lineRecordOf(local, plan.runId, id)).toEqual(dismantling);
  });

  it('keeps a dismantled record when a copy that found the line gone writes its skip after it', async ({
    s,
  }) => {
    const stack = await fanoutStack({ lines: [{ status: 'finished' }] });
    const { local } = stack;
    const [id] = [...local.tokens.lines.keys()] as [string];
    const before = snapshot(local.tokens);
    const plan = (await createPlannerHandler(stack.env)({})) as FanoutPlan;
    const [message] = bodiesIn(stack, 'tokens-work') as [string];
    const { held, release, refused, env } = await holdFirstPut(stack, `/${plan.runId}/lines/${id}.json`);
    s.fault('sqs: a copy of the message, worked at the same time; its read answers 404');
    local.tokens.inject({ target: 'get', id, fault: { kind: 'status', status: 404 } });

    // The copy records its skip first, but its write reaches S3 only after the dismantling's.
    const copy = createWorkerHandler(env)(sqsEvent([{ messageId: 'copy', body: message }]));
    await held.promise;
    const first = await createWorkerHandler(env)(sqsEvent([{ messageId: 'first', body: message }]));
    release.open();
    const late = await copy;

    expect(first.batchItemFailures).toEqual([]);
    expect(late.batchItemFailures).toEqual([]);
    expect(refused(), 'the late write was refused by S3 (412)').toBe(true);
    expect(local.tokens.deleteCount(id)).toBe(1);
    expect(await lineRecordOf(local, plan.runId, id)).toMatchObject({
      messageIds: ['first'],
      result: { outcome: 'dismantled' },
    });
    await checkInvariant(s, local, { before, runs: [{ summary: await wholeRun(local, plan.runId) }] });
  });

  it('replaces the skip of a copy that wrote first with the record of the dismantling', async () => {
    const stack = await fanoutStack({ lines: [{ status: 'finished' }] });
    const { local } = stack;
    const [id] = [...local.tokens.lines.keys()] as [string];
    const plan = (await createPlannerHandler(stack.env)({})) as FanoutPlan;
    const [message] = bodiesIn(stack, 'tokens-work') as [string];
    const { held, release, refused, env } = await holdFirstPut(stack, `/${plan.runId}/lines/${id}.json`);

    // The dismantling's record write is held; the copy then finds the line gone and records a skip.
    const first = createWorkerHandler(env)(sqsEvent([{ messageId: 'first', body: message }]));
    await held.promise;
    await createWorkerHandler(env)(sqsEvent([{ messageId: 'copy', body: message }]));
    const skip = await lineRecordOf(local, plan.runId, id);
    release.open();
    await first;

    expect(skip.result).toMatchObject({ outcome: 'skipped' });
    expect(refused(), "the dismantling's first write was refused by S3 (412)").toBe(true);
    expect(await lineRecordOf(local, plan.runId, id)).toMatchObject({
      messageIds: ['first'],
      result: { outcome: 'dismantled' },
    });
  });

  it("keeps the queued marker of a later planner's run when an earlier planner marks the line after it", async () => {
    const stack = await fanoutStack({ lines: [{ status: 'finished' }] });
    const { local } = stack;
    const [id] = [...local.tokens.lines.keys()] as [string];
    const { held, release, refused, env } = await holdFirstPut(stack, `_queued/${id}.json`);

    // A scheduled planner sends the line; an operator's run by id sends and marks it meanwhile.
    const scheduled = createPlannerHandler(env)({}) as Promise<FanoutPlan>;
    await held.promise;
    const manual = (await createPlannerHandler(env)({ ids: [id] })) as FanoutPlan;
    release.open();
    const earlier = await scheduled;

    expect(earlier.enqueued).toBe(1);
    expect(manual.enqueued).toBe(1);
    const marker = (await objectJson(local.s3Client, local.bucket, `tokens/_queued/${id}.json`)) as {
      runId: string;
    };
    expect(marker.runId).toBe(manual.runId);
    expect(refused(), "the earlier planner's marker was refused by S3 (412)").toBe(true);
  });
});
