import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** The S3 operation a request stands for, told apart by method and query as the SDK sends them. */
export type S3Operation =
  | 'PutObject'
  | 'UploadPart'
  | 'CreateMultipartUpload'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'HeadObject'
  | 'GetObject'
  | 'ListObjects'
  | 'Other';

/** One request seen by the proxy. */
export interface S3ProxyRequest {
  readonly operation: S3Operation;
  /** The object key (path-style addressing: the path after the bucket), `''` for bucket requests. */
  readonly key: string;
  /** 1-based count of this operation so far, this request included. */
  readonly ordinal: number;
}

/**
 * What the proxy does with a request:
 * - `forward`: pass it to the real store unchanged;
 * - `fail`: read the body, answer `status` with an S3 error document, never forward;
 * - `flip`: forward it with one byte of the body inverted (a store that stores what it was not sent);
 * - `hold`: read the body and never answer (a hung request);
 * - `hold-reply`: forward it (the store acts on it), then never pass the reply on;
 * - `after`: forward it once the promise settles (to order two passes deterministically).
 */
export type S3ProxyAction =
  | 'forward'
  | 'flip'
  | 'hold'
  | 'hold-reply'
  | { readonly fail: number }
  | { readonly after: Promise<unknown> };

export interface S3ProxyRecord extends S3ProxyRequest {
  readonly action: S3ProxyAction;
  /** Set once the store has answered a forwarded request. */
  upstreamStatus?: number;
}

/** An HTTP proxy in front of the local S3 server that injects faults chosen per request. */
export interface S3Proxy {
  /** For `AWS_ENDPOINT_URL_S3`. */
  readonly url: string;
  readonly requests: readonly S3ProxyRecord[];
  /** Chooses the action of each request; `forward` for all by default. */
  decide: (request: S3ProxyRequest) => S3ProxyAction;
  close(): Promise<void>;
}

function operationOf(method: string, url: URL, key: string): S3Operation {
  const query = url.searchParams;
  if (method === 'PUT' && query.has('partNumber')) return 'UploadPart';
  if (method === 'PUT' && key !== '') return 'PutObject';
  if (method === 'POST' && query.has('uploads')) return 'CreateMultipartUpload';
  if (method === 'POST' && query.has('uploadId')) return 'CompleteMultipartUpload';
  if (method === 'DELETE' && query.has('uploadId')) return 'AbortMultipartUpload';
  if (method === 'HEAD' && key !== '') return 'HeadObject';
  if (method === 'GET' && key !== '') return 'GetObject';
  if (method === 'GET') return 'ListObjects';
  return 'Other';
}

/** The request's headers for a body sent whole, with its length. */
function withLength(headers: IncomingMessage['headers'], length: number): IncomingMessage['headers'] {
  const copy = { ...headers, 'content-length': String(length) };
  delete copy['transfer-encoding'];
  return copy;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function s3Error(res: ServerResponse, status: number): void {
  const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected by the test proxy</Message></Error>`;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Starts the proxy on an OS-assigned loopback port, in front of `target` (e.g. fauxqs's address). */
export async function startS3Proxy(target: string): Promise<S3Proxy> {
  const upstream = new URL(target);
  const requests: S3ProxyRecord[] = [];
  const counts = new Map<S3Operation, number>();
  const sockets = new Set<Socket>();

  const forward = (req: IncomingMessage, body: Buffer, record: S3ProxyRecord): Promise<IncomingMessage> =>
    new Promise((resolve, reject) => {
      const out = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: withLength(req.headers, body.length),
        },
        (reply) => {
          record.upstreamStatus = reply.statusCode;
          resolve(reply);
        },
      );
      out.on('error', reject);
      out.end(body);
    });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://proxy.invalid');
    const [, , ...rest] = url.pathname.split('/');
    const key = decodeURIComponent(rest.join('/'));
    const method = req.method ?? 'GET';
    const operation = operationOf(method, url, key);
    const ordinal = (counts.get(operation) ?? 0) + 1;
    counts.set(operation, ordinal);
    const seen: S3ProxyRequest = { operation, key, ordinal };
    const action = proxy.decide(seen);
    const record: S3ProxyRecord = { ...seen, action };
    requests.push(record);

    const body = await readBody(req);
    if (typeof action === 'object' && 'fail' in action) return s3Error(res, action.fail);
    if (typeof action === 'object') await action.after.catch(() => undefined);
    if (action === 'hold') return;
    if (action === 'flip' && body.length > 0) {
      const at = Math.floor(body.length / 2);
      body.writeUInt8(body.readUInt8(at) ^ 0xff, at);
    }
    const reply = await forward(req, body, record);
    if (action === 'hold-reply') {
      reply.resume();
      return;
    }
    res.writeHead(reply.statusCode ?? 502, reply.headers);
    reply.pipe(res);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) s3Error(res, 502);
      else res.destroy();
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const proxy: S3Proxy = {
    url: `http://127.0.0.1:${port}`,
    requests,
    decide: () => 'forward',
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}
