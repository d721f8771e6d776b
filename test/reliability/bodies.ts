/**
 * What the tests of file bodies share: `watchedBody` (lambda/tokens/http.ts), the byte counter
 * between an undici file body and `transfer()` (lambda/archive/upload.ts), driven over real
 * loopback servers (OS-assigned ports) and real undici.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { Agent } from 'undici';
import { afterAll, afterEach, beforeAll, expect, vi } from 'vitest';
import { ArchiveKeys } from '../../lambda/archive/keys.ts';
import type { ObjectStore } from '../../lambda/archive/store.ts';
import { FileUploader, type UploadSettings } from '../../lambda/archive/upload.ts';
import { describeError } from '../../lambda/shared/errors.ts';
import type { LineFile } from '../../lambda/shared/ids.ts';
import { TokensApi } from '../../lambda/tokens/api.ts';
import type { SpeedFloor } from '../../lambda/tokens/http.ts';
import { type closeAfterEach, type RecordingServer, startRecordingServer } from './harness.ts';

export const KIB = 1024;
export const MIB = 1024 * KIB;
export const LINE_ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';

/**
 * Fails each test of the file that leaves an error nobody handled (thrown out of a stream
 * callback, or a rejection: a crash in a Lambda) or a listener leak warning.
 */
function failOnUnhandledErrors(): void {
  const uncaught: unknown[] = [];
  const warnings: string[] = [];
  const collect = (error: unknown) => uncaught.push(error);
  const warned = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
  beforeAll(() => {
    process.on('uncaughtException', collect);
    process.on('unhandledRejection', collect);
    process.on('warning', warned);
  });
  afterAll(() => {
    process.off('uncaughtException', collect);
    process.off('unhandledRejection', collect);
    process.off('warning', warned);
  });
  afterEach(() => {
    const seen = uncaught.splice(0).map((error) => describeError(error));
    expect(seen, 'errors nobody handled (a crash in production)').toEqual([]);
    const leaks = warnings.splice(0).filter((warning) => /MaxListeners/.test(warning));
    expect(leaks, 'listener leak warnings').toEqual([]);
  });
}

/** One turn of the event loop: every nextTick, microtask and immediate queued so far has run. */
export const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** `size` deterministic bytes. */
export function bytesOf(size: number): Buffer {
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) & 0xff;
  return bytes;
}

export const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** The file a line states for `bytes`. */
export const lineFileOf = (bytes: Buffer, name = 'data'): LineFile => ({
  name,
  size: bytes.length,
  sha256: sha256(bytes),
  link: undefined,
});

/** The `brokeOff` error `watchedBody` is given by its caller. */
export const brokeOff = (error: unknown, received: number) =>
  new Error(`broke off after ${received} bytes: ${describeError(error)}`, { cause: error });

/** What a reader of `stream` saw: its bytes, and how it ended. */
export async function drain(stream: Readable): Promise<{ bytes: number; ended: boolean; error?: unknown }> {
  let bytes = 0;
  let ended = false;
  stream.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  stream.on('end', () => {
    ended = true;
  });
  try {
    await finished(stream);
    return { bytes, ended };
  } catch (error) {
    return { bytes, ended, error };
  }
}

/**
 * A store whose PutObject hands its body to `read` (the SDK reading the request body), and answers
 * with the checksum S3 would give for the whole file once `read` is done.
 */
export function storeReading(read: (body: Readable, key: string) => Promise<void>): ObjectStore {
  return {
    bucket: 'archive',
    put: async (input: { Key?: string; Body?: unknown; ChecksumSHA256?: string }) => {
      await read(input.Body as Readable, input.Key ?? '?');
      return { ChecksumSHA256: input.ChecksumSHA256 };
    },
    head: async () => undefined,
  } as unknown as ObjectStore;
}

/** An uploader of files into `store`, keys without a prefix. */
export const uploaderOver = (store: ObjectStore, settings: UploadSettings) =>
  new FileUploader(store, new ArchiveKeys(''), settings);

/**
 * The loopback servers, agents and clients of one test file, each closed after its test; and the
 * file's tests fail on an error nobody handled or a listener leak (see {@link failOnUnhandledErrors}).
 */
export function downloads(track: ReturnType<typeof closeAfterEach>) {
  failOnUnhandledErrors();
  const agent = (): Agent => {
    const made = new Agent({ keepAliveTimeout: 10_000, bodyTimeout: 30_000 });
    track({ close: () => made.close() });
    return made;
  };
  return {
    /** A loopback server answering with `handler`, that tracks its connections. */
    serve: async (handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<RecordingServer> =>
      track(await startRecordingServer(handler)),
    agent,
    /** A client of `served` over an agent of its own; one attempt per request, no retry. */
    apiOf: (served: { url: string }, download?: SpeedFloor): TokensApi =>
      new TokensApi({
        baseUrl: new URL(served.url),
        dispatcher: agent(),
        sessionKey: { get: async () => 'the-session-key', invalidate: () => undefined },
        retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 },
        ...(download === undefined ? {} : { download }),
      }),
    /** Spies on the interval `watchedBody` starts (recognised by its window) and on its clearing. */
    floorTimer: (windowMs: number) => {
      const setSpy = vi.spyOn(globalThis, 'setInterval');
      const clearSpy = vi.spyOn(globalThis, 'clearInterval');
      track({
        close: async () => {
          setSpy.mockRestore();
          clearSpy.mockRestore();
        },
      });
      const timer = () => {
        const index = setSpy.mock.calls.findIndex((call) => call[1] === windowMs);
        return index < 0 ? undefined : setSpy.mock.results[index]?.value;
      };
      return {
        setSpy,
        clearSpy,
        started: () => timer() !== undefined,
        cleared: () => {
          const started = timer();
          return started !== undefined && clearSpy.mock.calls.some((call) => call[0] === started);
        },
      };
    },
  };
}
