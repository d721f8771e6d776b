import type { Socket } from 'node:net';
import { finished } from 'node:stream/promises';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { ObjectStore } from '../../lambda/archive/store.ts';
import type { FileUploader, UploadSettings } from '../../lambda/archive/upload.ts';
import { ArchiveError, describeError, IntegrityError, TokensApiError } from '../../lambda/shared/errors.ts';
import type { LineFile } from '../../lambda/shared/ids.ts';
import type { TokensApi } from '../../lambda/tokens/api.ts';
import { localS3Client } from '../local/stack.ts';
import { objectDigest } from '../support/archive-inspect.ts';
import {
  bytesOf,
  downloads,
  KIB,
  LINE_ID,
  lineFileOf,
  MIB,
  sha256,
  storeReading,
  turn,
  uploaderOver,
} from './bodies.ts';
import { closeAfterEach, localStack, proxiedS3 } from './harness.ts';
import type { S3Proxy } from './s3-proxy.ts';

const track = closeAfterEach();
const { serve, apiOf } = downloads(track);

/**
 * A service that serves `file`: `head` bytes at once, then a byte every `everyMs`, so a transfer is
 * still in the middle when things fail; `reset()` drops every connection it has.
 */
async function tricklingService(file: Buffer, head: number, everyMs: number) {
  const sockets: Socket[] = [];
  const served = await serve((req, res) => {
    sockets.push(req.socket);
    res.writeHead(200, { 'content-length': String(file.length) });
    res.write(file.subarray(0, head));
    const timer = setInterval(() => res.write(file.subarray(head, head + 1)), everyMs);
    res.on('close', () => clearInterval(timer));
  });
  const reset = () => {
    for (const socket of sockets) socket.destroy();
  };
  return { served, reset };
}

