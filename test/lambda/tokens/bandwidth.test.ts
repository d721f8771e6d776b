import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buffer, text } from 'node:stream/consumers';
import { Agent } from 'undici';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { BYTES_READ_AHEAD_PER_DOWNLOAD } from '../../../lambda/shared/contract.ts';
import type { SessionKeySource } from '../../../lambda/shared/session-key-source.ts';
import { TokensApi } from '../../../lambda/tokens/api.ts';
import { BandwidthCap, type ByteGate } from '../../../lambda/tokens/bandwidth.ts';
import type { SpeedFloor } from '../../../lambda/tokens/http.ts';
import { closeAfterEach, startRecordingServer } from '../../reliability/harness.ts';
import { busiestSecond } from '../../support/busiest-second.ts';

const KIB = 1024;
const MIB = 1024 * KIB;

/**
 * Takers that ask for `sizes` bytes in turn, as fast as they are granted, until `stop`; every
 * grant is recorded with the (fake) time it came.
 */
function takers(gate: ByteGate, count: number, sizes: readonly number[]) {
  const grants: { at: number; bytes: number }[] = [];
  let stopped = false;
  const loops = Array.from({ length: count }, async (_, taker) => {
    for (let turn = taker; !stopped; turn += 1) {
      const bytes = sizes[turn % sizes.length] ?? 1;
      await gate.take(bytes);
      grants.push({ at: performance.now(), bytes });
    }
  });
  return {
    grants,
    stop: async () => {
      stopped = true;
      // Each loop ends at its next grant; the bucket refills in well under a minute.
      await vi.advanceTimersByTimeAsync(60_000);
      await Promise.all(loops);
    },
  };
}

