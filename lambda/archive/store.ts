import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  ChecksumMode,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  type PutObjectCommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ArchiveError, ArchiveReadError, describeError } from '../shared/errors.ts';
import type { WriteCondition } from '../shared/ports/archive.ts';
import { RECORD_INDENT } from '../shared/records.ts';
import { redactedJson } from '../shared/redact.ts';

/** A conditional write in S3's own words: the port's {@link WriteCondition}, as request headers. */
export type S3Condition = { readonly IfNoneMatch: '*' } | { readonly IfMatch: string };

/** The port's condition as S3 headers: `mustNotExist` is `If-None-Match: *`, `mustMatch` is `If-Match` the ETag. */
export function s3Condition(condition: WriteCondition): S3Condition {
  return 'mustNotExist' in condition ? { IfNoneMatch: '*' } : { IfMatch: condition.mustMatch };
}

/**
 * The S3 requests of the archive, each turning the SDK's errors into {@link ArchiveError}s that
 * name the key: JSON documents (plain and conditional), HEAD, listings and hashing a stored object.
 */
export class ObjectStore {
  constructor(
    readonly s3: S3Client,
    readonly bucket: string,
  ) {}

  /** Every object directly or deeper under `folder`, by name relative to it, with its time. */
  async list(folder: string): Promise<Map<string, Date>> {
    const objects = new Map<string, Date>();
    await this.scan(folder, (name, modified) => objects.set(name, modified));
    return objects;
  }

