import { createServer, type IncomingHttpHeaders, type IncomingMessage, request } from 'node:http';
import { listenOnLoopback } from '../support/loopback.ts';

/** A reply of the store as the client will get it: the front may change any part of it. */
export interface StoreReply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** One request to the store, as the front sees it: method, object key (path-style) and query. */
export interface StoreRequest {
  readonly method: string;
  readonly key: string;
  readonly query: URLSearchParams;
}

/**
 * Changes the store's reply to a request, or returns undefined to pass it on untouched. The reply
 * is sent as returned, framed by its body: a shorter body ends early and cleanly (Content-Length
 * says so, no connection breaks), as a faulty cache or proxy may send it.
 */
export type Rewrite = (request: StoreRequest, reply: StoreReply) => StoreReply | undefined;

async function readAll(stream: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * A front for S3 (in front of the enforcing S3 proxy, or the local server) that buffers each reply
 * and lets `rewrite` change it: metadata headers cut, a body ending short of the object, a listing
 * that omits keys. Faults a broken connection cannot show: the reply is complete, and lies.
 */
export async function startRewritingS3Front(
  target: string,
  rewrite: Rewrite,
): Promise<{ readonly url: string; close(): Promise<void> }> {
  const upstream = new URL(target);
  const server = createServer((req, res) => {
    void (async () => {
      const body = await readAll(req);
      const url = new URL(req.url ?? '/', 'http://front.invalid');
      const [, , ...rest] = url.pathname.split('/');
      const seen: StoreRequest = {
        method: req.method ?? 'GET',
        key: decodeURIComponent(rest.join('/')),
        query: url.searchParams,
      };
      const headers = { ...req.headers, 'content-length': String(body.length) };
      delete headers['transfer-encoding'];
      const reply = await new Promise<StoreReply>((resolve, reject) => {
        const out = request(
          { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
          (answer) => {
            readAll(answer).then(
              (bytes) => resolve({ status: answer.statusCode ?? 502, headers: answer.headers, body: bytes }),
              reject,
            );
          },
        );
        out.on('error', reject);
        out.end(body);
      });
      const sent = rewrite(seen, reply) ?? reply;
      const out = { ...sent.headers };
      delete out['transfer-encoding'];
      // A HEAD states the object's length; any other reply is framed by the body sent.
      if (seen.method !== 'HEAD') out['content-length'] = String(sent.body.length);
      res.writeHead(sent.status, out);
      res.end(seen.method === 'HEAD' ? undefined : sent.body);
    })().catch(() => res.destroy());
  });
  const listening = await listenOnLoopback(server);
  return {
    url: listening.url,
    close: () => listening.close(),
  };
}
