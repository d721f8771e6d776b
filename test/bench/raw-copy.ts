import type { Readable } from 'node:stream';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { Agent, request } from 'undici';
import { streamMultipart } from '../../lambda/archive/multipart.ts';
import type { Config } from '../../lambda/core/types.ts';

/** A file to copy, as the parent process knows it from the simulator. */
export interface PlanFile {
  readonly name: string;
  readonly size: number;
}

export interface PlanLine {
  readonly id: string;
  readonly files: readonly PlanFile[];
}

/** What a copier or archiver moved. */
export interface Moved {
  readonly lines: number;
  readonly files: number;
  readonly bytes: number;
}

/**
 * The raw-copy limit: every file streamed from the tokens service into S3 with the product's
 * transport (undici with its timeouts, the S3 client with its handler settings, PutObject up to
 * the multipart threshold, the product's streamed multipart upload (`streamMultipart`) with the same part size above it, the
 * same line and file concurrency), and nothing else: no line GET, no HEAD before or after, no
 * hashing (not even the SDK's default CRC32), no manifest, no DELETE, no receipt, no secret read.
 */
export async function rawCopy(
  config: Config,
  sessionKey: string,
  lines: readonly PlanLine[],
): Promise<Moved> {
  const http = new Agent({
    connect: { timeout: config.http.connectTimeoutMs },
    headersTimeout: config.http.headersTimeoutMs,
    bodyTimeout: config.http.bodyTimeoutMs,
    keepAliveTimeout: 10_000,
  });
  const s3 = new S3Client({
    ...(config.s3EndpointOverride === undefined ? {} : { endpoint: config.s3EndpointOverride }),
    forcePathStyle: config.s3EndpointOverride !== undefined,
    requestHandler: { connectionTimeout: config.http.connectTimeoutMs, requestTimeout: 120_000 },
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
  // A URL's empty path reads back as "/": "//api" would name another host.
  const base = config.tokensApiUrl.pathname.replace(/\/+$/, '');
  const lineLimit = pLimit(config.lineConcurrency);
  let files = 0;
  let bytes = 0;
  try {
    await Promise.all(
      lines.map((line) =>
        lineLimit(async () => {
          const fileLimit = pLimit(config.fileConcurrency);
          await Promise.all(
            line.files.map((file) =>
              fileLimit(async () => {
                const url = new URL(`${base}/api/tokens/${line.id}/${file.name}`, config.tokensApiUrl.origin);
                const response = await request(url, {
                  dispatcher: http,
                  headers: { 'session-key': sessionKey },
                });
                if (response.statusCode !== 200) {
                  await response.body.dump();
                  throw new Error(`GET ${url.pathname} answered ${response.statusCode}`);
                }
                await put(s3, config, `raw/${line.id}/${file.name}`, response.body, file.size);
                files += 1;
                bytes += file.size;
              }),
            ),
          );
        }),
      ),
    );
  } finally {
    s3.destroy();
    await http.close();
  }
  return { lines: lines.length, files, bytes };
}

async function put(s3: S3Client, config: Config, key: string, body: Readable, size: number): Promise<void> {
  const params = {
    Bucket: config.archiveBucket,
    Key: key,
    Body: body,
    ContentLength: size,
    ContentType: 'application/octet-stream',
  };
  try {
    if (size <= config.upload.multipartThresholdBytes) {
      await s3.send(new PutObjectCommand(params));
    } else {
      const { Body: _body, ContentLength: _length, ...target } = params;
      await streamMultipart(
        s3,
        { ...target, Metadata: {} },
        body,
        size,
        config.upload.partSizeBytes,
        new AbortController().signal,
        undefined,
      );
    }
  } catch (error) {
    body.destroy();
    throw error;
  }
}