  /**
   * Visits every object directly or deeper under `prefix`, page by page, by name relative to it,
   * with its time: a listing too large to hold whole (the whole archive) is never held.
   */
  async scan(
    prefix: string,
    visit: (name: string, modified: Date) => void,
    abortSignal?: AbortSignal,
  ): Promise<void> {
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.s3.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix,
            ContinuationToken: token,
          }),
          abortSignal === undefined ? {} : { abortSignal },
        );
      } catch (error) {
        throw new ArchiveReadError(prefix, `ListObjectsV2 failed: ${describeError(error)}`, { cause: error });
      }
      for (const object of page.Contents ?? []) {
        if (object.Key?.startsWith(prefix) && object.LastModified !== undefined) {
          visit(object.Key.slice(prefix.length), object.LastModified);
        }
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  /** A conditional JSON PUT: false when the store refused the condition (412). */
  async putJsonIf(
    key: string,
    value: unknown,
    condition: S3Condition,
    abortSignal?: AbortSignal,
  ): Promise<boolean> {
    try {
      await this.s3.send(
        new PutObjectCommand({ ...this.#jsonObject(key, value), ...condition }),
        abortSignal === undefined ? {} : { abortSignal },
      );
      return true;
    } catch (error) {
      if (statusOf(error) === 412) return false;
      // 409: a conditional write of the same key was in flight; another attempt settles it.
      throw new ArchiveError(key, `PutObject failed: ${describeError(error)}`, {
        cause: error,
        retryable: true,
      });
    }
  }

  /** The object parsed as JSON with its ETag; undefined when there is none or it is not JSON. */
  async getJsonWithTag(
    key: string,
    abortSignal?: AbortSignal,
  ): Promise<{ value: unknown; etag: string } | undefined> {
    try {
      const reply = await this.s3.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key }),
        abortSignal === undefined ? {} : { abortSignal },
      );
      const text = (await reply.Body?.transformToString('utf8')) ?? '';
      if (reply.ETag === undefined) return undefined;
      try {
        return { value: JSON.parse(text) as unknown, etag: reply.ETag };
      } catch {
        return { value: undefined, etag: reply.ETag };
      }
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw new ArchiveReadError(key, `GetObject failed: ${describeError(error)}`, { cause: error });
    }
  }

  async putJson(key: string, value: unknown, abortSignal?: AbortSignal): Promise<void> {
    await this.put(this.#jsonObject(key, value), abortSignal);
  }

  /**
   * A JSON document as a PutObject input: pretty-printed, with its SHA-256 for S3 to check. Every
   * record may quote the service (a reason, a reply), so the session key is cut out of it here,
   * whatever a caller missed.
   */
  #jsonObject(key: string, value: unknown) {
    const body = Buffer.from(`${redactedJson(value, RECORD_INDENT)}\n`);
    return {
      Bucket: this.bucket,
      Key: key,
      Body: body,
      ContentType: 'application/json',
      ChecksumSHA256: createHash('sha256').update(body).digest('base64'),
    };
  }

  async put(
    input: ConstructorParameters<typeof PutObjectCommand>[0],
    abortSignal?: AbortSignal,
  ): Promise<PutObjectCommandOutput> {
    try {
      return await this.s3.send(
        new PutObjectCommand(input),
        abortSignal === undefined ? {} : { abortSignal },
      );
    } catch (error) {
      throw new ArchiveError(input.Key ?? '?', `PutObject failed: ${describeError(error)}`, {
        cause: error,
        retryable: true,
      });
    }
  }

  async head(key: string): Promise<HeadObjectCommandOutput | undefined> {
    try {
      return await this.s3.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: key, ChecksumMode: ChecksumMode.ENABLED }),
      );
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw new ArchiveReadError(key, `HeadObject failed: ${describeError(error)}`, { cause: error });
    }
  }

  /** The object parsed as JSON; undefined when there is none or it is not JSON. */
  async getJson(key: string, abortSignal?: AbortSignal): Promise<unknown> {
    const text = await this.getText(key, abortSignal);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return undefined;
    }
  }

  async getText(key: string, abortSignal?: AbortSignal): Promise<string | undefined> {
    try {
      const reply = await this.s3.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key }),
        abortSignal === undefined ? {} : { abortSignal },
      );
      return await reply.Body?.transformToString('utf8');
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw new ArchiveReadError(key, `GetObject failed: ${describeError(error)}`, { cause: error });
    }
  }

  /** The object's bytes as a stream (the caller consumes or destroys it); undefined when there is none. */
  async openObject(key: string, abortSignal?: AbortSignal): Promise<Readable | undefined> {
    try {
      const reply = await this.s3.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key }),
        abortSignal === undefined ? {} : { abortSignal },
      );
      return reply.Body as Readable;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw new ArchiveReadError(key, `GetObject failed: ${describeError(error)}`, { cause: error });
    }
  }

  /**
   * Streams an object back and hashes it; undefined when there is no such object. A read that does
   * not complete (no reply, a 5xx, a body that breaks off or ends short of its Content-Length)
   * throws an {@link ArchiveReadError}: it proves nothing about the object. `mismatch` says the
   * bytes read whole did not hash to the store's own checksum (`sha256` is then empty). An abort
   * of `abortSignal` ends the read the same way: inconclusive.
   */
  async storedDigest(
    key: string,
    abortSignal?: AbortSignal,
  ): Promise<{ size: number; sha256: string; mismatch?: string } | undefined> {
    const inconclusive = (what: string, error?: unknown) =>
      new ArchiveReadError(
        key,
        `read back ${what}${error === undefined ? '' : `: ${describeError(error)}`}`,
        error === undefined ? undefined : { cause: error },
      );
    let reply: GetObjectCommandOutput;
    try {
      reply = await this.s3.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key }),
        abortSignal === undefined ? {} : { abortSignal },
      );
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw inconclusive('failed', error);
    }
    const hash = createHash('sha256');
    let size = 0;
    const body = reply.Body as Readable;
    // The request's signal may no longer reach a body already streaming: end it here.
    const stop = () => body.destroy(abortSignal?.reason);
    abortSignal?.addEventListener('abort', stop, { once: true });
    if (abortSignal?.aborted === true) stop();
    try {
      for await (const chunk of body as AsyncIterable<Uint8Array>) {
        size += chunk.length;
        hash.update(chunk);
      }
    } catch (error) {
      // The SDK hashes the body too and fails it at its end when it is not what the store's own
      // checksum says: a read that completed, and showed other bytes than were stored.
      if (error instanceof Error && error.message.startsWith('Checksum mismatch')) {
        return { size: reply.ContentLength ?? size, sha256: '', mismatch: error.message };
      }
      throw inconclusive(`broke off after ${size} bytes`, error);
    } finally {
      abortSignal?.removeEventListener('abort', stop);
    }
    const length = reply.ContentLength;
    if (length !== undefined && length !== size) {
      throw inconclusive(`ended after ${size} of ${length} bytes`);
    }
    return { size, sha256: hash.digest('hex') };
  }
}

export function statusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

export function isNotFound(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { name, $metadata } = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return name === 'NotFound' || name === 'NoSuchKey' || $metadata?.httpStatusCode === 404;
}
