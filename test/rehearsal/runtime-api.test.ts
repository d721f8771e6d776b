import { afterEach, describe, expect, it, vi } from 'vitest';
import { RuntimeApi, RuntimeApiClosedError } from './runtime-api.ts';

const ARN = 'arn:aws:lambda:eu-west-1:111122223333:function:housekeeper';

const started: RuntimeApi[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((api) => api.close()));
});

async function startApi(): Promise<RuntimeApi> {
  const api = await RuntimeApi.start({ functionArn: ARN });
  started.push(api);
  return api;
}

/** What the runtime client does: fetch the next invocation (long-polls). */
async function next(api: RuntimeApi, signal?: AbortSignal) {
  const reply = await fetch(`http://${api.address}/2018-06-01/runtime/invocation/next`, { signal });
  return { status: reply.status, headers: reply.headers, event: (await reply.json()) as unknown };
}

/** What the runtime client does with its answer: POST it to `path` under /2018-06-01/runtime/. */
async function post(api: RuntimeApi, path: string, body: unknown, headers: Record<string, string> = {}) {
  const reply = await fetch(`http://${api.address}/2018-06-01/runtime/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: reply.status, body: (await reply.json()) as unknown };
}

describe('RuntimeApi', () => {
  it('delivers a queued event to the next poll with its body and the four Lambda headers', async () => {
    const api = await startApi();
    const before = Date.now();
    const result = api.invoke({ source: 'aws.events' }, { timeoutMs: 30_000, requestId: 'req-1' });

    const polled = await next(api);
    expect(polled.status).toBe(200);
    expect(polled.event).toEqual({ source: 'aws.events' });
    expect(polled.headers.get('content-type')).toBe('application/json');
    expect(polled.headers.get('lambda-runtime-aws-request-id')).toBe('req-1');
    expect(polled.headers.get('lambda-runtime-invoked-function-arn')).toBe(ARN);
    expect(polled.headers.get('lambda-runtime-trace-id')).toMatch(
      /^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$/,
    );
    const deadline = Number(polled.headers.get('lambda-runtime-deadline-ms'));
    expect(deadline).toBeGreaterThanOrEqual(before + 30_000);
    expect(deadline).toBeLessThanOrEqual(Date.now() + 30_000);

    expect(await post(api, 'invocation/req-1/response', { ok: true })).toEqual({
      status: 202,
      body: { status: 'OK' },
    });
    await result;
  });

  it('hands an invocation at once to a poll that was already waiting', async () => {
    const api = await startApi();
    const polled = next(api);
    await vi.waitFor(() => expect(api.polls).toBe(1));

    const result = api.invoke({ n: 1 }, { timeoutMs: 30_000 });
    const { event, headers } = await polled;
    expect(event).toEqual({ n: 1 });
    await post(api, `invocation/${headers.get('lambda-runtime-aws-request-id')}/response`, 'done');
    expect(await result).toMatchObject({ kind: 'response', body: 'done' });
  });

  it('resolves invoke() with the function response and the invocation it answers', async () => {
    const api = await startApi();
    const result = api.invoke({}, { timeoutMs: 30_000, requestId: 'req-ok' });
    const { headers } = await next(api);

    await post(api, 'invocation/req-ok/response', { listed: 3 });
    expect(await result).toEqual({
      kind: 'response',
      body: { listed: 3 },
      invocation: {
        requestId: 'req-ok',
        deadlineMs: Number(headers.get('lambda-runtime-deadline-ms')),
        functionArn: ARN,
        traceId: headers.get('lambda-runtime-trace-id'),
      },
    });
  });

  it('resolves invoke() with the function error, its type and message', async () => {
    const api = await startApi();
    const result = api.invoke({}, { timeoutMs: 30_000, requestId: 'req-err' });
    await next(api);

    const error = { errorType: 'DeadlineError', errorMessage: 'out of time', stackTrace: ['at x'] };
    const reply = await post(api, 'invocation/req-err/error', error, {
      'Lambda-Runtime-Function-Error-Type': 'DeadlineError',
    });
    expect(reply.status).toBe(202);
    expect(await result).toMatchObject({
      kind: 'error',
      errorType: 'DeadlineError',
      errorMessage: 'out of time',
      body: error,
      invocation: { requestId: 'req-err' },
    });
  });

  it('takes the error type from the header when the error body has none', async () => {
    const api = await startApi();
    const result = api.invoke({}, { timeoutMs: 30_000, requestId: 'req-h' });
    await next(api);

    await post(api, 'invocation/req-h/error', 'not an object', {
      'Lambda-Runtime-Function-Error-Type': 'Runtime.Unknown',
    });
    expect(await result).toMatchObject({ kind: 'error', errorType: 'Runtime.Unknown', errorMessage: '' });
  });

  it('delivers a second invocation to a second poll of the same warm process', async () => {
    const api = await startApi();
    const first = api.invoke({ n: 1 }, { timeoutMs: 30_000, requestId: 'warm-1' });
    expect((await next(api)).event).toEqual({ n: 1 });
    await post(api, 'invocation/warm-1/response', 1);
    expect(await first).toMatchObject({ kind: 'response', body: 1 });

    const polled = next(api);
    const second = api.invoke({ n: 2 }, { timeoutMs: 30_000, requestId: 'warm-2' });
    const { event, headers } = await polled;
    expect(event).toEqual({ n: 2 });
    expect(headers.get('lambda-runtime-aws-request-id')).toBe('warm-2');
    await post(api, 'invocation/warm-2/response', 2);
    expect(await second).toMatchObject({ kind: 'response', body: 2 });
    expect(api.polls).toBe(2);
  });

  it('resolves initError, and an invoke() pending meanwhile, with the init error', async () => {
    const api = await startApi();
    const result = api.invoke({}, { timeoutMs: 30_000 });

    const failure = { errorType: 'Runtime.ImportModuleError', errorMessage: 'no module', stackTrace: [] };
    expect((await post(api, 'init/error', failure)).status).toBe(202);

    const expected = {
      kind: 'init-error',
      errorType: 'Runtime.ImportModuleError',
      errorMessage: 'no module',
      body: failure,
    };
    expect(await api.initError).toEqual(expected);
    expect(await result).toEqual(expected);
    expect(api.polls).toBe(0);
  });

  it('resolves timeout after timeoutMs when the function never answers, calls onTimeout, then refuses the late answer', async () => {
    const api = await startApi();
    const onTimeout = vi.fn();
    // The poll is held first: on a busy machine a poll sent after the invoke could arrive past
    // its 100 ms, find nothing queued, and wait forever.
    const polled = next(api);
    await vi.waitFor(() => expect(api.polls).toBe(1));
    const invokedAt = Date.now();
    const result = api.invoke({}, { timeoutMs: 100, requestId: 'req-slow', onTimeout });
    await polled;

    expect(await result).toMatchObject({ kind: 'timeout', invocation: { requestId: 'req-slow' } });
    expect(Date.now() - invokedAt).toBeGreaterThanOrEqual(95);
    expect(onTimeout).toHaveBeenCalledOnce();
    expect((await post(api, 'invocation/req-slow/response', 'late')).status).toBe(400);
  });

  it('refuses an answer for an unknown request id with 400 InvalidRequestID, as the real API does', async () => {
    const api = await startApi();
    const result = api.invoke({}, { timeoutMs: 30_000, requestId: 'req-known' });
    await next(api);

    for (const kind of ['response', 'error']) {
      expect(await post(api, `invocation/req-other/${kind}`, {})).toEqual({
        status: 400,
        body: { errorMessage: 'Invalid request ID', errorType: 'InvalidRequestID' },
      });
    }
    expect((await post(api, 'invocation/req-known/response', 'once')).status).toBe(202);
    expect((await post(api, 'invocation/req-known/response', 'twice')).status).toBe(400);
    expect(await result).toMatchObject({ kind: 'response', body: 'once' });
  });

  it('refuses an answer for an invocation still queued, which no poll has fetched', async () => {
    const api = await startApi();
    const result = api.invoke({}, { timeoutMs: 30_000, requestId: 'req-queued' });

    expect((await post(api, 'invocation/req-queued/response', 'early')).status).toBe(400);
    const { event } = await next(api);
    expect(event).toEqual({});
    await post(api, 'invocation/req-queued/response', 'fetched');
    expect(await result).toMatchObject({ kind: 'response', body: 'fetched' });
  });

  it('answers 404 for any other route', async () => {
    const api = await startApi();
    const reply = await fetch(`http://${api.address}/2018-06-01/runtime/invocation/nope`);
    expect(reply.status).toBe(404);
    expect((await post(api, 'invocation/x/unknown', {})).status).toBe(404);
  });

  it('ends a pending poll on close(), and rejects an unanswered invoke()', async () => {
    const api = await RuntimeApi.start();
    const polled = next(api);
    await vi.waitFor(() => expect(api.polls).toBe(1));
    const unanswered = api.invoke({}, { timeoutMs: 30_000, requestId: 'never-answered' });
    const outcome = expect(unanswered).rejects.toBeInstanceOf(RuntimeApiClosedError);
    // The first poll takes the invocation; a second poll waits; close before the function answers.
    await polled;
    const waiting = next(api);
    await vi.waitFor(() => expect(api.polls).toBe(2));

    await api.close();
    await expect(waiting).rejects.toThrow();
    await outcome;
  });
});
