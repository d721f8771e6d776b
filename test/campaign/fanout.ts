/**
 * A fan-out run: the real planner sends one message per line to the work queue; the campaign
 * then stands in for SQS and the event source mapping, and misdelivers on purpose: batches of
 * any size, messages out of order, duplicates, several workers at once, a failed message
 * redelivered, a done one delivered again, and a few held back to arrive during the next run.
 * The run's summary is then read back from what the workers recorded, as an operator would.
 */
import { DeleteMessageCommand, type Message, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse } from 'aws-lambda';
import { createPlannerHandler, createWorkerHandler } from '../../lambda/app/fanout-invoke.ts';
import { summarize } from '../../lambda/core/summary.ts';
import type { FanoutPlan, LineRecord, LineResult, Summary } from '../../lambda/core/types.ts';
import { LOCAL_AWS_ENV } from '../local/stack.ts';
import { type MessageSpec, sqsEvent } from '../support/sqs-event.ts';
import { capturingLogger } from './logs.ts';
import { Random } from './prng.ts';
import { eventOf, type RunResult } from './runs.ts';
import type { Delivery, RunStep, Schedule } from './schedule.ts';
import type { BucketView } from './store-read.ts';
import { PREFIX, type Stage } from './world.ts';

/** Receives of one message before it would go to the dead-letter queue (the stack's setting). */
const MAX_RECEIVES = 3;
const PLAIN: Delivery = { batchSize: 4, duplicate: 0, redeliver: 0, shuffle: false, workers: 1, late: 0 };

type Pending = MessageSpec & { readonly receiveCount: number };

/** What a fan-out run leaves for the next one: messages held back, delivered late. */
export type HeldMessages = Pending[];

