import { ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { describe, expect } from 'vitest';
import { createPlannerHandler, createWorkerHandler } from '../../lambda/app/fanout-invoke.ts';
import { createHandler } from '../../lambda/app/invoke.ts';
import { payloadFromArgs } from '../../lambda/entries/cli.ts';
import { LOCAL_AWS_ENV } from '../local/stack.ts';
import { closeAfterEach, localStack, oneFinishedLine, startCli } from './harness.ts';
import { checkInvariant, cliOutcome, settle, snapshot } from './invariant.ts';
import { it } from './ledger.ts';

const track = closeAfterEach();
const UUID = '00000000-0000-4000-8000-000000000001';
/** An EventBridge rule's scheduled event: on its own, a full pass. */
const SCHEDULED = { source: 'aws.events', 'detail-type': 'Scheduled Event', detail: {} } as const;

/** Payloads that must be refused whole: nothing read, nothing written, nothing deleted. */
const badPayloads: readonly [string, unknown][] = [
  ['dryRun as a string', { dryRun: 'yes' }],
  ['dryRun as a number', { dryRun: 1 }],
  ['archiveOnly as a string', { archiveOnly: 'false' }],
  ['archiveOnly as null', { archiveOnly: null }],
  ['ids as a string', { ids: UUID }],
  ['ids with a number', { ids: [42] }],
  ['ids with a path', { ids: ['../../etc/passwd'] }],
  ['ids with a UUID and a suffix', { ids: [`${UUID}/data`] }],
  ['ids empty', { ids: [] }],
  ['ids over 1000', { ids: Array.from({ length: 1001 }, () => UUID) }],
  ['maxLines as a string', { maxLines: '3' }],
  ['maxLines zero', { maxLines: 0 }],
  ['maxLines negative', { maxLines: -1 }],
  ['maxLines fractional', { maxLines: 1.5 }],
  ['maxLines infinite', { maxLines: Number.POSITIVE_INFINITY }],
  ['an unknown field', { dryrun: true }],
  ['a scheduled-event look-alike without detail-type', { source: 'aws.events' }],
  ['a scheduled event asking for a dry run', { ...SCHEDULED, dryRun: true, ids: [UUID] }],
  ['a scheduled event asking to archive only', { ...SCHEDULED, archiveOnly: true }],
  ['a scheduled event with an unknown field', { ...SCHEDULED, force: true }],
  ['a scheduled event whose detail says something', { ...SCHEDULED, detail: { dryRun: true } }],
  ['manual fields beside a lone detail-type', { 'detail-type': 'Scheduled Event', maxLines: 1 }],
  ['a string', 'run'],
  ['a number', 7],
  ['a boolean', true],
  ['an array', [{ dryRun: true }]],
];

describe('a bad manual payload', () => {
  it('is refused with an EventError naming the field, before any request, for every wrong shape', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: [{ status: 'finished', fileSize: 1000 }, { status: 'started' }],
    });
    const handler = createHandler(local.env);
    const before = snapshot(local.tokens);

    for (const [what, payload] of badPayloads) {
      s.fault(`event: ${what}`);
      const run = await settle(handler(payload));

      expect(run.error, what).toMatchObject({ name: 'EventError' });
      expect(local.tokens.requests, what).toEqual([]);
      expect(local.secrets.requests, what).toEqual([]);
      await checkInvariant(s, local, { before, runs: [run] });
    }
  });

  it('skips ids that do not exist, and touches no other line', async ({ s }) => {
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 1000 }] });
    const unknown = [crypto.randomUUID(), crypto.randomUUID()];
    s.fault('event: ids of lines that do not exist');
    const before = snapshot(local.tokens);

    const run = await settle(createHandler(local.env)({ ids: [...unknown, unknown[0]] }));

    expect(run.summary).toMatchObject({ listed: 2, finished: 0, dismantled: 0, failed: [] });
    expect(run.summary?.skipped.map((line) => line.reason)).toEqual(['not found (404)', 'not found (404)']);
    expect(local.tokens.requests.map((r) => r.path).sort()).toEqual(
      unknown.map((id) => `/api/tokens/${id}`).sort(),
    );
    await checkInvariant(s, local, { before, runs: [run] });
  });
});

