import { describe, expect, it, vi } from 'vitest';
import {
  ArchiveError,
  ConfigError,
  DocumentError,
  HttpStatusError,
  IntegrityError,
  SecretError,
  TokensApiError,
} from '../../../lambda/shared/errors.ts';
import { isRetryable, type RetryPolicy, withRetry } from '../../../lambda/shared/retry.ts';

const POLICY: RetryPolicy = { attempts: 3, baseDelayMs: 1, maxDelayMs: 20 };
const URL_OF_LINE = 'https://tokens.example.com/api/tokens/6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';

function apiError(status: number, retryAfterMs?: number): HttpStatusError {
  return new HttpStatusError(`answered ${status}`, {
    method: 'GET',
    url: URL_OF_LINE,
    status,
    retryable: status === 408 || status === 429 || status >= 500,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  });
}

/** An error shaped like the AWS SDK's service exceptions. */
function awsError(name: string, httpStatusCode?: number): Error {
  return Object.assign(new Error(`${name} from AWS`), {
    name,
    $fault: httpStatusCode !== undefined && httpStatusCode >= 500 ? 'server' : 'client',
    $metadata: httpStatusCode === undefined ? {} : { httpStatusCode },
  });
}

function networkError(code: string): Error {
  return Object.assign(new Error(`socket trouble (${code})`), { code });
}

/** An operation that fails with these errors in turn, then resolves to 'done'. */
function failingWith(...errors: unknown[]) {
  const queue = [...errors];
  return vi.fn(async (_attempt: number) => {
    if (queue.length > 0) throw queue.shift();
    return 'done';
  });
}

describe('withRetry', () => {
  it('returns the first success without retrying', async () => {
    const operation = failingWith();

    const result = await withRetry(POLICY, operation);

    expect(result).toBe('done');
    expect(operation).toHaveBeenCalledTimes(1);
  });

  it('retries a retryable error and returns the later success, numbering the attempts', async () => {
    const operation = failingWith(apiError(503), apiError(502));

    const result = await withRetry(POLICY, operation);

    expect(result).toBe('done');
    expect(operation.mock.calls.map(([attempt]) => attempt)).toEqual([1, 2, 3]);
  });

  it('makes `attempts` attempts in all, then rethrows the last error', async () => {
    const last = apiError(500);
    const operation = failingWith(apiError(503), apiError(503), last, apiError(503));

    const error = await withRetry(POLICY, operation).catch((caught: unknown) => caught);

    expect(error).toBe(last);
    expect(operation).toHaveBeenCalledTimes(3);
  });

  it('makes a single attempt when attempts is 1', async () => {
    const operation = failingWith(apiError(503));

    await expect(withRetry({ ...POLICY, attempts: 1 }, operation)).rejects.toBeInstanceOf(TokensApiError);

    expect(operation).toHaveBeenCalledTimes(1);
  });

  it.each([
    ['a DocumentError', new DocumentError('line x', 'data: expected an object')],
    ['a TokensApiError 404', apiError(404)],
    ['a TokensApiError 401', apiError(401)],
    ['a ConfigError', new ConfigError('TOKENS_API_URL', 'is required but not set')],
    ['a SecretError', new SecretError('tokens/key', 'GetSecretValue failed (AccessDeniedException)')],
    ['an AWS 403', awsError('AccessDenied', 403)],
    ['a plain Error', new Error('bug')],
    ['a TypeError', new TypeError('x is not a function')],
  ])('does not retry %s', async (_what, failure) => {
    const operation = failingWith(failure);
    const onRetry = vi.fn();

    const error = await withRetry(POLICY, operation, onRetry).catch((caught: unknown) => caught);

    expect(error).toBe(failure);
    expect(operation).toHaveBeenCalledTimes(1);
    expect(onRetry).not.toHaveBeenCalled();
  });

  it.each([
    ['an IntegrityError', new IntegrityError('l', 'data', { size: 1, sha256: 'a' }, { size: 0 }, 'short')],
    ['a retryable ArchiveError', new ArchiveError('k', 'PutObject failed', { retryable: true })],
    ['an AWS 503', awsError('ServiceUnavailable', 503)],
    ['an ECONNRESET', networkError('ECONNRESET')],
    ['an UND_ERR_SOCKET', networkError('UND_ERR_SOCKET')],
  ])('retries %s', async (_what, failure) => {
    const operation = failingWith(failure);

    const result = await withRetry(POLICY, operation);

    expect(result).toBe('done');
    expect(operation).toHaveBeenCalledTimes(2);
  });

  it('tells onRetry about every new attempt, with the error that ended the previous one', async () => {
    const first = apiError(503);
    const second = networkError('ECONNRESET');
    const operation = failingWith(first, second, apiError(503));
    const onRetry = vi.fn();

    await withRetry(POLICY, operation, onRetry).catch(() => undefined);

    expect(onRetry.mock.calls).toEqual([
      [first, 2],
      [second, 3],
    ]);
  });

  it('waits at least as long as Retry-After says before the next attempt', async () => {
    const retryAfterMs = 50;
    const startedAt: number[] = [];
    const queue = [apiError(503, retryAfterMs)];
    const operation = async () => {
      startedAt.push(performance.now());
      const failure = queue.shift();
      if (failure !== undefined) throw failure;
      return 'done';
    };

    const result = await withRetry({ attempts: 2, baseDelayMs: 1, maxDelayMs: 1000 }, operation);

    expect(result).toBe('done');
    const [first = 0, second = 0] = startedAt;
    // Timers count whole milliseconds from the event loop's cached clock: allow one of slack.
    expect(second - first).toBeGreaterThanOrEqual(retryAfterMs - 1);
  });

  it('gives up at once when Retry-After asks for longer than maxDelayMs', async () => {
    const failure = apiError(429, 60_000);
    const operation = failingWith(failure);
    const onRetry = vi.fn();
    const startedAt = performance.now();

    const error = await withRetry({ attempts: 5, baseDelayMs: 1, maxDelayMs: 100 }, operation, onRetry).catch(
      (caught: unknown) => caught,
    );

    expect(error).toBe(failure);
    expect(operation).toHaveBeenCalledTimes(1);
    expect(onRetry).not.toHaveBeenCalled();
    expect(performance.now() - startedAt).toBeLessThan(1000);
  });

  it('does not retry a thrown non-Error value', async () => {
    const operation = failingWith('just a string');

    await expect(withRetry(POLICY, operation)).rejects.toBeDefined();

    expect(operation).toHaveBeenCalledTimes(1);
  });

  it('rethrows a thrown non-Error value unchanged', async () => {
    const thrown = { code: 'ECONNRESET', detail: 'a plain object' };
    const operation = failingWith(thrown);

    const error = await withRetry(POLICY, operation).catch((caught: unknown) => caught);

    expect(error).toBe(thrown);
  });
});