describe('the failure a transfer reports is the one that came first', () => {
  const file = bytesOf(2 * MIB + 5);
  const lineFile = { name: 'data', size: file.length, sha256: sha256(file) } as LineFile;
  const settings = { multipartThresholdBytes: 64 * MIB, partSizeBytes: 5 * MIB, readback: 'head' as const };

  // Enough to start, then the rest only slowly: the transfer is in the middle when things fail.
  const slowService = () => tricklingService(file, 256 * KIB, 50);

  it('S3 failing mid-stream is reported as S3 failing, even when the service resets right after', async () => {
    const { served, reset } = await slowService();
    const api = apiOf(served, { minSpeedBytesPerSecond: 1, speedWindowMs: 30 });
    const uploader = uploaderOver(
      storeReading(async (body, key) => {
        await new Promise((resolve) => body.once('data', resolve));
        reset();
        throw new ArchiveError(key, 'PutObject failed: InternalError (HTTP 500): we are sorry');
      }),
      settings,
    );
    const body = await api.openFile(new URL('/file', served.url));

    const outcome = uploader.uploadVerified(LINE_ID, lineFile, body, { key: 'k/data' });

    await expect(outcome).rejects.toBeInstanceOf(ArchiveError);
    await expect(outcome).rejects.toThrow('PutObject failed: InternalError');
    await served.allClosed();
  });

  it('the download breaking off while S3 reads is reported as the download, not as the failed PutObject', async () => {
    const { served, reset } = await slowService();
    const api = apiOf(served);
    const uploader = uploaderOver(
      storeReading(async (body, key) => {
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
      settings,
    );
    const url = new URL('/file', served.url);
    const body = await api.openFile(url);

    const outcome = uploader.uploadVerified(LINE_ID, lineFile, body, { key: 'k/data' });

    await expect(outcome).rejects.toBeInstanceOf(TokensApiError);
    await expect(outcome).rejects.toThrow(`GET ${url.href}: body broke off after`);
  });

  it('a multipart upload that failed first is reported as the store, even when the body breaks off during its cleanup', async () => {
    // uploadMultipart settles only after Promise.allSettled(inFlight) and AbortMultipartUpload: a
    // body that breaks off (for its own reason) during the store's cleanup must not be taken for
    // the first failure.
    const big = bytesOf(2 * MIB + 5);
    const bigFile = { name: 'data', size: big.length, sha256: sha256(big) } as LineFile;
    // One part and a bit, then a trickle: the second part is still being read when the first fails.
    const { served, reset } = await tricklingService(big, 300 * KIB, 20);
    const api = apiOf(served);
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
          reset();
          await finished(body).catch(() => undefined);
          await turn();
          return {};
        }
        throw new Error(`unexpected ${name}`);
      },
    };
    const store = { bucket: 'archive', s3, head: async () => undefined } as unknown as ObjectStore;
    const uploader = uploaderOver(store, {
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

  it("the line's stop (another file failed) is reported as that, not as this body breaking off", async () => {
    const { served } = await slowService();
    const api = apiOf(served);
    const line = new AbortController();
    const elsewhere = new ArchiveError('k/other', 'PutObject failed: SlowDown (HTTP 503)', {
      retryable: true,
    });
    const uploader = uploaderOver(
      storeReading(async (body) => {
        await new Promise((resolve) => body.once('data', resolve));
        line.abort(elsewhere);
        await finished(body).catch(() => undefined);
        throw new Error('aborted');
      }),
      settings,
    );
    const body = await api.openFile(new URL('/file', served.url), line.signal);

    const outcome = uploader.uploadVerified(LINE_ID, lineFile, body, { key: 'k/data', signal: line.signal });

    await expect(outcome).rejects.toBe(elsewhere);
    await served.allClosed();
  });
});

describe('a multipart upload that fails mid-transfer, on the real local S3 behind the proxy', () => {
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
    const { proxy } = await proxiedS3(track, local);
    const s3 = localS3Client(proxy.url, { maxAttempts: 2 });
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

  /** Downloads `file` from `served` through `uploader` to `k/data`: the error, or undefined once archived. */
  async function transfer(uploader: FileUploader, api: TokensApi, served: { url: string }, file: Buffer) {
    const body = await api.openFile(new URL('/file', served.url));
    return uploader.uploadVerified(LINE_ID, lineFileOf(file), body, { key: 'k/data' }).then(
      () => undefined,
      (caught: unknown) => caught,
    );
  }

  /** Expects a failed transfer to have left nothing: no object at `k/data`, every buffer released. */
  async function expectNothingLeft(raw: S3Client, bucket: string, uploader: FileUploader) {
    expect(await objectAt(raw, bucket, 'k/data')).toBe('none');
    expect(uploader.budget.used).toBe(0);
  }

  /** Expects the re-run (a fresh download, the store healthy again) to archive `file` byte-exact. */
  async function expectArchivedOnRerun(
    uploader: FileUploader,
    api: TokensApi,
    served: { url: string },
    file: Buffer,
    raw: S3Client,
    bucket: string,
  ) {
    expect(await transfer(uploader, api, served, file)).toBeUndefined();
    expect(await objectDigest(raw, bucket, 'k/data')).toMatchObject({ sha256: sha256(file) });
  }

  /** Serves `file` (or `served` bytes in its place): `fast` bytes at once, the rest in a trickle. */
  async function fileService(file: Buffer, fast: number, served = file) {
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

  it('an UploadPart that fails while later parts are still being read fails the transfer as the store, completes nothing, aborts the upload, releases every buffer and lets the socket go; a re-run archives it', async () => {
    const file = bytesOf(12 * MIB + 17);
    const { proxy, store, raw, bucket } = await s3Behind();
    // The second part (and its SDK retry) fails; by then the third part is being read.
    proxy.decide = ({ operation, ordinal }) =>
      operation === 'UploadPart' && ordinal >= 2 ? { fail: 500 } : 'forward';
    const served = await fileService(file, 10 * MIB + 5);
    const uploader = uploaderOver(store, settings);
    const api = apiOf(served, { minSpeedBytesPerSecond: 1, speedWindowMs: 50 });

    const error = await transfer(uploader, api, served, file);
    await served.allClosed();
    await turn();

    expect(error).toBeInstanceOf(ArchiveError);
    expect(describeError(error)).toMatch(/^s3 object k\/data: upload failed: InternalError/);
    const operations = proxy.requests.map((request) => request.operation);
    expect(operations).toContain('AbortMultipartUpload');
    expect(operations).not.toContain('CompleteMultipartUpload');
    await expectNothingLeft(raw, bucket, uploader);

    proxy.decide = () => 'forward';
    await expectArchivedOnRerun(uploader, api, served, file, raw, bucket);
  });

  it('a file whose last byte is wrong puts every part but the last into S3 and never completes an object', async () => {
    const file = bytesOf(12 * MIB + 17);
    const wrong = Buffer.from(file);
    wrong[wrong.length - 1] = (wrong[wrong.length - 1] ?? 0) ^ 0xff;
    const { proxy, store, raw, bucket } = await s3Behind();
    const served = await fileService(file, 2 * MIB, wrong);
    const uploader = uploaderOver(store, settings);
    const api = apiOf(served);

    const error = await transfer(uploader, api, served, file);

    expect(error).toBeInstanceOf(IntegrityError);
    const operations = proxy.requests.map((request) => request.operation);
    expect(operations.filter((operation) => operation === 'UploadPart').length).toBe(2);
    expect(operations).not.toContain('CompleteMultipartUpload');
    expect(operations).toContain('AbortMultipartUpload');
    await expectNothingLeft(raw, bucket, uploader);
  });

  it('CompleteMultipartUpload failing after the verifier passed (onFailure destroys a finished verifier) crashes nothing, names the store, leaves no object; a re-run archives it', async () => {
    const file = bytesOf(11 * MIB + 1);
    const { proxy, store, raw, bucket } = await s3Behind();
    proxy.decide = ({ operation }) => (operation === 'CompleteMultipartUpload' ? { fail: 500 } : 'forward');
    const served = await fileService(file, file.length);
    const uploader = uploaderOver(store, settings);
    const api = apiOf(served);

    const error = await transfer(uploader, api, served, file);
    await turn();
    await turn();

    expect(error).toBeInstanceOf(ArchiveError);
    expect(describeError(error)).toMatch(/^s3 object k\/data: upload failed: InternalError/);
    expect(proxy.requests.map((request) => request.operation)).toContain('AbortMultipartUpload');
    await expectNothingLeft(raw, bucket, uploader);

    proxy.decide = () => 'forward';
    await expectArchivedOnRerun(uploader, api, served, file, raw, bucket);
  });

  it('the store failing and the body breaking off in the same instant, many times over, never completes an object nor leaves an unhandled rejection', async () => {
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
    const uploader = uploaderOver(store, settings);
    const api = apiOf(served);

    const outcomes: string[] = [];
    for (let attempt = 0; attempt < 8; attempt++) {
      const error = await transfer(uploader, api, served, file);
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
    await expectNothingLeft(raw, bucket, uploader);
  });
});
