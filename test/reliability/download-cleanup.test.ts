import { getEventListeners } from 'node:events';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect } from 'vitest';
import type { ObjectStore } from '../../lambda/archive/store.ts';
import { describeError, TokensApiError } from '../../lambda/shared/errors.ts';
import { Verifier } from '../../lambda/shared/verify.ts';
import type { SpeedFloor } from '../../lambda/tokens/http.ts';
import { bytesOf, downloads, drain, KIB, LINE_ID, lineFileOf, MIB, turn, uploaderOver } from './bodies.ts';
import { closeAfterEach, oneMultipartLine } from './harness.ts';
import { checkInvariant, observedPass } from './invariant.ts';
import { it } from './ledger.ts';

const track = closeAfterEach();
const { serve, apiOf, floorTimer } = downloads(track);

describe('a download, however it ends, lets go of its floor timer, socket and abort listener', () => {
  const floor: SpeedFloor = { minSpeedBytesPerSecond: 1, speedWindowMs: 37 };

  it('the reader destroying the stream clears the timer, closes the socket and drops the abort listener', async () => {
    const timer = floorTimer(floor.speedWindowMs);
    const served = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(MIB) });
      res.write(bytesOf(64 * KIB));
    });
    const api = apiOf(served, floor);
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

  it('the floor tripping fails with the floor error, clears the timer and closes the socket', async () => {
    const timer = floorTimer(40);
    const served = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(MIB) });
      res.write('x');
      // ...a trickle that never comes.
    });
    const api = apiOf(served, { minSpeedBytesPerSecond: 10 * MIB, speedWindowMs: 40 });

    const seen = await drain(await api.openFile(new URL('/file', served.url)));
    await served.allClosed();
    await turn();

    expect((seen.error as Error).message).toMatch(/below the floor of 10485760 B\/s$/);
    expect((seen.error as Error).message).not.toContain('broke off');
    expect(timer.cleared()).toBe(true);
  });

  it('a body that ends clears the timer and hands the connection back for the next download', async () => {
    const timer = floorTimer(floor.speedWindowMs);
    const file = bytesOf(200 * KIB);
    const served = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(file.length) });
      res.end(file);
    });
    const api = apiOf(served, floor);

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

  it('an endless body the verifier stops is let go: socket closed, timer cleared', async () => {
    const timer = floorTimer(floor.speedWindowMs);
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
    const api = apiOf(served, floor);
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

describe('downloads that break off and are retried', () => {
  it('40 downloads that break off (single and multipart), each retried, leave no floor timer, no abort listener, no socket, no buffer held', async () => {
    const windowMs = 43;
    const { setSpy, clearSpy } = floorTimer(windowMs);
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
    const uploader = uploaderOver(store, {
      ...{ multipartThresholdBytes: 5 * MIB, partSizeBytes: 5 * MIB },
      readback: 'head',
    });
    const api = apiOf(served, { minSpeedBytesPerSecond: 1, speedWindowMs: windowMs });
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

  it('a multipart file whose download resets three times is retried cleanly by the run: archived, verified, and only then deleted', async ({
    s,
  }) => {
    const { local, id } = await oneMultipartLine(track, {
      RETRY_ATTEMPTS: '4',
      DOWNLOAD_MIN_SPEED_BYTES: '1024',
      DOWNLOAD_SPEED_WINDOW_SECONDS: '1',
    });
    local.tokens.inject({ target: 'file', id, fault: { kind: 'reset' }, times: 3 });
    s.fault('file download: reset half-way, three times');

    const { before, run } = await observedPass(local);

    expect(run.summary?.failed).toEqual([]);
    expect(local.tokens.lines.get(id)?.status).toBe('deleted');
    expect(local.tokens.requests.filter((r) => r.path.startsWith(`/api/tokens/${id}/data`)).length).toBe(4);
    await checkInvariant(s, local, { before, runs: [run] });
  });
});
