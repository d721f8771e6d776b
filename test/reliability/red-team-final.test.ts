/**
 * Final red team of the data path after 3c8aaa3: `watchedBody` (lambda/tokens/http.ts: the
 * `finished(body)` hook, the no-op counter error listener, the pause-aware speed floor) and the
 * `onFailure` hook of `uploadMultipart` (lambda/archive/multipart.ts) that `uploadVerified`
 * (lambda/archive/upload.ts) uses to destroy the verifier at once. It does not repeat
 * red-team-watched-body.test.ts.
 *
 * Test names say what they found:
 *   BIT   - failed on the code it was written against (be1040d); fixed since, the test pins the fix.
 *   HOLDS - the attack did not bite; the test pins the behaviour.
 *
 * Real loopback servers (OS-assigned ports), real undici, the real local S3 (fauxqs) behind the
 * fault-injecting S3 proxy. No sleeps stand in for readiness; where time is the subject (the speed
 * floor's windows, a service that bursts), the test lets real time pass.
 */
import { createHash } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { PassThrough, type Readable, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Agent } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import { ArchiveKeys } from '../../lambda/archive/keys.ts';
import { ObjectStore } from '../../lambda/archive/store.ts';
import { FileUploader, type UploadSettings } from '../../lambda/archive/upload.ts';
import { ArchiveError, describeError, IntegrityError, TokensApiError } from '../../lambda/shared/errors.ts';
import type { LineFile } from '../../lambda/shared/ids.ts';
import { TokensApi } from '../../lambda/tokens/api.ts';
import { type SpeedFloor, watchedBody } from '../../lambda/tokens/http.ts';
import { LOCAL_AWS_ENV } from '../local/stack.ts';
import { objectDigest } from '../support/archive-inspect.ts';
import { closeAfterEach, localStack, startFront } from './harness.ts';
import { checkInvariant, settle, snapshot } from './invariant.ts';
import { scenario } from './ledger.ts';
import { type S3Proxy, startS3Proxy } from './s3-proxy.ts';

const track = closeAfterEach();
const KIB = 1024;
const MIB = 1024 * KIB;
const LINE_ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';

// ---------------------------------------------------------------------------------------------
// Anything thrown out of a stream callback, or a rejection nobody handles, is a crash in a Lambda.
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

/** One turn of the event loop: every nextTick, microtask and immediate queued so far has run. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Served {
  readonly url: string;
  readonly connections: number;
  /** Resolves once every connection accepted so far has closed. */
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

