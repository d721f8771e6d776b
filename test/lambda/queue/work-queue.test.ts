import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import {
  encodeWorkMessage,
  parseWorkMessage,
  SQS_BATCH_LIMIT,
  sqsWorkQueue,
  type WorkMessage,
} from '../../../lambda/queue/work-queue.ts';
import { EventError, QueueError } from '../../../lambda/shared/errors.ts';

const RUN_ID = '0b7e4c1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b';
const LINE_ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const NOW = Date.parse('2026-05-01T10:00:00.000Z');
const QUEUE_URL = 'https://sqs.eu-west-1.amazonaws.com/123456789012/tokens-work';

describe('encodeWorkMessage and parseWorkMessage', () => {
  it('carry the line id, the run id and the planning time, and archiveOnly only when set', () => {
    const lineId = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
    const plannedAt = new Date(NOW).toISOString();

    const plain = JSON.parse(encodeWorkMessage({ lineId, runId: RUN_ID, plannedAt, archiveOnly: false }));
    const archiveOnly = JSON.parse(
      encodeWorkMessage({ lineId, runId: RUN_ID, plannedAt, archiveOnly: true }),
    );

    expect(plain).toEqual({ lineId, runId: RUN_ID, plannedAt });
    expect(archiveOnly).toEqual({ lineId, runId: RUN_ID, plannedAt, archiveOnly: true });
  });

  it('parse a body without plannedAt (sent by hand) as planned now', () => {
    const lineId = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';

    const message = parseWorkMessage(JSON.stringify({ lineId, runId: RUN_ID }), () => NOW);

    expect(message).toEqual({
      lineId,
      runId: RUN_ID,
      plannedAt: new Date(NOW).toISOString(),
      archiveOnly: false,
    });
  });

  it.each([
    ['not JSON', 'hello', /not JSON/],
    ['JSON but not an object', '[1,2]', /message body/],
    ['without a line id', JSON.stringify({ runId: RUN_ID }), /lineId/],
    [
      'with a line id that is not a UUID',
      JSON.stringify({ lineId: '../x', runId: RUN_ID }),
      /lineId: must be a UUID/,
    ],
    [
      'with an unknown field',
      JSON.stringify({ lineId: RUN_ID, runId: RUN_ID, sessionKey: 'k' }),
      /unknown field "sessionKey"/,
    ],
    [
      'with a plannedAt that is not a time',
      JSON.stringify({ lineId: RUN_ID, runId: RUN_ID, plannedAt: 'yesterday' }),
      /plannedAt: expected an ISO 8601 datetime/,
    ],
  ])('refuse a body %s with an EventError', (_what, body, message) => {
    expect(() => parseWorkMessage(body, () => NOW)).toThrow(EventError);
    expect(() => parseWorkMessage(body, () => NOW)).toThrow(message);
  });

  it.each<[string, WorkMessage]>([
    [
      'a plain message',
      { lineId: LINE_ID, runId: RUN_ID, plannedAt: '2026-05-01T10:00:00.000Z', archiveOnly: false },
    ],
    [
      'archiveOnly',
      { lineId: LINE_ID, runId: RUN_ID, plannedAt: '2026-05-01T10:00:00.000Z', archiveOnly: true },
    ],
    [
      'a keep-both resolution',
      {
        lineId: LINE_ID,
        runId: RUN_ID,
        plannedAt: '2026-05-01T10:00:00.000Z',
        archiveOnly: false,
        onConflict: 'keep-both',
      },
    ],
    [
      'a grace period',
      {
        lineId: LINE_ID,
        runId: RUN_ID,
        plannedAt: '2026-05-01T10:00:00.000Z',
        archiveOnly: true,
        minAgeSeconds: 900,
      },
    ],
    [
      'a grace period of 0 (none)',
      {
        lineId: LINE_ID,
        runId: RUN_ID,
        plannedAt: '2026-05-01T10:00:00.000Z',
        archiveOnly: false,
        minAgeSeconds: 0,
      },
    ],
  ])('come back as sent: %s', (_what, message) => {
    const parsed = parseWorkMessage(encodeWorkMessage(message), () => 0);

    expect(parsed).toEqual(message);
  });

  it('carry onConflict and minAgeSeconds only when set', () => {
    const plannedAt = new Date(NOW).toISOString();

    const body = JSON.parse(
      encodeWorkMessage({ lineId: LINE_ID, runId: RUN_ID, plannedAt, archiveOnly: false }),
    );

    expect(Object.keys(body)).toEqual(['lineId', 'runId', 'plannedAt']);
  });

  it.each([
    ['an onConflict other than keep-both', { onConflict: 'fail' }, /onConflict/],
    ['a negative minAgeSeconds', { minAgeSeconds: -1 }, /minAgeSeconds/],
    ['a fractional minAgeSeconds', { minAgeSeconds: 1.5 }, /minAgeSeconds/],
    ['an archiveOnly that is not a boolean', { archiveOnly: 'yes' }, /archiveOnly/],
    ['a run id that is not a UUID', { runId: 'run-1' }, /runId: must be a UUID/],
  ])('refuse a body with %s, naming the field', (_what, fields, message) => {
    const body = JSON.stringify({ lineId: LINE_ID, runId: RUN_ID, ...fields });

    expect(() => parseWorkMessage(body, () => NOW)).toThrow(EventError);
    expect(() => parseWorkMessage(body, () => NOW)).toThrow(message);
  });
});