describe('a payload that mixes a scheduled event with a manual request', () => {
  /** What an operator who meant a dry run of one line sent, on a scheduled event's envelope. */
  const mixed = (id: string) => ({ ...SCHEDULED, dryRun: true, ids: [id] });

  it('is refused by the function, and no DELETE reaches the service', async ({ s }) => {
    const local = await localStack(track, {
      lines: [
        { status: 'finished', fileSize: 1000 },
        { status: 'finished', fileSize: 10 },
      ],
    });
    const ids = [...local.tokens.lines.keys()];
    s.fault('event: scheduled event carrying dryRun and ids');
    const before = snapshot(local.tokens);

    const run = await settle(createHandler(local.env)(mixed(ids[0] as string)));

    expect(run.error).toMatchObject({ name: 'EventError', message: expect.stringMatching(/dryRun.*ids/) });
    for (const id of ids) expect(local.tokens.deleteCount(id), id).toBe(0);
    expect(local.tokens.requests).toEqual([]);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('is refused by the fan-out planner: nothing is queued and no DELETE reaches the service', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track);
    local.s3.createQueue('tokens-work');
    const queueUrl = `${local.s3.address}/000000000000/tokens-work`;
    const env = { ...local.env, QUEUE_URL: queueUrl, AWS_ENDPOINT_URL_SQS: local.s3.address };
    const sqs = new SQSClient({
      endpoint: local.s3.address,
      region: LOCAL_AWS_ENV.AWS_REGION,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    track({ close: async () => sqs.destroy() });
    s.fault('planner event: scheduled event carrying dryRun and ids');
    const before = snapshot(local.tokens);

    const run = await settle(createPlannerHandler(env)(mixed(id)) as Promise<never>);

    expect(run.error).toMatchObject({ name: 'EventError', message: expect.stringMatching(/dryRun.*ids/) });
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
    );
    expect(Messages).toEqual([]);
    expect(local.tokens.deleteCount(id)).toBe(0);
    expect(local.tokens.requests).toEqual([]);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('is refused by the fan-out worker, which takes SQS batches only, naming what it got', async ({ s }) => {
    const { local, id } = await oneFinishedLine(track);
    s.fault('worker event: a manual payload instead of an SQS batch');
    const before = snapshot(local.tokens);
    // Lambda hands the worker whatever an invoker sent, typed or not.
    const worker = createWorkerHandler(local.env) as (
      event: unknown,
    ) => ReturnType<ReturnType<typeof createWorkerHandler>>;

    const refused = await worker({ dryRun: true, ids: [id] }).catch((error: unknown) => error);

    expect(refused).toMatchObject({ name: 'EventError', message: expect.stringMatching(/Records.*dryRun/) });
    expect(local.tokens.deleteCount(id)).toBe(0);
    expect(local.tokens.requests).toEqual([]);
    await checkInvariant(s, local, { before, runs: [] });
  });

  it('leaves the worker taking a real SQS batch of no records as an empty batch', async () => {
    const local = await localStack(track);
    const event: SQSEvent = { Records: [] };

    const response = await createWorkerHandler(local.env)(event);

    expect(response).toEqual({ batchItemFailures: [] });
  });
});

describe('bad CLI flags', () => {
  const badFlags: readonly [string, string[]][] = [
    ['--ids not-a-uuid', ['--ids', 'not-a-uuid']],
    ['--ids with a path', ['--ids', `${UUID},../x`]],
    ['--ids empty', ['--ids', ',']],
    ['--max-lines abc', ['--max-lines', 'abc']],
    ['--max-lines 0', ['--max-lines', '0']],
    ['--max-lines 1.5', ['--max-lines', '1.5']],
    ['--max-lines empty', ['--max-lines', '']],
    ['--dry-run=yes', ['--dry-run=yes']],
    ['an unknown flag', ['--force']],
    ['a positional argument', ['everything']],
  ];
  /** Spawned for real: one per way of failing (the flag parser, the payload schema). */
  const spawned = new Set(['--ids with a path', '--max-lines abc', '--ids empty', 'an unknown flag']);

  it('are each refused by the flag parser, naming the flag, before any request', async ({ s }) => {
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 1000 }] });

    for (const [what, args] of badFlags) {
      s.fault(`cli: ${what}`);
      // Refused by the flags' own rules (node's parser, or ours, naming the flag): no payload.
      expect(() => payloadFromArgs(args), what).toThrow(/--|Unknown option|Unexpected argument/);
    }
    expect(local.tokens.requests).toEqual([]);
  });

  it('exit 2 from the CLI process and do nothing', async ({ s }) => {
    const local = await localStack(track, {
      lines: [{ status: 'finished', fileSize: 1000 }, { status: 'started' }],
    });
    const chosen = badFlags.filter(([what]) => spawned.has(what));
    const before = snapshot(local.tokens);

    // Side by side: each is a separate process, and none may touch anything.
    const results = await Promise.all(
      chosen.map(([what, args]) => {
        s.fault(`cli process: ${what}`);
        return track(startCli(local.env, args)).done;
      }),
    );

    for (const [index, result] of results.entries()) {
      const [what] = chosen[index] as [string, string[]];
      expect(result.code, what).toBe(2);
      expect(result.stdout, what).toBe('');
      expect(result.stderr, what).toMatch(/^housekeep: /m);
      await checkInvariant(s, local, { before, runs: [cliOutcome(result)] });
    }
    expect(local.tokens.requests).toEqual([]);
    expect(local.secrets.requests).toEqual([]);
  });
});