function apiFor(served: { url: string }, agent: Agent, download?: SpeedFloor): TokensApi {
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
const lineFileOf = (bytes: Buffer, name = 'data'): LineFile => ({
  name,
  size: bytes.length,
  sha256: sha256(bytes),
  link: undefined,
});

const brokeOff = (error: unknown, received: number) =>
  new Error(`broke off after ${received} bytes: ${describeError(error)}`, { cause: error });

/**
 * A store whose PutObject hands its body to `read` (the SDK reading the request body), and answers
 * with the checksum S3 would give for the whole file once the body has been read.
 */
function readingStore(read: (body: Readable) => Promise<void>): ObjectStore {
  return {
    bucket: 'archive',
    put: async (input: { Body?: unknown; ChecksumSHA256?: string }) => {
      await read(input.Body as Readable);
      return { ChecksumSHA256: input.ChecksumSHA256 };
    },
    head: async () => undefined,
  } as unknown as ObjectStore;
}

// ---------------------------------------------------------------------------------------------
describe('A: can a slow service defeat the speed floor by making the pipe pause?', () => {
  // A floor of 8 MiB/s over 500 ms windows (4 MiB a window). The service sends 512 KiB bursts
  // every 250 ms: 2 MiB/s, a quarter of the floor, every window holding at least one burst.
  const floor: SpeedFloor = { minSpeedBytesPerSecond: 8 * MIB, speedWindowMs: 500 };
  const burst = 512 * KIB;
  const file = bytesOf(16 * burst);

  /**
   * Sends the headers at once, then a burst every half window, the first a quarter window in: the
   * bursts fall between the floor's ticks, so no bytes are waiting for the reader at a tick (the
   * older rule, `readableLength > 0 || writableNeedDrain`, exempts nothing); only the new 'pause'
   * rule is left to judge the windows.
   */
  async function burstingService(): Promise<Served> {
    return serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(file.length) });
      res.flushHeaders();
      let sent = 0;
      let timer: NodeJS.Timeout | undefined;
      const send = () => {
        res.write(file.subarray(sent, sent + burst));
        sent += burst;
        if (sent >= file.length) {
          clearInterval(timer);
          res.end();
        }
      };
      const first = setTimeout(() => {
        send();
        timer = setInterval(send, floor.speedWindowMs / 2);
      }, floor.speedWindowMs / 4);
      res.on('close', () => {
        clearTimeout(first);
        clearInterval(timer);
      });
    });
  }

  /** Uploads the file through `uploadVerified` to a store that takes each chunk after `perChunkMs`. */
  async function transferTo(perChunkMs: number) {
    const served = await burstingService();
    const api = apiFor(served, newAgent(), floor);
    let busyMs = 0;
    const store = readingStore((body) =>
      pipeline(
        body,
        new Writable({
          highWaterMark: 16 * KIB,
          write(_chunk, _encoding, callback) {
            if (perChunkMs === 0) {
              callback();
              return;
            }
            const started = performance.now();
            setTimeout(() => {
              busyMs += performance.now() - started;
              callback();
            }, perChunkMs);
          },
        }),
      ),
    );
    const uploader = new FileUploader(store, new ArchiveKeys(''), {
      multipartThresholdBytes: 64 * MIB,
      partSizeBytes: 5 * MIB,
      readback: 'head',
    });
    const started = performance.now();
    const body = await api.openFile(new URL('/file', served.url));
    const error = await uploader.uploadVerified(LINE_ID, lineFileOf(file), body, { key: 'k/data' }).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    return { error, elapsedMs: performance.now() - started, busyMs };
  }

  it('HOLDS: the service alone cannot pause the body: against a reader that takes every chunk at once, the floor trips in the first window', async () => {
    const { error, elapsedMs } = await transferTo(0);

    expect(error).toBeInstanceOf(TokensApiError);
    expect(describeError(error)).toMatch(/below the floor of 8388608 B\/s$/);
    expect(elapsedMs).toBeLessThan(3 * floor.speedWindowMs);
  });

  it('BIT, fixed: a reader held up for a moment each window (S3 taking each chunk in ~1 ms, a few % busy) no longer exempts the window: a service at a quarter of the floor is stopped', async () => {
    // Was: `heldUp` was set by any 'pause' of the body in the window, however short. A burst bigger
    // than the pipe's buffers (~4 x 64 KiB) makes the pipe pause the body for the few ms the
    // reader needs to take it, so the service decides which windows count: none of them.
    const { error, elapsedMs, busyMs } = await transferTo(1);

    // The reader was not the holdup: it was busy a small part of the time.
    expect(busyMs / elapsedMs).toBeLessThan(0.25);
    // The body delivered 2 MiB/s against a floor of 8 MiB/s for the whole transfer (~4 s).
    const outcome =
      error === undefined
        ? `archived after ${Math.round(elapsedMs)} ms at ${Math.round((file.length * 1000) / elapsedMs)} B/s (reader busy ${Math.round((100 * busyMs) / elapsedMs)}% of the time), the floor never tripped`
        : describeError(error);
    expect(outcome).toMatch(/below the floor of 8388608 B\/s$/);
  });

  it('HOLDS: through the real local S3 over loopback (the SDK takes each chunk at once), the same service trips the floor within two windows', async () => {
    const local = await localStack(track);
    const s3 = new S3Client({
      endpoint: local.s3.address,
      forcePathStyle: true,
      region: LOCAL_AWS_ENV.AWS_REGION,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    track({ close: async () => s3.destroy() });
    for (const multipartThresholdBytes of [64 * MIB, 5 * MIB]) {
      const served = await burstingService();
      const api = apiFor(served, newAgent(), floor);
      const uploader = new FileUploader(new ObjectStore(s3, local.bucket), new ArchiveKeys(''), {
        multipartThresholdBytes,
        partSizeBytes: 5 * MIB,
        readback: 'head',
      });
      const started = performance.now();
      const error = await uploader
        .uploadVerified(LINE_ID, lineFileOf(file), await api.openFile(new URL('/file', served.url)), {
          key: `k/${multipartThresholdBytes}`,
        })
        .then(
          () => undefined,
          (caught: unknown) => caught,
        );

      expect(describeError(error)).toMatch(/below the floor of 8388608 B\/s$/);
      expect(performance.now() - started).toBeLessThan(3 * floor.speedWindowMs);
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('B: a failed body never ends cleanly; a good body never fails', () => {
  it('HOLDS: a body that errors in the very tick its last chunk and end-of-stream arrive never ends the counter cleanly', async () => {
    const source = new PassThrough();
    const body = watchedBody(source, { tooSlow: () => new Error('too slow'), brokeOff });
    let bytes = 0;
    let ended = false;
    body.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    body.on('end', () => {
      ended = true;
    });
    source.write(bytesOf(1000));
    await turn();

    // The last bytes, the end, and then (before 'end' can be emitted) the connection's error.
    source.write(bytesOf(24));
    source.end();
    source.destroy(new Error('read ECONNRESET'));
    const outcome = await finished(body).then(
      () => 'ended',
      (error: unknown) => describeError(error),
    );

    expect(ended).toBe(false);
    expect(outcome).toMatch(/^broke off after \d+ bytes: read ECONNRESET/);
    expect(bytes).toBeLessThanOrEqual(1024);
  });

  it('HOLDS: a body that ends and only then errors (before its close) fails a reader that has not yet seen the end, and never loses the error', async () => {
    const source = new PassThrough();
    const body = watchedBody(source, { tooSlow: () => new Error('too slow'), brokeOff });
    // The reader is slow: it has not read anything yet.
    body.pause();
    source.end(bytesOf(2048));
    await new Promise((resolve) => source.once('end', resolve));
    // 'end' came, 'close' not yet: an error now is an error of the body (finished() sees it).
    source.emit('error', new Error('trailer parse error'));
    let bytes = 0;
    body.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    body.resume();
    const outcome = await finished(body).then(
      () => `ended after ${bytes} bytes`,
      (error: unknown) => describeError(error),
    );

    // Either is safe; what must not happen is a silent end with missing bytes.
    expect([`ended after 2048 bytes`, 'broke off after 2048 bytes: trailer parse error']).toContain(outcome);
  });

  it('HOLDS: a complete body the service closes (FIN) right after, read only once the FIN is out, ends with every byte (no premature close)', async () => {
    const file = bytesOf(MIB + 11);
    let finSent: Promise<void> | undefined;
    const served = await serve((req, res) => {
      // Keep-alive (no `Connection: close`): the close is the service's own idle timeout firing early.
      res.writeHead(200, { 'content-length': String(file.length) });
      finSent = new Promise((resolve) => res.end(file, () => req.socket.end(() => resolve())));
    });
    const api = apiFor(served, newAgent(), { minSpeedBytesPerSecond: 1, speedWindowMs: 20 });
    const body = await api.openFile(new URL('/file', served.url));
    // The reader (an S3 upload that has not started) holds the body back the whole time.
    body.pause();
    await finSent;
    await turn();
    const hash = createHash('sha256');
    let bytes = 0;
    body.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
    });
    body.resume();
    const outcome = await finished(body).then(
      () => 'end',
      (error: unknown) => describeError(error),
    );

    expect({ outcome, bytes, sha256: hash.digest('hex') }).toEqual({
      outcome: 'end',
      bytes: file.length,
      sha256: sha256(file),
    });
  });

  it('HOLDS: a complete body followed by an RST, read at once: every byte and an end, or a broke-off with bytes missing; never every byte and then an error, never a short end', async () => {
    const outcomes = new Set<string>();
    for (const size of [1000, 100 * KIB, 2 * MIB + 3]) {
      const served = await serve((req, res) => {
        res.writeHead(200, { 'content-length': String(size) });
        res.end(bytesOf(size), () => req.socket.resetAndDestroy());
      });
      const api = apiFor(served, newAgent(), { minSpeedBytesPerSecond: 1, speedWindowMs: 50 });
      for (let attempt = 0; attempt < 8; attempt++) {
        const body = await api.openFile(new URL('/file', served.url));
        let bytes = 0;
        body.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
        });
        const outcome = await finished(body).then(
          () => 'end',
          (error: unknown) =>
            error instanceof TokensApiError && error.retryable
              ? 'broke off, retryable'
              : describeError(error),
        );
        outcomes.add(`${outcome}, ${bytes === size ? 'every byte' : 'bytes missing'}`);
      }
    }

    for (const outcome of outcomes) {
      expect(['end, every byte', 'broke off, retryable, bytes missing']).toContain(outcome);
    }
  });

  it('HOLDS: a complete body followed by an RST fails, if at all, as a retryable broke-off, never as a short end; the run re-fetches it and archives the line', async ({
    task,
  }) => {
    const s = scenario(task);
    const local = await localStack(track, {
      lines: [{ status: 'finished', fileSize: 2 * MIB + 3 }],
      env: { RETRY_ATTEMPTS: '3' },
    });
    const [id] = [...local.tokens.lines.keys()] as [string];
    const bytes = local.tokens.fileBytes(id, 'data');
    let resets = 0;
    // The first download of the file: every byte, then an RST (a load balancer's idle reset).
    const front = track(
      await startFront(local.tokens.url, (req, res) => {
        if (req.method !== 'GET' || !req.url?.startsWith(`/api/tokens/${id}/data`) || resets > 0)
          return false;
        resets += 1;
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': String(bytes.length),
        });
        res.end(bytes, () => req.socket.resetAndDestroy());
        return true;
      }),
    );
    s.fault('file download: every byte, then an RST, once');
    const before = snapshot(local.tokens);

    const run = await settle(createHandler({ ...local.env, TOKENS_API_URL: front.url })({}));

    expect(resets).toBe(1);
    // At most one more download: the RST cost at most a retry.
    expect(
      local.tokens.requests.filter((r) => r.path.startsWith(`/api/tokens/${id}/data`)).length,
    ).toBeLessThanOrEqual(1);
    expect(run.summary?.failed).toEqual([]);
    expect(local.tokens.lines.get(id)?.status).toBe('deleted');
    await checkInvariant(s, local, { before, runs: [run] });
  });
});

