import { createServer, type ServerResponse } from 'node:http';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { s3Sockets } from '../../../lambda/app/deps.ts';
import { type Listening, listenOnLoopback } from '../../support/loopback.ts';
import { archiveS3At } from '../../support/loopback-s3.ts';

let server: Listening | undefined;
afterEach(() => server?.close());

/**
 * A store that answers nothing until `count` requests are open at once, then answers them all:
 * the client gets through only if it can hold that many sockets together.
 */
async function storeAnsweringAt(count: number): Promise<Listening> {
  const waiting: ServerResponse[] = [];
  return listenOnLoopback(
    createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        waiting.push(response);
        if (waiting.length >= count) for (const held of waiting.splice(0)) held.writeHead(200).end();
      });
    }),
  );
}

describe('sockets to S3', () => {
  it('gives a pass a socket for every part in flight of every file, beyond the SDK default of 50', () => {
    const config = { lineConcurrency: 16, fileConcurrency: 4, upload: { partsInFlight: 4 } };

    // 16 x 4 files and a listing, each with 4 parts and a record: 65 x 5.
    expect(s3Sockets(config)).toBe(325);
    expect(s3Sockets({ ...config, lineConcurrency: 1, fileConcurrency: 1 })).toBe(50);
  });

  it('holds as many requests open at once as it was given sockets', async () => {
    const sockets = 60;
    server = await storeAnsweringAt(sockets);
    const s3 = archiveS3At(server.url, sockets);
    try {
      const puts = Array.from({ length: sockets }, (_, i) =>
        s3.send(new PutObjectCommand({ Bucket: 'archive', Key: `k${i}`, Body: 'x' })),
      );

      await expect(Promise.all(puts)).resolves.toHaveLength(sockets);
      expect(server.connections).toBe(sockets);
    } finally {
      s3.destroy();
    }
  }, 15_000);
});

describe("the archive's S3 client", () => {
  it("copies no request through the SDK's log filters (their info log goes nowhere here)", () => {
    const s3 = archiveS3At('http://127.0.0.1:9');
    try {
      const names = s3.middlewareStack.identify();

      expect(names.some((name) => name.startsWith('statedPayloadHash'))).toBe(true);
      expect(names.some((name) => name.startsWith('loggerMiddleware'))).toBe(false);
    } finally {
      s3.destroy();
    }
  });
});