/** Takes every message off the queue (the campaign delivers them itself). */
async function takeAll(stage: Stage): Promise<Pending[]> {
  const sqs = new SQSClient({
    endpoint: stage.world.s3.address,
    region: LOCAL_AWS_ENV.AWS_REGION,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  const taken: Pending[] = [];
  try {
    for (;;) {
      const { Messages = [] } = await sqs.send(
        new ReceiveMessageCommand({ QueueUrl: stage.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
      );
      if (Messages.length === 0) return taken;
      for (const m of Messages as Message[]) {
        taken.push({ messageId: m.MessageId ?? '?', body: m.Body ?? '', receiveCount: 1 });
        await sqs.send(
          new DeleteMessageCommand({ QueueUrl: stage.queueUrl, ReceiptHandle: m.ReceiptHandle }),
        );
      }
    }
  } finally {
    sqs.destroy();
  }
}

function shuffled<T>(rng: Random, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

type Worker = (batch: readonly Pending[]) => Promise<readonly Pending[]>;

/** A worker function (one container); answers the messages of a batch it reports failed. */
function worker(stage: Stage, logs: string[]): Worker {
  const handler = createWorkerHandler(stage.env, { logger: capturingLogger(logs) });
  return async (batch) => {
    let response: SQSBatchResponse;
    try {
      response = await handler(sqsEvent(batch));
    } catch {
      return batch;
    }
    const failed = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
    return batch.filter((m) => failed.has(m.messageId));
  };
}

/** Delivers the messages in batches, the workers side by side; failed ones again, up to the receive limit. */
async function deliver(workers: readonly Worker[], messages: Pending[], batchSize: number): Promise<void> {
  let queue = messages;
  for (let round = 0; queue.length > 0 && round < MAX_RECEIVES; round++) {
    const batches: Pending[][] = [];
    for (let i = 0; i < queue.length; i += batchSize) batches.push(queue.slice(i, i + batchSize));
    const failed = await Promise.all(
      workers.map(async (work, lane) => {
        const out: Pending[] = [];
        for (const [i, batch] of batches.entries())
          if (i % workers.length === lane) out.push(...(await work(batch)));
        return out;
      }),
    );
    queue = failed
      .flat()
      .filter((m) => m.receiveCount < MAX_RECEIVES)
      .map((m) => ({ ...m, receiveCount: m.receiveCount + 1 }));
  }
}

/**
 * Runs the planner, then delivers its messages (and those held back by the previous run) as
 * `step.delivery` says. Returns the run (its summary read back from the records) and the
 * messages held back for the next run.
 */
export async function fanoutRun(
  stage: Stage,
  schedule: Schedule,
  step: RunStep,
  runIndex: number,
  late: HeldMessages,
): Promise<{ run: RunResult; runId?: string; held: HeldMessages }> {
  const logs: string[] = [];
  let plan: FanoutPlan;
  try {
    const planner = createPlannerHandler(stage.env, { logger: capturingLogger(logs) });
    plan = (await planner(eventOf(schedule, step))) as FanoutPlan;
  } catch (error) {
    return { run: { outcome: { error }, logs }, held: late };
  }
  const rng = new Random((schedule.seed ^ Math.imul(runIndex + 1, 0x9e3779b1)) >>> 0);
  const d = step.delivery ?? PLAIN;
  const messages = await takeAll(stage);
  const held = shuffled(rng, messages).slice(0, Math.min(d.late, messages.length));
  const copies = Array.from({ length: messages.length > 0 ? d.duplicate : 0 }, () => ({
    ...rng.pick(messages),
    receiveCount: 1,
  }));
  const first = [...messages.filter((m) => !held.includes(m)), ...copies, ...late];
  const workers = Array.from({ length: d.workers }, () => worker(stage, logs));
  await deliver(workers, d.shuffle ? shuffled(rng, first) : first, d.batchSize);
  // Done messages whose delete did not take: delivered once more, after the rest.
  const again = Array.from({ length: messages.length > 0 ? d.redeliver : 0 }, () => ({
    ...rng.pick(messages),
    receiveCount: 2,
  }));
  await deliver(workers, again, 1);
  return { run: { outcome: {}, logs }, runId: plan.runId, held };
}

/** How far a line record says its line got (the order the workers keep records in). */
export function standing(result: { outcome?: unknown; dismantled?: unknown } | undefined): number {
  // A dismantling with a discrepancy says more than a plain one (as lambda/core/fanout-records.ts ranks them).
  if (result?.outcome === 'failed' && result.dismantled === true) return 4;
  if (result?.outcome === 'dismantled') return 3;
  return result?.outcome === 'pending' ? 2 : result?.outcome === 'archived' ? 1 : 0;
}

/** The line records (`{prefix}_runs/{date}/{runId}/lines/{id}.json`) among these keys. */
export function lineRecordKeys(keys: Iterable<string>): string[] {
  return [...keys].filter((k) => k.startsWith(`${PREFIX}_runs/`) && /\/lines\/[^/]+\.json$/.test(k));
}

/**
 * The run as a summary, from what the fan-out left in the bucket: the planner's report, and the
 * line records written or advanced during the run (its own, and those of an earlier run's late
 * messages), the furthest per line. Undefined when the report or a record cannot be read.
 */
export async function readBackSummary(
  view: BucketView,
  changed: readonly string[],
  runId: string,
): Promise<Summary | undefined> {
  const reportKey = (await view.keys()).find(
    (k) => k.startsWith(`${PREFIX}_runs/`) && k.endsWith(`/${runId}.json`),
  );
  const plan =
    reportKey === undefined
      ? undefined
      : ((await view.json(reportKey)) as { summary?: FanoutPlan } | undefined)?.summary;
  if (plan === undefined) return undefined;
  const furthest = new Map<string, LineResult>();
  const folder = reportKey?.replace(/\.json$/, '/lines/') ?? '';
  // Late messages of an earlier run act as that run asked (a full run's DELETE included).
  const ownOnly = lineRecordKeys(changed).every((key) => key.startsWith(folder));
  for (const key of lineRecordKeys(changed)) {
    const record = (await view.json(key)) as LineRecord | undefined;
    if (record?.result === undefined) return undefined;
    const held = furthest.get(record.result.id);
    if (held === undefined || standing(record.result) > standing(held))
      furthest.set(record.result.id, record.result);
  }
  const results = [...furthest.values()];
  return summarize(results, {
    runId,
    dryRun: false,
    archiveOnly: plan.archiveOnly && ownOnly,
    listed: Math.max(plan.listed, results.length),
    finished: Math.max(plan.finished, results.length),
    skipped: plan.skipped,
    deferred: plan.deferred,
    tally: { retries: plan.retries, hashMismatches: 0, hashMismatchAttempts: 0 },
    durationMs: plan.durationMs,
  });
}