describe('sqsWorkQueue', () => {
  const client = new SQSClient({ region: 'eu-west-1' });
  const sqs = mockClient(client);
  afterEach(() => sqs.reset());

  it('returns refused entries, retryable unless SQS blames the sender, and unacknowledged ones', async () => {
    sqs.on(SendMessageBatchCommand).resolves({
      Successful: [{ Id: 'm0', MessageId: 'x', MD5OfMessageBody: '' }],
      Failed: [
        { Id: 'm1', SenderFault: true, Code: 'InvalidParameterValue', Message: 'bad' },
        { Id: 'm2', SenderFault: false, Code: 'InternalError', Message: 'try again' },
      ],
    });
    const queue = sqsWorkQueue(client, QUEUE_URL);

    const failures = await queue.sendBatch(
      ['m0', 'm1', 'm2', 'm3'].map((id) => ({ id, body: `{"id":"${id}"}` })),
    );

    expect(failures).toEqual([
      { id: 'm1', reason: 'InvalidParameterValue: bad', retryable: false },
      { id: 'm2', reason: 'InternalError: try again', retryable: true },
      { id: 'm3', reason: 'not acknowledged', retryable: true },
    ]);
    expect(sqs.commandCalls(SendMessageBatchCommand)[0]?.args[0].input).toMatchObject({
      QueueUrl: QUEUE_URL,
      Entries: [{ Id: 'm0', MessageBody: '{"id":"m0"}' }, { Id: 'm1' }, { Id: 'm2' }, { Id: 'm3' }],
    });
  });

  it('returns no failure when SQS accepts every entry', async () => {
    sqs.on(SendMessageBatchCommand).resolves({
      Successful: [
        { Id: 'm0', MessageId: 'x', MD5OfMessageBody: '' },
        { Id: 'm1', MessageId: 'y', MD5OfMessageBody: '' },
      ],
      Failed: [],
    });
    const queue = sqsWorkQueue(client, QUEUE_URL);

    const failures = await queue.sendBatch([
      { id: 'm0', body: '{}' },
      { id: 'm1', body: '{}' },
    ]);

    expect(failures).toEqual([]);
  });

  it('refuses more entries than one SendMessageBatch takes, without sending any', async () => {
    const queue = sqsWorkQueue(client, QUEUE_URL);
    const entries = Array.from({ length: SQS_BATCH_LIMIT + 1 }, (_, index) => ({
      id: `m${index}`,
      body: '{}',
    }));

    const sending = queue.sendBatch(entries);

    await expect(sending).rejects.toBeInstanceOf(QueueError);
    await expect(sending).rejects.toThrow(/11 entries in one batch, at most 10/);
    expect(sqs.commandCalls(SendMessageBatchCommand)).toEqual([]);
  });

  it('throws when the request as a whole fails', async () => {
    sqs.on(SendMessageBatchCommand).rejects(new Error('AccessDenied'));
    const queue = sqsWorkQueue(client, QUEUE_URL);

    const sending = queue.sendBatch([{ id: 'm0', body: '{}' }]);

    await expect(sending).rejects.toThrow('AccessDenied');
  });
});
