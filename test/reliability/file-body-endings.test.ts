import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { describe, expect } from 'vitest';
import { describeError, IntegrityError, TokensApiError } from '../../lambda/shared/errors.ts';
import { Verifier } from '../../lambda/shared/verify.ts';
import { watchedBody } from '../../lambda/tokens/http.ts';
import { brokeOff, bytesOf, downloads, drain, KIB, LINE_ID, MIB, sha256, turn } from './bodies.ts';
import { closeAfterEach, oneFinishedLine, startFront } from './harness.ts';
import { checkInvariant, observedPass } from './invariant.ts';
import { it } from './ledger.ts';

const track = closeAfterEach();
const { serve, apiOf } = downloads(track);

describe('a file body that breaks off never ends cleanly', () => {
  it('a Content-Length body cut short by the service errors as broke off, and never ends', async () => {
    const served = await serve((req, res) => {
      res.writeHead(200, { 'content-length': String(MIB) });
      res.write(bytesOf(300 * KIB), () => req.socket.destroy());
    });
    const api = apiOf(served);
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

  it('a chunked body cut after every byte but before its last chunk errors, and never ends', async () => {
    const served = await serve((req, res) => {
      res.writeHead(200, { 'transfer-encoding': 'chunked' });
      // Every byte of the file, but not the terminating 0-chunk: a complete-looking file that failed.
      res.write(bytesOf(100 * KIB), () => req.socket.destroy());
    });
    const api = apiOf(served);

    const seen = await drain(await api.openFile(new URL('/file', served.url)));

    expect(seen.ended).toBe(false);
    expect((seen.error as Error).message).toMatch(/body broke off after \d+ bytes: /);
  });

  it('a close-delimited body cut short ends (HTTP cannot tell), loses no byte, and the verifier refuses it', async () => {
    const served = await serve((req, res) => {
      // No Content-Length, no chunking: the end of the body is the end of the connection.
      res.writeHead(200, { connection: 'close' });
      res.end(bytesOf(300 * KIB));
      void req;
    });
    const api = apiOf(served);
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

  it('a body that errors in the very tick its last chunk and end-of-stream arrive never ends the counter cleanly', async () => {
    const source = new PassThrough();
    const body = watchedBody(source, { tooSlow: () => new Error('too slow'), brokeOff });
    const reading = drain(body);
    source.write(bytesOf(1000));
    await turn();

    // The last bytes, the end, and then (before 'end' can be emitted) the connection's error.
    source.write(bytesOf(24));
    source.end();
    source.destroy(new Error('read ECONNRESET'));
    const { bytes, ended, error } = await reading;

    expect(ended).toBe(false);
    expect(error === undefined ? 'ended' : describeError(error)).toMatch(
      /^broke off after \d+ bytes: read ECONNRESET/,
    );
    expect(bytes).toBeLessThanOrEqual(1024);
  });

  it('a body that ends and only then errors (before its close) fails a reader that has not yet seen the end, and never loses the error', async () => {
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
});

describe('a file body that completes ends with every byte', () => {
  it('every byte the service sent reaches the reader, in order, when the body completes', async () => {
    const file = bytesOf(3 * MIB + 17);
    const served = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(file.length) });
      res.end(file);
    });
    const api = apiOf(served, { minSpeedBytesPerSecond: 1, speedWindowMs: 20 });
    const body = await api.openFile(new URL('/file', served.url));
    const hash = createHash('sha256');
    let bytes = 0;

    for await (const chunk of body) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }

    expect({ bytes, sha256: hash.digest('hex') }).toEqual({ bytes: file.length, sha256: sha256(file) });
  });

  it('a complete body the service closes (FIN) right after, read only once the FIN is out, ends with every byte (no premature close)', async () => {
    const file = bytesOf(MIB + 11);
    let finSent: Promise<void> | undefined;
    const served = await serve((req, res) => {
      // Keep-alive (no `Connection: close`): the close is the service's own idle timeout firing early.
      res.writeHead(200, { 'content-length': String(file.length) });
      finSent = new Promise((resolve) => res.end(file, () => req.socket.end(() => resolve())));
    });
    const api = apiOf(served, { minSpeedBytesPerSecond: 1, speedWindowMs: 20 });
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

  it('a complete body followed by an RST, read at once: every byte and an end, or a broke-off with bytes missing; never every byte and then an error, never a short end', async () => {
    const outcomes = new Set<string>();
    for (const size of [1000, 100 * KIB, 2 * MIB + 3]) {
      const served = await serve((req, res) => {
        res.writeHead(200, { 'content-length': String(size) });
        res.end(bytesOf(size), () => req.socket.resetAndDestroy());
      });
      const api = apiOf(served, { minSpeedBytesPerSecond: 1, speedWindowMs: 50 });
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

  it('a complete body followed by an RST fails, if at all, as a retryable broke-off, never as a short end; the run re-fetches it and archives the line', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track, {
      fileSize: 2 * MIB + 3,
      env: { RETRY_ATTEMPTS: '3' },
    });
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

    const { before, run } = await observedPass(local, { ...local.env, TOKENS_API_URL: front.url });

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