describe('isRetryable', () => {
  it.each([
    ['TokensApiError 500', true, apiError(500)],
    ['TokensApiError 503', true, apiError(503)],
    ['TokensApiError 408', true, apiError(408)],
    ['TokensApiError 429', true, apiError(429)],
    ['TokensApiError 404', false, apiError(404)],
    ['TokensApiError 400', false, apiError(400)],
    ['IntegrityError', true, new IntegrityError('l', 'data', { size: 1, sha256: 'a' }, { size: 2 }, 'long')],
    ['DocumentError', false, new DocumentError('list', 'data: expected an array')],
    ['ConfigError', false, new ConfigError('ARCHIVE_BUCKET', 'is required but not set')],
    ['ArchiveError, retryable', true, new ArchiveError('k', 'x', { retryable: true })],
    ['ArchiveError, by default', false, new ArchiveError('k', 'x')],
    ['SecretError', false, new SecretError('id', 'x')],
  ])('judges a %s as retryable: %s', (_what, expected, error) => {
    const retryable = isRetryable(error);

    expect(retryable).toBe(expected);
  });

  it.each([
    [503, true],
    [500, true],
    [429, true],
    [408, true],
    [403, false],
    [404, false],
    [400, false],
  ])('judges an AWS SDK error with HTTP status %i: %s', (status, expected) => {
    const error = awsError('SomeServiceException', status);

    const retryable = isRetryable(error);

    expect(retryable).toBe(expected);
  });

  it('retries an AWS SDK error that carries no status (no response arrived)', () => {
    const error = awsError('RequestTimeout');

    const retryable = isRetryable(error);

    expect(retryable).toBe(true);
  });

  it.each([
    'ECONNRESET',
    'ECONNREFUSED',
    'EPIPE',
    'ETIMEDOUT',
    'EAI_AGAIN',
    'UND_ERR_SOCKET',
    'UND_ERR_CONNECT_TIMEOUT',
    'UND_ERR_HEADERS_TIMEOUT',
    'UND_ERR_BODY_TIMEOUT',
    'ERR_STREAM_PREMATURE_CLOSE',
  ])('retries a network error with code %s', (code) => {
    const error = networkError(code);

    const retryable = isRetryable(error);

    expect(retryable).toBe(true);
  });

  it.each(['ENOENT', 'EACCES', 'ERR_INVALID_ARG_TYPE'])('does not retry an error with code %s', (code) => {
    const error = networkError(code);

    const retryable = isRetryable(error);

    expect(retryable).toBe(false);
  });

  it.each(['TimeoutError', 'AbortError'])('retries a %s (a request deadline ran out)', (name) => {
    const error = new DOMException('The operation was aborted due to timeout', name);

    const retryable = isRetryable(error);

    expect(retryable).toBe(true);
  });

  it.each([
    ['a plain Error', new Error('x')],
    ['a string', 'ECONNRESET'],
    ['null', null],
    ['undefined', undefined],
    ['a number', 503],
  ])('does not retry %s', (_what, error) => {
    const retryable = isRetryable(error);

    expect(retryable).toBe(false);
  });
});
