import { createHash } from 'node:crypto';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';

/** Every key in the bucket, following continuation tokens. */
export async function listKeys(s3: S3Client, bucket: string, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const object of page.Contents ?? []) if (object.Key !== undefined) keys.push(object.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return keys.sort();
}

/** The SHA-256 and size of what an object really holds (streamed, not buffered). */
export async function objectDigest(
  s3: S3Client,
  bucket: string,
  key: string,
): Promise<{ sha256: string; size: number }> {
  const reply = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of reply.Body as AsyncIterable<Uint8Array>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}

/** An object's bytes as UTF-8 text, as stored. */
export async function objectText(s3: S3Client, bucket: string, key: string): Promise<string> {
  const reply = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return (await reply.Body?.transformToString('utf8')) ?? '';
}

export async function objectJson(s3: S3Client, bucket: string, key: string): Promise<unknown> {
  const reply = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return JSON.parse((await reply.Body?.transformToString('utf8')) ?? 'null');
}

export async function objectMetadata(
  s3: S3Client,
  bucket: string,
  key: string,
): Promise<Record<string, string>> {
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  return head.Metadata ?? {};
}

/** Writes `body` at `key` behind the housekeeper's back: an archived object damaged, or one planted. */
export async function replaceObject(
  s3: S3Client,
  bucket: string,
  key: string,
  body: Buffer | string,
): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}
