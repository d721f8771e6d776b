import { errors } from 'undici';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../../lambda/app/config.ts';
import { createDeps } from '../../../lambda/app/deps.ts';
import { formatUndiciNoticesPlainly } from '../../../lambda/app/stack-traces.ts';
import { LOCAL_AWS_ENV } from '../../local/stack.ts';

type PrepareStackTrace = NonNullable<typeof Error.prepareStackTrace>;

describe('formatUndiciNoticesPlainly', () => {
  const saved = Error.prepareStackTrace;
  // Stands for Node's default formatter, which maps every frame through the source map.
  const mapped = vi.fn<PrepareStackTrace>(() => 'mapped');
  beforeEach(() => {
    mapped.mockClear();
    Error.prepareStackTrace = mapped;
  });
  afterEach(() => {
    Error.prepareStackTrace = saved;
  });

  it("formats the stack of undici's idle-connection notice as V8 does, never through the source map", () => {
    formatUndiciNoticesPlainly();
    const notice = new errors.InformationalError('socket idle timeout');

    const stack = notice.stack ?? '';

    expect(mapped).not.toHaveBeenCalled();
    expect(stack.split('\n')[0]).toBe('InformationalError: socket idle timeout');
    expect(stack.split('\n')[1]).toMatch(/^ {4}at .*stack-traces\.test\.ts:\d+:\d+/);
  });

  it('leaves the stack of every other error to the formatter it found, source map and all', () => {
    formatUndiciNoticesPlainly();

    const stacks = [new Error('failed'), new errors.SocketError('other side closed')].map(
      (error) => error.stack,
    );

    expect(stacks).toEqual(['mapped', 'mapped']);
    expect(mapped).toHaveBeenCalledTimes(2);
  });

  it('wraps the formatter once, however many times it is installed', () => {
    formatUndiciNoticesPlainly();
    const installed = Error.prepareStackTrace;
    formatUndiciNoticesPlainly();

    expect(Error.prepareStackTrace).toBe(installed);
    expect(new Error('failed').stack).toBe('mapped');
    expect(mapped).toHaveBeenCalledTimes(1);
  });

  it('is installed with the HTTP agent whose idle connections give those notices', () => {
    const config = loadConfig({
      ...LOCAL_AWS_ENV,
      TOKENS_API_URL: 'http://127.0.0.1:9/',
      SESSION_KEY_SECRET_ID: 'tokens/session-key',
      ARCHIVE_BUCKET: 'tokens-archive',
    });

    createDeps(config);
    const stack = new errors.InformationalError('socket idle timeout').stack;

    expect(stack).toMatch(/^InformationalError: socket idle timeout\n {4}at /);
    expect(mapped).not.toHaveBeenCalled();
  });
});
