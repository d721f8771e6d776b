import { PassThrough, type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { request } from 'undici';
import { describe, expect, it, vi } from 'vitest';
import { ObjectStore } from '../../lambda/archive/store.ts';
import { describeError, TokensApiError } from '../../lambda/shared/errors.ts';
import { type SpeedFloor, watchedBody } from '../../lambda/tokens/http.ts';
import { localS3Client } from '../local/stack.ts';
import {
  brokeOff,
  bytesOf,
  downloads,
  KIB,
  LINE_ID,
  lineFileOf,
  MIB,
  storeReading,
  uploaderOver,
} from './bodies.ts';
import { closeAfterEach, localStack } from './harness.ts';

const track = closeAfterEach();
const { serve, agent, apiOf } = downloads(track);

describe('the download speed floor against a service that sends in bursts', () => {
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
  async function burstingService() {
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
    const api = apiOf(served, floor);
    let busyMs = 0;
    const store = storeReading((body) =>
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
    const uploader = uploaderOver(store, {
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

  it('the service alone cannot pause the body: against a reader that takes every chunk at once, the floor trips in the first window', async () => {
    const { error, elapsedMs } = await transferTo(0);

    expect(error).toBeInstanceOf(TokensApiError);
    expect(describeError(error)).toMatch(/below the floor of 8388608 B\/s$/);
    expect(elapsedMs).toBeLessThan(3 * floor.speedWindowMs);
  });

  it('a reader held up for a moment each window (S3 taking each chunk in ~1 ms, a few % busy) does not exempt the window: a service at a quarter of the floor is stopped', async () => {
    // A window counts as held up by the reader only when the reader really was. Were any 'pause'
    // of the body in the window to exempt it, however short: a burst bigger than the pipe's
    // buffers (~4 x 64 KiB) makes the pipe pause the body for the few ms the reader needs to take
    // it, so the service would decide which windows count: none of them.
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

  it('through the real local S3 over loopback (the SDK takes each chunk at once), the same service trips the floor within two windows', async () => {
    const local = await localStack(track);
    const s3 = localS3Client(local.s3.address);
    track({ close: async () => s3.destroy() });
    for (const multipartThresholdBytes of [64 * MIB, 5 * MIB]) {
      const served = await burstingService();
      const api = apiOf(served, floor);
      const uploader = uploaderOver(new ObjectStore(s3, local.bucket), {
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

describe('the download speed floor against a reader that holds the body back', () => {
  it('with the reader stalled, memory stays bounded and the floor does not trip', async () => {
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
    const dispatcher = agent();
    const response = await request(`${served.url}/file`, { dispatcher });
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

  it('a window in which the reader held the body back for 90% of it does not trip the floor', async () => {
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