// ---------------------------------------------------------------------------------------------
describe('C: onFailure destroying the verifier mid-upload (multipart, real local S3 behind the proxy)', () => {
  const settings: UploadSettings = {
    multipartThresholdBytes: 5 * MIB,
    partSizeBytes: 5 * MIB,
    readback: 'head',
    partsInFlight: 2,
  };

  async function s3Behind(): Promise<{
    proxy: S3Proxy;
    store: ObjectStore;
    s3: S3Client;
    raw: S3Client;
    bucket: string;
  }> {
    const local = await localStack(track);
    const proxy = track(await startS3Proxy(local.s3.address));
    const s3 = new S3Client({
      endpoint: proxy.url,
      forcePathStyle: true,
      region: LOCAL_AWS_ENV.AWS_REGION,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      maxAttempts: 2,
    });
    track({ close: async () => s3.destroy() });
    return { proxy, store: new ObjectStore(s3, local.bucket), s3, raw: local.s3Client, bucket: local.bucket };
  }

  async function objectAt(raw: S3Client, bucket: string, key: string): Promise<number | 'none'> {
    try {
      const head = await raw.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return head.ContentLength ?? -1;
    } catch (error) {
      if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404)
        return 'none';
      throw error;
    }
  }

  /** Serves `file` (or `served` bytes in its place): `fast` bytes at once, the rest in a trickle. */
  async function fileService(file: Buffer, fast: number, served = file): Promise<Served> {
    return serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(file.length) });
      res.write(served.subarray(0, fast));
      let at = fast;
      const timer = setInterval(() => {
        const next = Math.min(served.length, at + 256 * KIB);
        res.write(served.subarray(at, next));
        at = next;
        if (at >= served.length) {
          clearInterval(timer);
          res.end();
        }
      }, 15);
      res.on('close', () => clearInterval(timer));
    });
  }

  it('HOLDS: an UploadPart that fails while later parts are still being read fails the transfer as the store, completes nothing, aborts the upload, releases every buffer and lets the socket go; a re-run archives it', async () => {
    const file = bytesOf(12 * MIB + 17);
    const { proxy, store, raw, bucket } = await s3Behind();
    // The second part (and its SDK retry) fails; by then the third part is being read.
    proxy.decide = ({ operation, ordinal }) =>
      operation === 'UploadPart' && ordinal >= 2 ? { fail: 500 } : 'forward';
    const served = await fileService(file, 10 * MIB + 5);
    const uploader = new FileUploader(store, new ArchiveKeys(''), settings);
    const api = apiFor(served, newAgent(), { minSpeedBytesPerSecond: 1, speedWindowMs: 50 });

    const error = await uploader
      .uploadVerified(LINE_ID, lineFileOf(file), await api.openFile(new URL('/file', served.url)), {
        key: 'k/data',
      })
      .catch((caught: unknown) => caught);
    await served.allClosed();
    await turn();

    expect(error).toBeInstanceOf(ArchiveError);
    expect(describeError(error)).toMatch(/^s3 object k\/data: upload failed: InternalError/);
    const operations = proxy.requests.map((request) => request.operation);
    expect(operations).toContain('AbortMultipartUpload');
    expect(operations).not.toContain('CompleteMultipartUpload');
    expect(await objectAt(raw, bucket, 'k/data')).toBe('none');
    expect(uploader.budget.used).toBe(0);

    // The re-run (a fresh download, the store healthy) archives the file byte-exact.
    proxy.decide = () => 'forward';
    await uploader.uploadVerified(
      LINE_ID,
      lineFileOf(file),
      await api.openFile(new URL('/file', served.url)),
      {
        key: 'k/data',
      },
    );
    expect(await objectDigest(raw, bucket, 'k/data')).toMatchObject({ sha256: sha256(file) });
  });

  it('HOLDS: a file whose last byte is wrong puts every part but the last into S3 and never completes an object', async () => {
    const file = bytesOf(12 * MIB + 17);
    const wrong = Buffer.from(file);
    wrong[wrong.length - 1] = (wrong[wrong.length - 1] ?? 0) ^ 0xff;
    const { proxy, store, raw, bucket } = await s3Behind();
    const served = await fileService(file, 2 * MIB, wrong);
    const uploader = new FileUploader(store, new ArchiveKeys(''), settings);
    const api = apiFor(served, newAgent());

    const error = await uploader
      .uploadVerified(LINE_ID, lineFileOf(file), await api.openFile(new URL('/file', served.url)), {
        key: 'k/data',
      })
      .catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(IntegrityError);
    const operations = proxy.requests.map((request) => request.operation);
    expect(operations.filter((operation) => operation === 'UploadPart').length).toBe(2);
    expect(operations).not.toContain('CompleteMultipartUpload');
    expect(operations).toContain('AbortMultipartUpload');
    expect(await objectAt(raw, bucket, 'k/data')).toBe('none');
    expect(uploader.budget.used).toBe(0);
  });

  it('HOLDS: CompleteMultipartUpload failing after the verifier passed (onFailure destroys a finished verifier) crashes nothing, names the store, leaves no object; a re-run archives it', async () => {
    const file = bytesOf(11 * MIB + 1);
    const { proxy, store, raw, bucket } = await s3Behind();
    proxy.decide = ({ operation }) => (operation === 'CompleteMultipartUpload' ? { fail: 500 } : 'forward');
    const served = await fileService(file, file.length);
    const uploader = new FileUploader(store, new ArchiveKeys(''), settings);
    const api = apiFor(served, newAgent());

    const error = await uploader
      .uploadVerified(LINE_ID, lineFileOf(file), await api.openFile(new URL('/file', served.url)), {
        key: 'k/data',
      })
      .catch((caught: unknown) => caught);
    await turn();
    await turn();

    expect(error).toBeInstanceOf(ArchiveError);
    expect(describeError(error)).toMatch(/^s3 object k\/data: upload failed: InternalError/);
    expect(proxy.requests.map((request) => request.operation)).toContain('AbortMultipartUpload');
    expect(await objectAt(raw, bucket, 'k/data')).toBe('none');
    expect(uploader.budget.used).toBe(0);

    proxy.decide = () => 'forward';
    await uploader.uploadVerified(
      LINE_ID,
      lineFileOf(file),
      await api.openFile(new URL('/file', served.url)),
      {
        key: 'k/data',
      },
    );
    expect(await objectDigest(raw, bucket, 'k/data')).toMatchObject({ sha256: sha256(file) });
  });

  it('HOLDS: the store failing and the body breaking off in the same instant, many times over, never completes an object nor leaves an unhandled rejection', async () => {
    const file = bytesOf(6 * MIB + 3);
    const { proxy, store, raw, bucket } = await s3Behind();
    const sockets: Socket[] = [];
    const served = await serve((req, res) => {
      sockets.push(req.socket);
      res.writeHead(200, { 'content-length': String(file.length) });
      // The first part and more (the verifier holds back its latest chunk), then nothing.
      res.write(file.subarray(0, 5 * MIB + 512 * KIB));
    });
    // The first part fails; as the proxy answers, the service drops the connection.
    proxy.decide = ({ operation }) => {
      if (operation !== 'UploadPart') return 'forward';
      for (const socket of sockets.splice(0)) socket.destroy();
      return { fail: 500 };
    };
    const uploader = new FileUploader(store, new ArchiveKeys(''), settings);
    const api = apiFor(served, newAgent());

    const outcomes: string[] = [];
    for (let attempt = 0; attempt < 8; attempt++) {
      const error = await uploader
        .uploadVerified(LINE_ID, lineFileOf(file), await api.openFile(new URL('/file', served.url)), {
          key: 'k/data',
        })
        .catch((caught: unknown) => caught);
      outcomes.push(
        error instanceof ArchiveError || error instanceof TokensApiError
          ? 'failed, retryable'
          : describeError(error),
      );
    }
    await served.allClosed();
    await turn();

    expect(new Set(outcomes)).toEqual(new Set(['failed, retryable']));
    expect(proxy.requests.map((request) => request.operation)).not.toContain('CompleteMultipartUpload');
    expect(await objectAt(raw, bucket, 'k/data')).toBe('none');
    expect(uploader.budget.used).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
describe('D: leaks across many retried downloads', () => {
  it('HOLDS: 40 downloads that break off (single and multipart), each retried, leave no floor timer, no abort listener, no socket, no buffer held', async () => {
    const windowMs = 43;
    const setSpy = vi.spyOn(globalThis, 'setInterval');
    const clearSpy = vi.spyOn(globalThis, 'clearInterval');
    track({
      close: async () => {
        setSpy.mockRestore();
        clearSpy.mockRestore();
      },
    });
    const small = bytesOf(300 * KIB);
    const big = bytesOf(6 * MIB + 1);
    const served = await serve((req, res) => {
      const file = req.url === '/big' ? big : small;
      res.writeHead(200, { 'content-length': String(file.length) });
      // Half the file, then the connection drops.
      res.write(file.subarray(0, Math.floor(file.length / 2)), () => req.socket.destroy());
    });
    const s3 = {
      send: async (command: { constructor: { name: string }; input: { Body?: Buffer } }) => {
        const name = command.constructor.name;
        if (name === 'CreateMultipartUploadCommand') return { UploadId: 'u' };
        if (name === 'UploadPartCommand') return { ETag: '"e"' };
        return {};
      },
    };
    const store = {
      bucket: 'archive',
      s3,
      put: async (input: { Body?: unknown }) => {
        for await (const _ of input.Body as Readable) {
          // the SDK reads the body
        }
        return {};
      },
      head: async () => undefined,
    } as unknown as ObjectStore;
    const uploader = new FileUploader(store, new ArchiveKeys(''), {
      ...{ multipartThresholdBytes: 5 * MIB, partSizeBytes: 5 * MIB },
      readback: 'head',
    });
    const api = apiFor(served, newAgent(), { minSpeedBytesPerSecond: 1, speedWindowMs: windowMs });
    const line = new AbortController();
    const baseline = getEventListeners(line.signal, 'abort').length;

    const failures: string[] = [];
    for (let attempt = 0; attempt < 40; attempt++) {
      const path = attempt % 2 === 0 ? '/small' : '/big';
      const file = path === '/big' ? big : small;
      const error = await uploader
        .uploadVerified(
          LINE_ID,
          lineFileOf(file),
          await api.openFile(new URL(path, served.url), line.signal),
          {
            key: `k${path}`,
            signal: line.signal,
          },
        )
        .catch((caught: unknown) => caught);
      failures.push(
        error instanceof TokensApiError && error.retryable ? 'broke off, retryable' : describeError(error),
      );
    }
    await served.allClosed();
    await turn();
    await turn();

    expect(new Set(failures)).toEqual(new Set(['broke off, retryable']));
    const floorTimers = setSpy.mock.calls
      .map((call, index) => ({ window: call[1], timer: setSpy.mock.results[index]?.value }))
      .filter((started) => started.window === windowMs);
    expect(floorTimers.length).toBe(40);
    const cleared = new Set(clearSpy.mock.calls.map((call) => call[0]));
    expect(
      floorTimers.filter((started) => !cleared.has(started.timer)).length,
      'floor timers never cleared',
    ).toBe(0);
    expect(getEventListeners(line.signal, 'abort').length).toBe(baseline);
    expect(uploader.budget.used).toBe(0);
    expect(served.connections).toBe(40);
  });

  it('HOLDS: a multipart file whose download resets three times is retried cleanly by the run: archived, verified, and only then deleted', async ({
    task,
  }) => {
    const s = scenario(task);
    const local = await localStack(track, {
      lines: [{ status: 'finished', fileSize: 6 * MIB + 17 }],
      env: {
        MULTIPART_THRESHOLD_BYTES: String(5 * MIB),
        MULTIPART_PART_SIZE_BYTES: String(5 * MIB),
        RETRY_ATTEMPTS: '4',
        DOWNLOAD_MIN_SPEED_BYTES: '1024',
        DOWNLOAD_SPEED_WINDOW_SECONDS: '1',
      },
    });
    const [id] = [...local.tokens.lines.keys()] as [string];
    local.tokens.inject({ target: 'file', id, fault: { kind: 'reset' }, times: 3 });
    s.fault('file download: reset half-way, three times');
    const before = snapshot(local.tokens);

    const run = await settle(createHandler(local.env)({}));

    expect(run.summary?.failed).toEqual([]);
    expect(local.tokens.lines.get(id)?.status).toBe('deleted');
    expect(local.tokens.requests.filter((r) => r.path.startsWith(`/api/tokens/${id}/data`)).length).toBe(4);
    await checkInvariant(s, local, { before, runs: [run] });
  });
});
