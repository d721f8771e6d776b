/**
 * Red team of `watchedBody` (lambda/tokens/http.ts, commit 7d05dcc): the byte counter between an
 * undici file body and `transfer()` (lambda/archive/upload.ts).
 *
 * Test names say what they found:
 *   BIT    - failed on 7d05dcc (a bug in the shipped path), fixed since: the test pins the fix.
 *   LATENT - failed on `watchedBody` itself, though no caller reached it; fixed since.
 *   HOLDS  - the attack did not bite; the test pins the behaviour.
 *
 * Real loopback HTTP servers (OS-assigned ports) and real undici; no sleeps stand in for readiness.
 * Where time itself is the subject (speed-floor windows), the test waits for windows to pass.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ArchiveKeys } from '../../lambda/archive/keys.ts';
import type { ObjectStore } from '../../lambda/archive/store.ts';
import { FileUploader } from '../../lambda/archive/upload.ts';
import { ArchiveError, describeError, IntegrityError, TokensApiError } from '../../lambda/shared/errors.ts';
import type { LineFile } from '../../lambda/shared/ids.ts';
import { Verifier } from '../../lambda/shared/verify.ts';
import { TokensApi } from '../../lambda/tokens/api.ts';
import { type SpeedFloor, watchedBody } from '../../lambda/tokens/http.ts';
import { closeAfterEach, PROJECT_ROOT } from './harness.ts';

const track = closeAfterEach();
const KIB = 1024;
const MIB = 1024 * KIB;
const LINE_ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';

// ---------------------------------------------------------------------------------------------
// Anything thrown out of a stream callback with nobody listening is a process crash in a Lambda.
const uncaught: unknown[] = [];
const collect = (error: unknown) => uncaught.push(error);
beforeAll(() => {
  process.on('uncaughtException', collect);
  process.on('unhandledRejection', collect);
});
afterAll(() => {
  process.off('uncaughtException', collect);
  process.off('unhandledRejection', collect);
});
afterEach(() => {
  const seen = uncaught.splice(0).map((error) => describeError(error));
  expect(seen, 'errors nobody handled (a crash in production)').toEqual([]);
});

/** One turn of the event loop: every nextTick, microtask and immediate queued so far has run. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Served {
  readonly url: string;
  /** Connections the server accepted. */
  readonly connections: number;
  /** Resolves once every connection accepted so far has closed (the client let go of it). */
  allClosed(): Promise<void>;
  close(): Promise<void>;
}

/** A loopback server on an OS-assigned port that tracks its connections. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Served> {
  const sockets = new Set<Socket>();
  const waiters: (() => void)[] = [];
  let connections = 0;
  const server = createServer(handler);
  server.on('connection', (socket: Socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => {
      sockets.delete(socket);
      if (sockets.size === 0) for (const wake of waiters.splice(0)) wake();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return track({
    url: `http://127.0.0.1:${port}`,
    get connections() {
      return connections;
    },
    allClosed: () =>
      sockets.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve)),
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

function newAgent(): Agent {
  const agent = new Agent({ keepAliveTimeout: 10_000, bodyTimeout: 30_000 });
  track({ close: () => agent.close() });
  return agent;
}

function apiFor(served: Served, agent: Agent, download?: SpeedFloor): TokensApi {
  return new TokensApi({
    baseUrl: new URL(served.url),
    dispatcher: agent,
    sessionKey: { get: async () => 'the-session-key', invalidate: () => undefined },
    retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 },
    ...(download === undefined ? {} : { download }),
  });
}

/** `size` deterministic bytes. */
function bytesOf(size: number): Buffer {
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) & 0xff;
  return bytes;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** What a reader of `stream` saw: its bytes, and how it ended. */
