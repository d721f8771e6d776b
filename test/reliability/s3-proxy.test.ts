import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
  type PutObjectCommandInput,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { startFauxqs } from 'fauxqs';
import { describe, expect, it } from 'vitest';
import { LOCAL_AWS_ENV } from '../local/stack.ts';
import { closeAfterEach } from './harness.ts';
import { type S3ProxyOptions, startS3Proxy } from './s3-proxy.ts';

const BUCKET = 'tokens-archive';
const KEY = 'tokens/0b9a6f1e-4c47-4a1b-9a7e-2f6a4c1d8e3b/receipt.json';
/** What the SDK throws for a refused conditional write. */
const PRECONDITION_FAILED = { name: 'PreconditionFailed', $metadata: { httpStatusCode: 412 } };

const track = closeAfterEach();

/** The local S3 server, and a client pointed at it or, with `proxy`, at a proxy in front of it. */
async function store(proxy?: S3ProxyOptions) {
  const fauxqs = await startFauxqs({ port: 0, logger: false, host: '127.0.0.1' });
  track({ close: () => fauxqs.stop() });
  fauxqs.createBucket(BUCKET);
  const s3Proxy = proxy === undefined ? undefined : track(await startS3Proxy(fauxqs.address, proxy));
  const client = new S3Client({
    endpoint: s3Proxy?.url ?? fauxqs.address,
    forcePathStyle: true,
    region: LOCAL_AWS_ENV.AWS_REGION,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    // A refused write must reach the test as it is, not be retried.
    maxAttempts: 1,
  });
  track({ close: async () => client.destroy() });
  const put = (body: string, conditions: Pick<PutObjectCommandInput, 'IfNoneMatch' | 'IfMatch'> = {}) =>
    client.send(new PutObjectCommand({ Bucket: BUCKET, Key: KEY, Body: body, ...conditions }));
  const read = async (): Promise<string | undefined> => {
    const object = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: KEY }));
    return object.Body?.transformToString();
  };
  /** A multipart upload of `body` in one part, completed under `conditions` (as S3 honours them there too). */
  const putMultipart = async (
    body: string,
    conditions: Pick<PutObjectCommandInput, 'IfNoneMatch' | 'IfMatch'>,
  ) => {
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: KEY }));
    const part = await client.send(
      new UploadPartCommand({ Bucket: BUCKET, Key: KEY, UploadId, PartNumber: 1, Body: body }),
    );
    return client.send(
      new CompleteMultipartUploadCommand({
        Bucket: BUCKET,
        Key: KEY,
        UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
        ...conditions,
      }),
    );
  };
  return { proxy: s3Proxy, put, putMultipart, read };
}

describe('the local S3 server alone', () => {
  it('ignores If-None-Match and If-Match on PutObject, which is why the proxy enforces them', async () => {
    const { put, read } = await store();

    await put('first', { IfNoneMatch: '*' });
    const second = await put('second', { IfNoneMatch: '*' });
    const third = await put('third', { IfMatch: '"not-the-etag"' });

    expect(second.$metadata.httpStatusCode).toBe(200);
    expect(third.$metadata.httpStatusCode).toBe(200);
    expect(await read()).toBe('third');
  });
});

describe('startS3Proxy enforcing conditional writes', () => {
  it('writes with IfNoneMatch * once, then answers 412 PreconditionFailed and keeps the first object', async () => {
    const { proxy, put, read } = await store({ enforceConditionalWrites: true });

    const first = await put('first', { IfNoneMatch: '*' });
    const second = put('second', { IfNoneMatch: '*' });

    expect(first.$metadata.httpStatusCode).toBe(200);
    await expect(second).rejects.toMatchObject(PRECONDITION_FAILED);
    expect(await read()).toBe('first');
    const puts = proxy?.requests.filter((r) => r.operation === 'PutObject');
    expect(puts).toMatchObject([{ upstreamStatus: 200 }, { preconditionFailed: true }]);
    expect(puts?.[1]?.upstreamStatus).toBeUndefined();
  });

  it('answers 412 to a multipart upload completed with IfNoneMatch * over an object, and keeps that object', async () => {
    const { put, putMultipart, read } = await store({ enforceConditionalWrites: true });

    await put('first', { IfNoneMatch: '*' });
    const second = putMultipart('second', { IfNoneMatch: '*' });

    await expect(second).rejects.toMatchObject(PRECONDITION_FAILED);
    expect(await read()).toBe('first');
  });

  it('writes with IfMatch the current ETag, and answers 412 to another ETag or a missing object', async () => {
    const { put, read } = await store({ enforceConditionalWrites: true });

    await expect(
      put('nothing there', { IfMatch: '"0123456789abcdef0123456789abcdef"' }),
    ).rejects.toMatchObject(PRECONDITION_FAILED);
    const first = await put('first');
    const replaced = await put('second', { IfMatch: first.ETag ?? '' });
    const stale = put('third', { IfMatch: first.ETag ?? '' });

    expect(replaced.$metadata.httpStatusCode).toBe(200);
    await expect(stale).rejects.toMatchObject(PRECONDITION_FAILED);
    expect(await read()).toBe('second');
  });

  it('lets exactly one of concurrent IfNoneMatch * writes of one key succeed', async () => {
    const { proxy, put, read } = await store({ enforceConditionalWrites: true });
    const bodies = ['a', 'b', 'c', 'd', 'e'];

    const outcomes = await Promise.allSettled(bodies.map((body) => put(body, { IfNoneMatch: '*' })));

    const written = outcomes.flatMap((outcome, i) => (outcome.status === 'fulfilled' ? [bodies[i]] : []));
    const refused = outcomes.filter((outcome) => outcome.status === 'rejected');
    expect(written).toHaveLength(1);
    for (const outcome of refused) expect(outcome.reason).toMatchObject(PRECONDITION_FAILED);
    expect(await read()).toBe(written[0]);
    expect(proxy?.requests.filter((r) => r.preconditionFailed)).toHaveLength(bodies.length - 1);
  });

  it('forwards conditional writes unchecked by default, as before, until told to enforce them', async () => {
    const { proxy, put, read } = await store({});

    await put('first', { IfNoneMatch: '*' });
    const unchecked = await put('second', { IfNoneMatch: '*' });
    if (proxy !== undefined) proxy.enforceConditionalWrites = true;
    const checked = put('third', { IfNoneMatch: '*' });

    expect(unchecked.$metadata.httpStatusCode).toBe(200);
    await expect(checked).rejects.toMatchObject(PRECONDITION_FAILED);
    expect(await read()).toBe('second');
  });
});