describe('BandwidthCap', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    vi.useRealTimers();
  });

  // limiter's bucket reads performance.now(): the fake clock drives it and the timers together.
  const fakeClock = () => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });

  it('lets no one-second window through more than the cap, to many waiters at once', async () => {
    fakeClock();
    const cap = new BandwidthCap(10_000);
    const started = performance.now();
    const load = takers(cap, 6, [cap.largestTake, 1, 137, cap.largestTake - 1, 64]);

    await vi.advanceTimersByTimeAsync(20_000);
    await load.stop();

    const granted = load.grants.filter((grant) => grant.at <= started + 20_000);
    expect(busiestSecond(granted)).toBeLessThanOrEqual(10_000);
    // Saturated, it sustains what the bucket fills at: 85% of the cap, the rest kept as headroom.
    const total = granted.reduce((sum, grant) => sum + grant.bytes, 0);
    expect(cap.sustainedBytesPerSecond).toBe(8500);
    expect(total).toBeGreaterThanOrEqual(20 * 8500 - cap.bucketBytes);
    expect(total).toBeLessThanOrEqual(20 * 8500 + cap.bucketBytes);
  });

  it('starts empty: the first bytes wait for the bucket to fill', async () => {
    fakeClock();
    const cap = new BandwidthCap(10_000);
    let granted = false;

    const take = cap.take(cap.largestTake).then(() => {
      granted = true;
    });
    // 250 bytes at 8500 bytes a second: 29.4 ms.
    await vi.advanceTimersByTimeAsync(29);
    const early = granted;
    await vi.advanceTimersByTimeAsync(2);
    await take;

    expect(early).toBe(false);
    expect(granted).toBe(true);
  });

  it('lets no catch-up burst through after a stalled timer', async () => {
    fakeClock();
    const cap = new BandwidthCap(10_000);
    const load = takers(cap, 4, [100]);
    await vi.advanceTimersByTimeAsync(2000);
    const beforeStall = load.grants.length;
    // A stall: five seconds pass and no timer fires (a blocked event loop, a frozen container).
    const fakeNow = performance.now.bind(performance);
    let stalledMs = 0;
    vi.spyOn(performance, 'now').mockImplementation(() => fakeNow() + stalledMs);
    stalledMs = 5000;

    // The first timer due after the stall: it finds the bucket full, no fuller.
    await vi.advanceTimersByTimeAsync(15);
    const atOnce = load.grants.slice(beforeStall).reduce((sum, grant) => sum + grant.bytes, 0);
    await vi.advanceTimersByTimeAsync(3000);
    await load.stop();

    expect(atOnce).toBeLessThanOrEqual(cap.bucketBytes + 15 * 8.5);
    expect(busiestSecond(load.grants)).toBeLessThanOrEqual(10_000);
  });

  it('drops an aborted waiter from the line at once, and spends nothing for it', async () => {
    fakeClock();
    const cap = new BandwidthCap(10_000);
    const stop = new AbortController();
    const first = cap.take(cap.largestTake, stop.signal);
    let secondAt: number | undefined;
    const started = performance.now();
    const second = cap.take(100).then(() => {
      secondAt = performance.now() - started;
    });
    await vi.advanceTimersByTimeAsync(10);

    stop.abort(new Error('the run is over'));

    await expect(first).rejects.toThrow('the run is over');
    await vi.advanceTimersByTimeAsync(100);
    await second;
    // 100 bytes at 8500 a second: 11.8 ms; the first waiter's 250 would have been 29.4 ms more.
    expect(secondAt).toBeLessThan(20);
  });

  it('leaves no timer behind once every waiter has given up, so nothing keeps the process alive', async () => {
    fakeClock();
    const cap = new BandwidthCap(10_000);
    const stops = [new AbortController(), new AbortController(), new AbortController()];
    const waits = stops.map((stop) => cap.take(cap.largestTake, stop.signal).catch(() => 'gave up'));
    expect(vi.getTimerCount()).toBe(1);

    // The middle one, then the last, then the first (which held the timer).
    for (const at of [1, 2, 0]) stops[at]?.abort(new Error('deadline'));

    expect(await Promise.all(waits)).toEqual(['gave up', 'gave up', 'gave up']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('serves a large take behind a stream of small ones in its turn: no waiter starves', async () => {
    fakeClock();
    const cap = new BandwidthCap(10_000);
    const order: string[] = [];
    const small = (name: string) => cap.take(1).then(() => order.push(name));
    // Small takes before and after a large one that needs the bucket to fill.
    const waits = [
      small('a'),
      cap.take(cap.largestTake).then(() => order.push('large')),
      small('b'),
      small('c'),
    ];

    await vi.advanceTimersByTimeAsync(1000);
    await Promise.all(waits);

    expect(order).toEqual(['a', 'large', 'b', 'c']);
  });

  it('serves an urgent take (the body of a read a DELETE rests on) before the waiters that are not, even the one whose bytes it was waiting for', async () => {
    fakeClock();
    const cap = new BandwidthCap(10_000);
    const order: string[] = [];
    const take = (name: string, urgent = false) =>
      cap.take(cap.largestTake, undefined, urgent).then(() => order.push(name));
    // The first waits for the bucket (it starts empty), with the timer; the urgent ones come later.
    const waits = [take('download 1'), take('download 2'), take('re-read', true), take('download 3')];
    waits.push(take('DELETE reply', true));

    await vi.advanceTimersByTimeAsync(1000);
    await Promise.all(waits);

    expect(order).toEqual(['re-read', 'DELETE reply', 'download 1', 'download 2', 'download 3']);
  });

  it('grants an urgent take when its own bytes are there, not when the timer of the larger take it went before fires', async () => {
    fakeClock();
    const cap = new BandwidthCap(10_000);
    const started = performance.now();
    const grants: { name: string; at: number }[] = [];
    const take = (name: string, bytes: number, urgent: boolean) =>
      cap.take(bytes, undefined, urgent).then(() => grants.push({ name, at: performance.now() - started }));
    // The download's 250 bytes are due at 30 ms; the re-read's 17 bytes, arriving at 1 ms, at 2 ms.
    const download = take('download', cap.largestTake, false);
    await vi.advanceTimersByTimeAsync(1);
    const reread = take('re-read', 17, true);

    await vi.advanceTimersByTimeAsync(100);
    await Promise.all([download, reread]);

    expect(grants).toEqual([
      { name: 're-read', at: 2 },
      { name: 'download', at: 32 },
    ]);
  });

  it('keeps one timer for the whole line as urgent waiters go ahead and give up, and none once the line is empty', async () => {
    fakeClock();
    const cap = new BandwidthCap(10_000);
    const arrivals = [
      { name: 'download 1', urgent: false },
      { name: 're-read', urgent: true },
      { name: 'DELETE reply', urgent: true },
      { name: 'download 2', urgent: false },
    ];
    const stops = new Map(arrivals.map(({ name }) => [name, new AbortController()]));
    const timers: number[] = [];
    const waits = arrivals.map(({ name, urgent }) => {
      const wait = cap.take(cap.largestTake, stops.get(name)?.signal, urgent).catch(() => 'gave up');
      timers.push(vi.getTimerCount());
      return wait;
    });

    // The line is now: re-read, DELETE reply, download 1, download 2. The urgent one at the head,
    // then the download it went before (in the middle), then the next head, then the last.
    for (const name of ['re-read', 'download 1', 'DELETE reply', 'download 2']) {
      stops.get(name)?.abort(new Error('deadline'));
      timers.push(vi.getTimerCount());
    }

    expect(await Promise.all(waits)).toEqual(['gave up', 'gave up', 'gave up', 'gave up']);
    expect(timers).toEqual([1, 1, 1, 1, 1, 1, 1, 0]);
  });

  it('hands the line back to the waiter an urgent one went before when it gives up: that one waits for its own bytes only', async () => {
    fakeClock();
    const cap = new BandwidthCap(10_000);
    const started = performance.now();
    let downloadAt: number | undefined;
    // 100 bytes at 8500 a second: due at 12 ms.
    const download = cap.take(100).then(() => {
      downloadAt = performance.now() - started;
    });
    await vi.advanceTimersByTimeAsync(5);
    const stop = new AbortController();
    // Its 250 bytes would be due at 30 ms, and the download's 100 at 42 ms after them.
    const reread = cap.take(cap.largestTake, stop.signal, true);
    await vi.advanceTimersByTimeAsync(3);

    stop.abort(new Error('the confirming window is over'));

    await expect(reread).rejects.toThrow('the confirming window is over');
    await vi.advanceTimersByTimeAsync(100);
    await download;
    expect(downloadAt).toBeLessThanOrEqual(13);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('serves an urgent waiter that comes as the timer fires, before or after the waiter the timer was for, with one timer and within the cap', async () => {
    for (const urgentFirst of [true, false]) {
      fakeClock();
      const cap = new BandwidthCap(10_000);
      const grants: { name: string; at: number; bytes: number }[] = [];
      const started = performance.now();
      const take = (name: string, urgent: boolean) =>
        cap.take(cap.largestTake, undefined, urgent).then(() => {
          grants.push({ name, at: performance.now() - started, bytes: cap.largestTake });
        });
      let urgentWait: Promise<void> | undefined;
      const arrive = () => {
        urgentWait = take('re-read', true);
      };
      // The download's 250 bytes are due at 30 ms: the urgent one arrives at that very moment,
      // its timer firing just before the download's, or just after.
      if (urgentFirst) setTimeout(arrive, 30);
      const download = take('download', false);
      if (!urgentFirst) setTimeout(arrive, 30);

      await vi.advanceTimersByTimeAsync(30);
      const timersThen = vi.getTimerCount();
      await vi.advanceTimersByTimeAsync(100);
      await Promise.all([download, urgentWait]);

      expect(timersThen).toBe(1);
      expect(grants.map((grant) => grant.name)).toEqual(
        urgentFirst ? ['re-read', 'download'] : ['download', 're-read'],
      );
      // The second waits for its own bytes after the first's: 245 more at 8500 a second.
      expect(grants.map((grant) => grant.at)).toEqual([30, 59]);
      expect(vi.getTimerCount()).toBe(0);
      vi.useRealTimers();
    }
  });

  it('lets no one-second window through more than the cap with urgent takes mixed in, and every taker is served', async () => {
    fakeClock();
    const cap = new BandwidthCap(10_000);
    const started = performance.now();
    const grants: { at: number; bytes: number; taker: number }[] = [];
    let stopped = false;
    const sizes = [cap.largestTake, 1, 137, cap.largestTake - 1, 64];
    // Six takers; every third take of each is urgent (a re-read's body among the downloads').
    const loops = Array.from({ length: 6 }, async (_, taker) => {
      for (let turn = taker; !stopped; turn += 1) {
        const bytes = sizes[turn % sizes.length] ?? 1;
        await cap.take(bytes, undefined, turn % 3 === 0);
        grants.push({ at: performance.now(), bytes, taker });
      }
    });

    await vi.advanceTimersByTimeAsync(20_000);
    stopped = true;
    await vi.advanceTimersByTimeAsync(60_000);
    await Promise.all(loops);

    const granted = grants.filter((grant) => grant.at <= started + 20_000);
    expect(busiestSecond(granted)).toBeLessThanOrEqual(10_000);
    const total = granted.reduce((sum, grant) => sum + grant.bytes, 0);
    expect(total).toBeGreaterThanOrEqual(20 * 8500 - cap.bucketBytes);
    expect(total).toBeLessThanOrEqual(20 * 8500 + cap.bucketBytes);
    expect(new Set(granted.map((grant) => grant.taker)).size).toBe(6);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('holds a download back behind urgent waiters only for their bytes: it is served once theirs are', async () => {
    fakeClock();
    const cap = new BandwidthCap(10_000);
    const started = performance.now();
    let downloadAt: number | undefined;
    const download = cap.take(cap.largestTake).then(() => {
      downloadAt = performance.now() - started;
    });
    // Ten urgent bodies of 250 bytes come while it waits, one every 10 ms: a burst of DELETEs.
    const urgent: Promise<void>[] = [];
    for (let at = 0; at < 10; at += 1) {
      await vi.advanceTimersByTimeAsync(10);
      urgent.push(cap.take(cap.largestTake, undefined, true));
    }

    await vi.advanceTimersByTimeAsync(1000);
    await Promise.all([download, ...urgent]);

    // 11 x 250 bytes at 8500 a second: 324 ms, the download last, rounded up a millisecond a take.
    expect(downloadAt).toBeGreaterThanOrEqual(323);
    expect(downloadAt).toBeLessThanOrEqual(324 + 11);
  });

  it('refuses a signal already aborted, and a take larger than its largest', async () => {
    const cap = new BandwidthCap(10_000);

    await expect(cap.take(1, AbortSignal.abort(new Error('too late')))).rejects.toThrow('too late');
    await expect(cap.take(cap.largestTake + 1)).rejects.toThrow(RangeError);
    expect(() => new BandwidthCap(39)).toThrow(RangeError);
  });
});

describe('TokensApi under a byte cap', () => {
  const track = closeAfterEach();
  const agent = new Agent({ keepAliveTimeout: 1000 });
  afterAll(() => agent.close());
  const sessionKey: SessionKeySource = { get: async () => 'the-session-key', invalidate: () => undefined };

  function apiFor(baseUrl: string, gate: ByteGate, download?: SpeedFloor): TokensApi {
    return new TokensApi({
      baseUrl: new URL(baseUrl),
      dispatcher: agent,
      sessionKey,
      retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 },
      bandwidth: gate,
      ...(download === undefined ? {} : { download }),
    });
  }

  /** A server that answers every request with `body` at once, as fast as the socket takes it. */
  async function serving(body: Buffer, contentType = 'application/octet-stream') {
    return track(
      await startRecordingServer((_req: IncomingMessage, res: ServerResponse) => {
        res.writeHead(200, { 'content-type': contentType, 'content-length': String(body.length) }).end(body);
      }),
    );
  }

  it('reads a file no faster than the cap, and the speed floor does not take the wait for a slow peer', async () => {
    // A floor four times the cap, judged every 200 ms: a download held back by the gate would fail
    // at once if the floor counted the wait against the service.
    const payload = Buffer.alloc(384 * KIB, 7);
    const server = await serving(payload);
    const gate = new BandwidthCap(256 * KIB);
    const api = apiFor(server.url, gate, { minSpeedBytesPerSecond: MIB, speedWindowMs: 200 });
    const started = performance.now();

    const body = await api.openFile(new URL(`${server.url}/file`));
    const read = await text(body);

    expect(read.length).toBe(payload.length);
    // All but the bucket waits for refills at 85% of the cap; a slow machine only takes longer.
    const least = ((payload.length - gate.largestTake) / gate.sustainedBytesPerSecond) * 1000;
    expect(performance.now() - started).toBeGreaterThanOrEqual(least - 20);
  });

  it('holds the cap with eight downloads opened at once, keeping what they read ahead of it free', async () => {
    // Each download takes a chunk of up to 64 KiB off its socket before the gate grants it: half
    // a MiB together, a quarter of the cap, the moment they open, while the gate grants 90% of it
    // within the second. The cap keeps their read-ahead (LINE_CONCURRENCY x FILE_CONCURRENCY
    // times BYTES_READ_AHEAD_PER_DOWNLOAD, as createDeps gives it) free, instead of a tenth.
    const cap = 2 * MIB;
    const server = await serving(Buffer.alloc(MIB / 2, 3));
    const api = apiFor(server.url, new BandwidthCap(cap, 8 * BYTES_READ_AHEAD_PER_DOWNLOAD));
    const reads: { at: number; bytes: number }[] = [];
    const onChunk = (message: unknown) => {
      reads.push({ at: performance.now(), bytes: (message as { chunk: Buffer }).chunk.length });
    };
    subscribe('undici:request:bodyChunkReceived', onChunk);

    const sizes = await Promise.all(
      Array.from(
        { length: 8 },
        async (_, at) => (await text(await api.openFile(new URL(`${server.url}/f${at}`)))).length,
      ),
    ).finally(() => unsubscribe('undici:request:bodyChunkReceived', onChunk));

    expect(sizes).toEqual(Array.from({ length: 8 }, () => MIB / 2));
    expect(busiestSecond(reads)).toBeLessThanOrEqual(cap);
  });

  it('refuses to keep more than half the cap for read-ahead', () => {
    expect(() => new BandwidthCap(MIB, MIB / 2 + 1)).toThrow(RangeError);
    expect(new BandwidthCap(MIB, MIB / 2).sustainedBytesPerSecond).toBe(MIB / 2 - Math.floor(MIB * 0.05));
  });

  it('reads a whole file whose service closes the idle connection before the cap lets its last chunk through', async () => {
    // The service has written the whole reply and, its keep-alive timeout over (Node's is 5 s),
    // closes the connection; the reply's last chunk is still waiting for the cap in the client.
    const payload = Buffer.alloc(256 * KIB, 5);
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-length': String(payload.length) }).end(payload);
    });
    server.keepAliveTimeout = 100;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    track({ close: () => new Promise<void>((resolve) => server.close(() => resolve())) });
    server.on('connection', (socket) => track({ close: async () => void socket.destroy() }));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const api = apiFor(url, new BandwidthCap(256 * KIB));

    const read = await buffer(await api.openFile(new URL(`${url}/file`)));

    expect(read.equals(payload)).toBe(true);
  });

  it('fails a file whose service breaks the connection off while its chunks wait for the cap, never yielding it short', async () => {
    // A hostile service: it states 256 KiB, sends 192 KiB and breaks the connection off while the
    // client's gate still holds those bytes back. The bytes already received must not pass for
    // the whole file once the gate lets them through.
    const payload = Buffer.alloc(256 * KIB, 9);
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-length': String(payload.length) });
      res.write(payload.subarray(0, 192 * KIB), () => setTimeout(() => res.socket?.destroy(), 50));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    track({ close: () => new Promise<void>((resolve) => server.close(() => resolve())) });
    server.on('connection', (socket) => track({ close: async () => void socket.destroy() }));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const api = apiFor(url, new BandwidthCap(256 * KIB));

    const reading = buffer(await api.openFile(new URL(`${url}/file`)));

    await expect(reading).rejects.toThrow(/body broke off after \d+ bytes/);
  });

  it('counts JSON replies too', async () => {
    const document = JSON.stringify({ data: [], meta: { padding: 'x'.repeat(1.5 * MIB) } });
    const server = await serving(Buffer.from(document), 'application/vnd.api+json');
    const gate = new BandwidthCap(MIB);
    const api = apiFor(server.url, gate);
    const started = performance.now();

    await api.listPage();

    const least = ((document.length - gate.largestTake) / gate.sustainedBytesPerSecond) * 1000;
    expect(performance.now() - started).toBeGreaterThanOrEqual(least - 20);
  });

  it("stops a download waiting for the cap as soon as the run's deadline aborts it", async () => {
    const server = await serving(Buffer.alloc(256 * KIB));
    // 1 KiB a second: the whole file would take four minutes.
    const api = apiFor(server.url, new BandwidthCap(KIB));
    const deadline = new AbortController();
    const body = await api.openFile(new URL(`${server.url}/file`), deadline.signal);
    const reading = text(body);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const abortedAt = performance.now();

    deadline.abort(new Error('deadline reached'));

    await expect(reading).rejects.toThrow();
    expect(performance.now() - abortedAt).toBeLessThan(2000);
  });
});