async function drain(stream: Readable): Promise<{ bytes: number; ended: boolean; error?: unknown }> {
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

/** Spies on the interval `watchedBody` starts (recognised by its window) and on its clearing. */
function spyOnFloorTimer(windowMs: number) {
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
    started: () => timer() !== undefined,
    cleared: () => {
      const started = timer();
      return started !== undefined && clearSpy.mock.calls.some((call) => call[0] === started);
    },
  };
}

const brokeOff = (error: unknown, received: number) =>
  new Error(`broke off after ${received} bytes: ${describeError(error)}`, { cause: error });

// ---------------------------------------------------------------------------------------------
describe('Q1: errors nobody handles (a crash)', () => {
  it('HOLDS: the body erroring after the reader destroyed the stream with its own error crashes nothing', async () => {
    let serverSocket: Socket | undefined;
    const served = await serve((req, res) => {
      serverSocket = req.socket;
      res.writeHead(200, { 'content-length': String(MIB) });
      res.write(bytesOf(64 * KIB));
      // ...and then nothing: the rest never comes.
    });
    const api = apiFor(served, newAgent());
    const body = await api.openFile(new URL('/file', served.url));
    const failed = new Promise<unknown>((resolve) => body.once('error', resolve));
    await new Promise((resolve) => body.once('data', resolve));

    body.destroy(new Error('PutObject failed'));
    // The service resets the connection too: undici errors the body once more.
    serverSocket?.destroy();

    await expect(failed).resolves.toMatchObject({ message: 'PutObject failed' });
    await served.allClosed();
    await turn();
    await turn();
  });

  it('HOLDS: the body breaking off after the consumer pipeline gave up (verifier refused) crashes nothing', async () => {
    const sockets: Socket[] = [];
    const served = await serve((req, res) => {
      sockets.push(req.socket);
      res.writeHead(200, { 'content-length': String(64 * MIB) });
      res.write(bytesOf(256 * KIB));
    });
    const api = apiFor(served, newAgent(), { minSpeedBytesPerSecond: 1, speedWindowMs: 10 });
    const body = await api.openFile(new URL('/file', served.url));
    const verifier = new Verifier({ lineId: LINE_ID, file: 'data', size: 1000, sha256: '0'.repeat(64) });

    await expect(
      pipeline(body, verifier, async (source: AsyncIterable<Buffer>) => {
        for await (const _ of source) {
          // consume
        }
      }),
    ).rejects.toBeInstanceOf(IntegrityError);
    for (const socket of sockets) socket.destroy();

    await served.allClosed();
    await turn();
    await turn();
    expect(body.destroyed).toBe(true);
  });

  it('LATENT, fixed: a body that breaks off before the reader attaches its listener crashes nothing; the reader still gets the error', async () => {
    // openFile's callers attach their pipeline in the same microtask run today. Any await between
    // openFile and uploadVerified (a budget, a gate, a log flush) turns a reset connection in that
    // gap into an uncaughtException: `pipe` re-throws the counter's error when it has no listener.
    const script = `
      import { PassThrough } from 'node:stream';
      import { finished } from 'node:stream/promises';
      import { watchedBody } from './lambda/tokens/http.ts';
      const source = new PassThrough();
      const body = watchedBody(source, {
        tooSlow: () => new Error('too slow'),
        brokeOff: (error, received) => new Error('broke off after ' + received + ' bytes: ' + error.message),
      });
      source.destroy(new Error('other side closed'));
      setImmediate(() =>
        finished(body).then(
          () => console.log('reader saw: end'),
          (error) => console.log('reader saw: ' + error.message),
        ),
      );
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
    });
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));

    expect({ code, stdout: stdout.trim(), stderr: stderr.split('\n')[0] ?? '' }).toEqual({
      code: 0,
      stdout: 'reader saw: broke off after 0 bytes: other side closed',
      stderr: '',
    });
  });
});

// ---------------------------------------------------------------------------------------------
describe('Q2: a body that failed must never end cleanly', () => {
  it('HOLDS: a Content-Length body cut short by the service errors as broke off, and never ends', async () => {
    const served = await serve((req, res) => {
      res.writeHead(200, { 'content-length': String(MIB) });
      res.write(bytesOf(300 * KIB), () => req.socket.destroy());
    });
    const api = apiFor(served, newAgent());
    const url = new URL('/file', served.url);

    const seen = await drain(await api.openFile(url));

    expect(seen.ended).toBe(false);
    expect(seen.error).toBeInstanceOf(TokensApiError);
    expect((seen.error as TokensApiError).retryable).toBe(true);
    expect((seen.error as Error).message).toMatch(
      new RegExp(`^GET ${url.href.replace(/[.?]/g, '\\$&')}: body broke off after \\d+ bytes: `),
    );
    expect(seen.bytes).toBeLessThanOrEqual(300 * KIB);
  });

  it('HOLDS: a chunked body cut after every byte but before its last chunk errors, and never ends', async () => {
    const served = await serve((req, res) => {
      res.writeHead(200, { 'transfer-encoding': 'chunked' });
      // Every byte of the file, but not the terminating 0-chunk: a complete-looking file that failed.
      res.write(bytesOf(100 * KIB), () => req.socket.destroy());
    });
    const api = apiFor(served, newAgent());

    const seen = await drain(await api.openFile(new URL('/file', served.url)));

    expect(seen.ended).toBe(false);
    expect((seen.error as Error).message).toMatch(/body broke off after \d+ bytes: /);
  });

  it('HOLDS: a close-delimited body cut short ends (HTTP cannot tell), loses no byte, and the verifier refuses it', async () => {
    const served = await serve((req, res) => {
      // No Content-Length, no chunking: the end of the body is the end of the connection.
      res.writeHead(200, { connection: 'close' });
      res.end(bytesOf(300 * KIB));
      void req;
    });
    const api = apiFor(served, newAgent());
    const body = await api.openFile(new URL('/file', served.url));
    const verifier = new Verifier({ lineId: LINE_ID, file: 'data', size: MIB, sha256: sha256(bytesOf(MIB)) });
    let passed = 0;

    const outcome = pipeline(body, verifier, async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) passed += chunk.length;
    });

    await expect(outcome).rejects.toBeInstanceOf(IntegrityError);
    await expect(outcome).rejects.toThrow(`got ${300 * KIB} bytes, stated ${MIB}`);
    // The verifier holds back its last chunk: the upload never saw the whole (short) file.
    expect(passed).toBeLessThan(300 * KIB);
  });

  it('HOLDS: every byte the service sent reaches the reader, in order, when the body completes', async () => {
    const file = bytesOf(3 * MIB + 17);
    const served = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(file.length) });
      res.end(file);
    });
    const api = apiFor(served, newAgent(), { minSpeedBytesPerSecond: 1, speedWindowMs: 20 });
    const body = await api.openFile(new URL('/file', served.url));
    const hash = createHash('sha256');
    let bytes = 0;

    for await (const chunk of body) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }

    expect({ bytes, sha256: hash.digest('hex') }).toEqual({ bytes: file.length, sha256: sha256(file) });
  });
});

// ---------------------------------------------------------------------------------------------
describe('Q3: backpressure and the speed floor', () => {
  it('HOLDS: with the reader stalled, memory stays bounded and the floor does not trip', async () => {
    const total = 64 * MIB;
    let written = 0;
    const served = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(total) });
      const chunk = bytesOf(64 * KIB);
      const pump = () => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    const agent = newAgent();
    const response = await request(`${served.url}/file`, { dispatcher: agent });
    // A floor far above what a stalled reader lets through: only the reader-was-the-holdup rule saves it.
    const floor: SpeedFloor = { minSpeedBytesPerSecond: 100 * MIB, speedWindowMs: 25 };
    const tooSlow = vi.fn(
      ({ bytes, ms }: { bytes: number; ms: number }) => new Error(`too slow: ${bytes} in ${ms}`),
    );
    const body = watchedBody(response.body, { floor, tooSlow, brokeOff });
    const errors: unknown[] = [];
    body.on('error', (error) => errors.push(error));

    // Time is the subject here: a dozen windows in which nobody reads (S3 holds the reader up).
    await delay(12 * floor.speedWindowMs);

    expect(tooSlow).not.toHaveBeenCalled();
    expect(errors).toEqual([]);
    const counter = body as Readable & { readonly writableLength: number };
    const held = counter.readableLength + counter.writableLength + response.body.readableLength;
    expect(held).toBeLessThan(512 * KIB);
    expect(response.body.isPaused()).toBe(true);
    expect(written).toBeLessThan(total);

    body.destroy();
    await served.allClosed();
  });

  it('BIT (pre-existing in withSpeedFloor), fixed: a window in which the reader held the body back for 90% of it does not trip the floor', async () => {
    // The doc: "A window in which bytes were waiting for the reader (the reader was the holdup,
    // not the body) does not count." The check only looks at the buffers at the instant the
    // window closes: a reader that stalled for most of the window (a multipart upload waiting on
    // parts in flight) and caught up just before the tick leaves the buffers empty, and the
    // bytes the body could not deliver while paused are counted against the body.
    const floor: SpeedFloor = { minSpeedBytesPerSecond: 4 * MIB, speedWindowMs: 300 };
    const source = new PassThrough();
    const tooSlow = vi.fn(
      ({ bytes, ms }: { bytes: number; ms: number }) =>
        new Error(`too slow: ${bytes} bytes in ${Math.round(ms)} ms`),
    );
    const body = watchedBody(source, { floor, tooSlow, brokeOff });
    const errors: unknown[] = [];
    body.on('error', (error) => errors.push(error));
    // The service sends 80 KiB every 10 ms (8 MiB/s, twice the floor) whenever the receiver
    // lets it, as TCP does: while the pipe is full it waits for 'drain' and sends nothing.
    let blocked = false;
    const sender = setInterval(() => {
      if (blocked || source.destroyed) return;
      if (!source.write(bytesOf(80 * KIB))) {
        blocked = true;
        source.once('drain', () => {
          blocked = false;
        });
      }
    }, 10);
    track({ close: async () => clearInterval(sender) });

    // The reader stalls for 270 ms of the first 300 ms window, then reads as fast as it can.
    await delay(270);
    body.resume();
    await delay(2 * floor.speedWindowMs);
    clearInterval(sender);

    expect(tooSlow.mock.results.map((result) => (result.value as Error).message)).toEqual([]);
    expect(errors).toEqual([]);
    body.destroy();
  });
});

// ---------------------------------------------------------------------------------------------
describe('Q4: leaks (the floor timer, the socket, the abort listener)', () => {
  const floor: SpeedFloor = { minSpeedBytesPerSecond: 1, speedWindowMs: 37 };

  it('HOLDS: the reader destroying the stream clears the timer, closes the socket and drops the abort listener', async () => {
    const timer = spyOnFloorTimer(floor.speedWindowMs);
    const served = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(MIB) });
      res.write(bytesOf(64 * KIB));
    });
    const api = apiFor(served, newAgent(), floor);
    const line = new AbortController();
    const body = await api.openFile(new URL('/file', served.url), line.signal);
    await new Promise((resolve) => body.once('data', resolve));
    expect(timer.started()).toBe(true);
    expect(getEventListeners(line.signal, 'abort').length).toBeGreaterThan(0);

    body.destroy(new Error('PutObject failed'));
    body.on('error', () => undefined);
    await served.allClosed();
    await turn();

    expect(timer.cleared()).toBe(true);
    expect(getEventListeners(line.signal, 'abort')).toHaveLength(0);
  });

  it('HOLDS: the floor tripping fails with the floor error, clears the timer and closes the socket', async () => {
    const timer = spyOnFloorTimer(40);
    const served = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(MIB) });
      res.write('x');
      // ...a trickle that never comes.
    });
    const api = apiFor(served, newAgent(), { minSpeedBytesPerSecond: 10 * MIB, speedWindowMs: 40 });

    const seen = await drain(await api.openFile(new URL('/file', served.url)));
    await served.allClosed();
    await turn();

    expect((seen.error as Error).message).toMatch(/below the floor of 10485760 B\/s$/);
    expect((seen.error as Error).message).not.toContain('broke off');
    expect(timer.cleared()).toBe(true);
  });

  it('HOLDS: a body that ends clears the timer and hands the connection back for the next download', async () => {
    const timer = spyOnFloorTimer(floor.speedWindowMs);
    const file = bytesOf(200 * KIB);
    const served = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(file.length) });
      res.end(file);
    });
    const api = apiFor(served, newAgent(), floor);

    const first = await drain(await api.openFile(new URL('/a', served.url)));
    await turn();
    expect(timer.cleared()).toBe(true);
    const second = await drain(await api.openFile(new URL('/b', served.url)));

    expect([first, second]).toEqual([
      { bytes: file.length, ended: true },
      { bytes: file.length, ended: true },
    ]);
    expect(served.connections).toBe(1);
  });

  it('HOLDS: an endless body the verifier stops is let go: socket closed, timer cleared', async () => {
    const timer = spyOnFloorTimer(floor.speedWindowMs);
    const served = await serve((_req, res) => {
      res.writeHead(200, { 'transfer-encoding': 'chunked' });
      const chunk = bytesOf(16 * KIB);
      const pump = () => {
        while (res.write(chunk)) {
          // until the client stops reading
        }
        res.once('drain', pump);
      };
      pump();
    });
    const api = apiFor(served, newAgent(), floor);
    const body = await api.openFile(new URL('/endless', served.url));
    const verifier = new Verifier({ lineId: LINE_ID, file: 'data', size: 100 * KIB, sha256: '0'.repeat(64) });

    await expect(
      pipeline(body, verifier, async (source: AsyncIterable<Buffer>) => {
        for await (const _ of source) {
          // consume
        }
      }),
    ).rejects.toThrow(`more bytes than the stated ${100 * KIB}`);
    await served.allClosed();
    await turn();

    expect(timer.cleared()).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
describe('Q5: whose failure is reported (transfer through FileUploader.uploadVerified)', () => {
  const file = bytesOf(2 * MIB + 5);
  const lineFile = { name: 'data', size: file.length, sha256: sha256(file) } as LineFile;
  const settings = { multipartThresholdBytes: 64 * MIB, partSizeBytes: 5 * MIB, readback: 'head' as const };

  /** A store whose PutObject reads the body through `read`, and fails (or not) as `read` decides. */
  function storeThat(read: (body: Readable, key: string) => Promise<void>): ObjectStore {
    return {
      bucket: 'archive',
      put: async (input: { Key?: string; Body?: unknown }) => {
        await read(input.Body as Readable, input.Key ?? '?');
        return { ChecksumSHA256: Buffer.from(lineFile.sha256, 'hex').toString('base64') };
      },
      head: async () => undefined,
    } as unknown as ObjectStore;
  }

  async function slowService() {
    const sockets: Socket[] = [];
    const served = await serve((req, res) => {
      sockets.push(req.socket);
      res.writeHead(200, { 'content-length': String(file.length) });
      // Enough to start, then the rest only slowly: the transfer is in the middle when things fail.
      res.write(file.subarray(0, 256 * KIB));
      const timer = setInterval(() => res.write(file.subarray(256 * KIB, 256 * KIB + 1)), 50);
      res.on('close', () => clearInterval(timer));
    });
    const reset = () => {
      for (const socket of sockets) socket.destroy();
    };
    return { served, reset };
  }

  it('HOLDS: S3 failing mid-stream is reported as S3 failing, even when the service resets right after', async () => {
    const { served, reset } = await slowService();
    const api = apiFor(served, newAgent(), { minSpeedBytesPerSecond: 1, speedWindowMs: 30 });
    const uploader = new FileUploader(
      storeThat(async (body, key) => {
        await new Promise((resolve) => body.once('data', resolve));
        reset();
        throw new ArchiveError(key, 'PutObject failed: InternalError (HTTP 500): we are sorry');
      }),
      new ArchiveKeys(''),
      settings,
    );
    const body = await api.openFile(new URL('/file', served.url));

    const outcome = uploader.uploadVerified(LINE_ID, lineFile, body, { key: 'k/data' });

    await expect(outcome).rejects.toBeInstanceOf(ArchiveError);
    await expect(outcome).rejects.toThrow('PutObject failed: InternalError');
    await served.allClosed();
  });

  it('HOLDS: the download breaking off while S3 reads is reported as the download, not as the failed PutObject', async () => {
    const { served, reset } = await slowService();
    const api = apiFor(served, newAgent());
    const uploader = new FileUploader(
      storeThat(async (body, key) => {
        // The SDK reads the body; when it errors, PutObject fails "because of" it.
        try {
          let first = true;
          for await (const _ of body) {
            if (first) reset();
            first = false;
          }
        } catch (error) {
          throw new ArchiveError(key, `PutObject failed: ${describeError(error)}`, { cause: error });
        }
        throw new ArchiveError(key, 'PutObject failed: body ended');
      }),
      new ArchiveKeys(''),
      settings,
    );
    const url = new URL('/file', served.url);
    const body = await api.openFile(url);

    const outcome = uploader.uploadVerified(LINE_ID, lineFile, body, { key: 'k/data' });

    await expect(outcome).rejects.toBeInstanceOf(TokensApiError);
    await expect(outcome).rejects.toThrow(`GET ${url.href}: body broke off after`);
  });

  it('BIT (narrow race), fixed: a multipart upload that failed first is reported as the store, even when the body breaks off during its cleanup', async () => {
    // uploadMultipart settles only after Promise.allSettled(inFlight) and AbortMultipartUpload.
    // transfer() takes "the pipe rejected, and abort.signal.reason is its error" to mean the
    // download failed first, but its AbortController is aborted only when the upload promise
    // settles: a body that breaks off (for its own reason) during the store's cleanup wins.
    const big = bytesOf(2 * MIB + 5);
    const bigFile = { name: 'data', size: big.length, sha256: sha256(big) } as LineFile;
    const sockets: Socket[] = [];
    const served = await serve((req, res) => {
      sockets.push(req.socket);
      res.writeHead(200, { 'content-length': String(big.length) });
      // One part and a bit, then a trickle: the second part is still being read when the first fails.
      res.write(big.subarray(0, 300 * KIB));
      const timer = setInterval(() => res.write(big.subarray(300 * KIB, 300 * KIB + 1)), 20);
      res.on('close', () => clearInterval(timer));
    });
    const api = apiFor(served, newAgent());
    const body = await api.openFile(new URL('/file', served.url));
    const partFailed = Object.assign(new Error('We encountered an internal error. Please try again.'), {
      name: 'InternalError',
      $metadata: { httpStatusCode: 500 },
    });
    const sent: string[] = [];
    const s3 = {
      send: async (command: { constructor: { name: string } }) => {
        const name = command.constructor.name;
        sent.push(name);
        if (name === 'CreateMultipartUploadCommand') return { UploadId: 'u-1' };
        if (name === 'UploadPartCommand') throw partFailed;
        if (name === 'AbortMultipartUploadCommand') {
          // While the store cleans up, the service drops the connection (its own idle timeout).
          for (const socket of sockets) socket.destroy();
          await finished(body).catch(() => undefined);
          await turn();
          return {};
        }
        throw new Error(`unexpected ${name}`);
      },
    };
    const store = { bucket: 'archive', s3, head: async () => undefined } as unknown as ObjectStore;
    const uploader = new FileUploader(store, new ArchiveKeys(''), {
      multipartThresholdBytes: 512 * KIB,
      partSizeBytes: 256 * KIB,
      readback: 'head',
      partsInFlight: 2,
    });

    const outcome = uploader.uploadVerified(LINE_ID, bigFile, body, { key: 'k/data' });

    const error = await outcome.catch((caught: unknown) => caught);
    expect(sent.slice(0, 2)).toEqual(['CreateMultipartUploadCommand', 'UploadPartCommand']);
    expect(sent).toContain('AbortMultipartUploadCommand');
    expect(describeError(error)).toMatch(/^s3 object k\/data: upload failed: InternalError \(HTTP 500\)/);
  });

  it("HOLDS: the line's stop (another file failed) is reported as that, not as this body breaking off", async () => {
    const { served } = await slowService();
    const api = apiFor(served, newAgent());
    const line = new AbortController();
    const elsewhere = new ArchiveError('k/other', 'PutObject failed: SlowDown (HTTP 503)', {
      retryable: true,
    });
    const uploader = new FileUploader(
      storeThat(async (body) => {
        await new Promise((resolve) => body.once('data', resolve));
        line.abort(elsewhere);
        await finished(body).catch(() => undefined);
        throw new Error('aborted');
      }),
      new ArchiveKeys(''),
      settings,
    );
    const body = await api.openFile(new URL('/file', served.url), line.signal);

    const outcome = uploader.uploadVerified(LINE_ID, lineFile, body, { key: 'k/data', signal: line.signal });

    await expect(outcome).rejects.toBe(elsewhere);
    await served.allClosed();
  });
});

// ---------------------------------------------------------------------------------------------
describe('Q6: hangs (neither end nor error reaches the reader)', () => {
  it('HOLDS: the request signal aborting mid-body reaches the reader as an error', async () => {
    const served = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(MIB) });
      res.write(bytesOf(64 * KIB));
    });
    const api = apiFor(served, newAgent());
    const line = new AbortController();
    const body = await api.openFile(new URL('/file', served.url), line.signal);
    const seen = drain(body);
    await new Promise((resolve) => body.once('data', resolve));

    line.abort(new Error('run deadline'));

    expect(await seen).toMatchObject({ ended: false, error: expect.any(Error) });
    await served.allClosed();
  });

  it('HOLDS: undici destroying its body without an error still errors the reader (undici supplies one)', async () => {
    const served = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(MIB) });
      res.write(bytesOf(64 * KIB));
    });
    const agent = newAgent();
    const response = await request(`${served.url}/file`, { dispatcher: agent });
    const body = watchedBody(response.body, { tooSlow: () => new Error('too slow'), brokeOff });
    const seen = drain(body);
    await new Promise((resolve) => body.once('data', resolve));

    response.body.destroy();

    expect(await seen).toMatchObject({ ended: false, error: expect.any(Error) });
    expect(((await seen).error as Error).message).toMatch(/^broke off after \d+ bytes: /);
  });

  it('LATENT, fixed: a body that closes without an error and without its end fails the reader as broke off, never leaves it waiting', async () => {
    // undici always destroys its body with an error today; any other Readable (an interceptor's,
    // a decompressor's, a test double) closing early hangs the transfer until the run deadline.
    const source = new PassThrough();
    const body = watchedBody(source, { tooSlow: () => new Error('too slow'), brokeOff });
    body.on('error', () => undefined);
    body.resume();
    source.write(bytesOf(1000));
    await turn();

    source.destroy();
    await new Promise((resolve) => (source.closed ? resolve(undefined) : source.once('close', resolve)));
    await turn();
    await turn();

    // Neither 'end' nor 'error' will ever come: the counter is still open, waiting.
    expect({ destroyed: body.destroyed, ended: body.readableEnded }).toEqual({
      destroyed: true,
      ended: false,
    });
    expect(String(body.errored)).toMatch(/broke off after 1000 bytes: /);
  });
});
