import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { buffer } from 'node:stream/consumers';
import { describe, expect } from 'vitest';
import { loadConfig } from '../../lambda/app/config.ts';
import { createDeps } from '../../lambda/app/deps.ts';
import { createHandler } from '../../lambda/app/invoke.ts';
import { closeAfterEach, localStack, runCli } from '../reliability/harness.ts';
import { checkInvariant, cliOutcome, settle, snapshot } from '../reliability/invariant.ts';
import { it } from '../reliability/ledger.ts';
import { busiestSecond, type Timed } from '../support/busiest-second.ts';
import { silentLogger } from '../support/fakes.ts';

const track = closeAfterEach();
const MIB = 1024 * 1024;

/**
 * Records every chunk of a reply body undici takes off a socket from `origin`, as it parses it
 * (its `undici:request:bodyChunkReceived` channel): the bytes this process downloads, when it
 * downloads them, seen below the housekeeper's own code. Stops when the returned function is called.
 *
 * Why here and not in the simulator's writes: on loopback the kernel's send buffer grows to
 * several MiB per connection (measured: 3.9 MB written by a server to a client that read
 * nothing), so what the simulator hands to its socket says when the kernel took the bytes, not
 * when they were read; its busiest second was 1.5 times the cap in this very run. The bytes taken
 * off the socket are what the service really gets to send.
 */
function socketReads(origin: string): { readonly reads: Timed[]; readonly stop: () => void } {
  const reads: Timed[] = [];
  const onChunk = (message: unknown) => {
    const { request, chunk } = message as { request: { origin?: unknown }; chunk: Buffer };
    if (String(request.origin) === origin) reads.push({ at: performance.now(), bytes: chunk.length });
  };
  subscribe('undici:request:bodyChunkReceived', onChunk);
  return { reads, stop: () => unsubscribe('undici:request:bodyChunkReceived', onChunk) };
}

describe('a bandwidth cap (MAX_BYTES_PER_SECOND)', () => {
  it('reads no more than the cap from the service in any one-second window, across lines and files, under the request cap too', async ({
    s,
  }) => {
    // 12 MiB/s over 36 MiB: about three and a half seconds. Two lines of four files at once, two
    // files of each at a time: four downloads share the cap.
    const cap = 12 * MIB;
    const fileSize = 4.5 * MIB;
    const local = await localStack(track, {
      lines: [
        { status: 'finished', analysis: 'metrics', fileSize },
        { status: 'finished', analysis: 'metrics', fileSize },
      ],
    });
    const before = snapshot(local.tokens);
    const recording = socketReads(local.tokens.url);

    const run = await settle(
      createHandler({
        ...local.env,
        MAX_BYTES_PER_SECOND: String(cap),
        MAX_REQUESTS_PER_SECOND: '5',
        LINE_CONCURRENCY: '2',
        FILE_CONCURRENCY: '2',
      })({}),
    ).finally(recording.stop);

    expect(run.summary).toMatchObject({ archived: 2, dismantled: 2, failed: [] });
    const read = recording.reads.reduce((sum, chunk) => sum + chunk.bytes, 0);
    expect(read).toBeGreaterThanOrEqual(8 * fileSize);
    // The gate grants at most 90% of the cap in any second (5% bucket + 85% refill). The other
    // tenth (1.2 MiB) is for what is taken off the sockets before the gate grants it: a chunk or
    // two of at most 128 KiB per download (about 400 KiB in all, measured). Both bounds hold
    // however slow the machine: a late timer releases at most the bucket, so load only stretches
    // the transfer out.
    expect(busiestSecond(recording.reads)).toBeLessThanOrEqual(cap);
    // The request cap holds alongside: no second starts more than five (one more for the edges).
    const starts = local.tokens.requests.map((request) => ({ at: request.at, bytes: 1 }));
    expect(starts.length).toBeGreaterThan(12);
    expect(busiestSecond(starts)).toBeLessThanOrEqual(6);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('holds the cap with eight downloads opened at once, counting what each reads ahead of the cap', async () => {
    // Two lines' four files each, all opened at once through the process's own deps, as two
    // lines of FILE_CONCURRENCY 4 open them: each download takes a chunk of up to 64 KiB off its
    // socket before the cap grants it (half a MiB together, a fifth of the cap) while the cap
    // grants a second's worth. 2.25 MiB is the least MAX_BYTES_PER_SECOND takes for eight.
    const cap = 2.25 * MIB;
    const local = await localStack(track, {
      lines: Array.from({ length: 2 }, () => ({
        status: 'finished' as const,
        analysis: 'metrics' as const,
        fileSize: MIB / 2,
      })),
    });
    const deps = createDeps(
      loadConfig({
        ...local.env,
        MAX_BYTES_PER_SECOND: String(cap),
        LINE_CONCURRENCY: '2',
        FILE_CONCURRENCY: '4',
      }),
      { logger: silentLogger() },
    );
    const api = deps.tokens({ onRetry: () => undefined });
    const urls = [...local.tokens.lines.keys()].flatMap((id) =>
      ['data', 'score', 'analysis', 'delta'].map(
        (name) => new URL(`${local.tokens.url}/api/tokens/${id}/${name}`),
      ),
    );
    // The worst case: the cap's bucket full (5% of it; it fills in 0.1 s) when they all open.
    await new Promise((resolve) => setTimeout(resolve, 250));
    const recording = socketReads(local.tokens.url);

    const sizes = await Promise.all(
      urls.map(async (url) => (await buffer(await api.openFile(url))).length),
    ).finally(recording.stop);

    expect(sizes).toEqual(urls.map(() => MIB / 2));
    expect(busiestSecond(recording.reads)).toBeLessThanOrEqual(cap);
  });

  it('takes the cap from --max-bytes-per-second at the terminal', async ({ s }) => {
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 2 * MIB }] });
    const [id] = [...local.tokens.lines.keys()] as [string];
    const before = snapshot(local.tokens);

    // One line at a time: 1 MiB/s leaves half of itself to a download's read-ahead (two bodies
    // counted: the line's and a listing's, 256 KiB), as MAX_BYTES_PER_SECOND requires.
    const result = await runCli(track, { ...local.env, LINE_CONCURRENCY: '1' }, [
      '--max-bytes-per-second',
      String(MIB),
    ]);

    expect(result.code).toBe(0);
    expect(result.summary).toMatchObject({ dismantled: 1, failed: [] });
    // 2 MiB at 1 MiB/s: all but the 51 KiB bucket waits for its refill at 717 KiB/s (the cap less
    // the bucket and the 256 KiB of read-ahead), 2.8 s. The
    // next request (the line read again before its DELETE) waits for the whole file.
    const requests = local.tokens.requests;
    const download = requests.findIndex((request) => request.path === `/api/tokens/${id}/data`);
    const next = requests[download + 1];
    expect(download).toBeGreaterThan(-1);
    expect((next?.at ?? 0) - (requests[download]?.at ?? 0)).toBeGreaterThanOrEqual(2000);
    await checkInvariant(s, local, { before, runs: [cliOutcome(result)] });
  });
});
