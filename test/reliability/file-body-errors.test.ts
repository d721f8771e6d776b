import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { IntegrityError } from '../../lambda/shared/errors.ts';
import { Verifier } from '../../lambda/shared/verify.ts';
import { watchedBody } from '../../lambda/tokens/http.ts';
import { childEnded } from '../support/child-output.ts';
import { brokeOff, bytesOf, downloads, drain, KIB, LINE_ID, MIB, turn } from './bodies.ts';
import { closeAfterEach, PROJECT_ROOT } from './harness.ts';

const track = closeAfterEach();
const { serve, agent, apiOf } = downloads(track);

describe('an error of a file body crashes nothing', () => {
  it('the body erroring after the reader destroyed the stream with its own error crashes nothing', async () => {
    let serverSocket: Socket | undefined;
    const served = await serve((req, res) => {
      serverSocket = req.socket;
      res.writeHead(200, { 'content-length': String(MIB) });
      res.write(bytesOf(64 * KIB));
      // ...and then nothing: the rest never comes.
    });
    const api = apiOf(served);
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

  it('the body breaking off after the consumer pipeline gave up (verifier refused) crashes nothing', async () => {
    const sockets: Socket[] = [];
    const served = await serve((req, res) => {
      sockets.push(req.socket);
      res.writeHead(200, { 'content-length': String(64 * MIB) });
      res.write(bytesOf(256 * KIB));
    });
    const api = apiOf(served, { minSpeedBytesPerSecond: 1, speedWindowMs: 10 });
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

  it('a body that breaks off before the reader attaches its listener crashes nothing; the reader still gets the error', async () => {
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
    const { code, stdout, stderr } = await childEnded(child);

    expect({ code, stdout: stdout.trim(), stderr: stderr.split('\n')[0] ?? '' }).toEqual({
      code: 0,
      stdout: 'reader saw: broke off after 0 bytes: other side closed',
      stderr: '',
    });
  });
});

describe('a file body never leaves its reader waiting', () => {
  it('the request signal aborting mid-body reaches the reader as an error', async () => {
    const served = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(MIB) });
      res.write(bytesOf(64 * KIB));
    });
    const api = apiOf(served);
    const line = new AbortController();
    const body = await api.openFile(new URL('/file', served.url), line.signal);
    const seen = drain(body);
    await new Promise((resolve) => body.once('data', resolve));

    line.abort(new Error('run deadline'));

    expect(await seen).toMatchObject({ ended: false, error: expect.any(Error) });
    await served.allClosed();
  });

  it('undici destroying its body without an error still errors the reader (undici supplies one)', async () => {
    const served = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(MIB) });
      res.write(bytesOf(64 * KIB));
    });
    const dispatcher = agent();
    const response = await request(`${served.url}/file`, { dispatcher });
    const body = watchedBody(response.body, { tooSlow: () => new Error('too slow'), brokeOff });
    const seen = drain(body);
    await new Promise((resolve) => body.once('data', resolve));

    response.body.destroy();

    expect(await seen).toMatchObject({ ended: false, error: expect.any(Error) });
    expect(((await seen).error as Error).message).toMatch(/^broke off after \d+ bytes: /);
  });

  it('a body that closes without an error and without its end fails the reader as broke off, never leaves it waiting', async () => {
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
