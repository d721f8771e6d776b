/** Reads of the local S3 as the campaign's judge makes them: directly, never through the proxy. */
import { createHash } from 'node:crypto';
import { get } from 'node:http';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { BucketReader } from '../reliability/invariant.ts';

/** An object as stored: its bytes, their SHA-256, and the metadata it was written with. */
export interface StoredObject {
  readonly bytes: Buffer;
  readonly sha256: string;
  readonly size: number;
  readonly metadata: Record<string, string>;
}

function isMissing(error: unknown): boolean {
  const name = (error as { name?: unknown } | undefined)?.name;
  return name === 'NoSuchKey' || name === 'NotFound';
}

/** The object's bytes and metadata, or undefined when there is no such key. */
export async function readObject(
  client: S3Client,
  bucket: string,
  key: string,
): Promise<StoredObject | undefined> {
  try {
    const reply = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const bytes = Buffer.from((await reply.Body?.transformToByteArray()) ?? new Uint8Array());
    return {
      bytes,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      size: bytes.length,
      metadata: reply.Metadata ?? {},
    };
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

/** The SHA-256 and size of an object, or undefined when there is none. */
export async function digestOf(
  client: S3Client,
  bucket: string,
  key: string,
): Promise<{ sha256: string; size: number } | undefined> {
  const object = await readObject(client, bucket, key);
  return object === undefined ? undefined : { sha256: object.sha256, size: object.size };
}

/** An object parsed as JSON; undefined when missing or not JSON. */
export async function readJson(client: S3Client, bucket: string, key: string): Promise<unknown> {
  const object = await readObject(client, bucket, key);
  if (object === undefined) return undefined;
  try {
    return JSON.parse(object.bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** Every key of the bucket under `prefix` with its ETag. */
export async function listWithEtags(
  client: S3Client,
  bucket: string,
  prefix = '',
): Promise<Map<string, string>> {
  const keys = new Map<string, string>();
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const object of page.Contents ?? []) {
      if (object.Key === undefined) continue;
      keys.set(
        object.Key,
        `${object.ETag ?? ''} ${object.Size ?? ''} ${object.LastModified?.getTime() ?? ''}`,
      );
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return keys;
}

/** One GET straight to the local S3 server (path style, unsigned: it does not check signatures). */
function rawGet(address: string, bucket: string, key: string): Promise<StoredObject | undefined> {
  const path = `/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
  return new Promise((resolve, reject) => {
    get(`${address}${path}`, (reply) => {
      const chunks: Buffer[] = [];
      reply.on('data', (chunk: Buffer) => chunks.push(chunk));
      reply.on('error', reject);
      reply.on('end', () => {
        if (reply.statusCode === 404) return resolve(undefined);
        if (reply.statusCode !== 200) return reject(new Error(`GET ${path} answered ${reply.statusCode}`));
        const bytes = Buffer.concat(chunks);
        const metadata: Record<string, string> = {};
        for (const [name, value] of Object.entries(reply.headers)) {
          if (name.startsWith('x-amz-meta-') && typeof value === 'string') metadata[name.slice(11)] = value;
        }
        resolve({
          bytes,
          sha256: createHash('sha256').update(bytes).digest('hex'),
          size: bytes.length,
          metadata,
        });
      });
    }).on('error', reject);
  });
}

/**
 * The bucket as the judge sees it between two looks: `refresh` lists it, and each object is read
 * once per version (its ETag, size and time), however many checks ask for it.
 */
export class BucketView implements BucketReader {
  #tags = new Map<string, string>();
  readonly #cache = new Map<string, { tag: string; object: StoredObject }>();
  readonly #client: S3Client;
  readonly #address: string;
  readonly #bucket: string;

  constructor(client: S3Client, address: string, bucket: string) {
    this.#client = client;
    this.#address = address;
    this.#bucket = bucket;
  }

  /** Lists the bucket again: its keys, each with a tag that changes when its object does. */
  async refresh(): Promise<ReadonlyMap<string, string>> {
    this.#tags = await listWithEtags(this.#client, this.#bucket);
    for (const key of this.#cache.keys()) if (!this.#tags.has(key)) this.#cache.delete(key);
    return this.#tags;
  }

  get tags(): ReadonlyMap<string, string> {
    return this.#tags;
  }

  async keys(): Promise<readonly string[]> {
    return [...this.#tags.keys()].sort();
  }

  async object(key: string): Promise<StoredObject | undefined> {
    const tag = this.#tags.get(key);
    if (tag === undefined) return undefined;
    const cached = this.#cache.get(key);
    if (cached?.tag === tag) return cached.object;
    const object = await rawGet(this.#address, this.#bucket, key);
    if (object !== undefined) this.#cache.set(key, { tag, object });
    return object;
  }

  async digest(key: string): Promise<{ sha256: string; size: number }> {
    const object = await this.object(key);
    if (object === undefined) throw new Error(`${key}: listed, then gone`);
    return { sha256: object.sha256, size: object.size };
  }

  async json(key: string): Promise<unknown> {
    const object = await this.object(key);
    if (object === undefined) return undefined;
    try {
      return JSON.parse(object.bytes.toString('utf8'));
    } catch {
      return undefined;
    }
  }
}
