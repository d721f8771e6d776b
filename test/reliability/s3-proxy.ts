import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { listenOnLoopback } from '../support/loopback.ts';

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
 * - `drop-reply`: forward it (the store acts on it), then close the connection without a reply;
 * - `break-body`: forward it, pass on the reply's headers and half its body, then close the connection;
 * - `stall-body`: forward it, pass on the reply's headers and half its body, then send nothing more
 *   and keep the connection open (a read that hangs mid-body);
 * - `after`: forward it once the promise settles (to order two passes deterministically).
 *
 * `fail` answers with the S3 error `code` when given (e.g. `AccessDenied`), `InternalError` otherwise.
 */
export type S3ProxyAction =
  | 'forward'
  | 'flip'
  | 'hold'
  | 'hold-reply'
  | 'drop-reply'
  | 'break-body'
  | 'stall-body'
  | { readonly fail: number; readonly code?: string }
  | { readonly after: Promise<unknown> };

export interface S3ProxyRecord extends S3ProxyRequest {
  readonly action: S3ProxyAction;
  /** Set once the store has answered a forwarded request. */
  upstreamStatus?: number;
  /**
   * Set when the proxy, enforcing conditional writes, answered 412 itself: the PutObject's
   * `If-None-Match: *` or `If-Match` did not hold, and it was never forwarded.
   */
  preconditionFailed?: true;
}

export interface S3ProxyOptions {
  /** See {@link S3Proxy.enforceConditionalWrites}. Off by default. */
  readonly enforceConditionalWrites?: boolean;
}

/** An HTTP proxy in front of the local S3 server that injects faults chosen per request. */
export interface S3Proxy {
  /** For `AWS_ENDPOINT_URL_S3`. */
  readonly url: string;
  readonly requests: readonly S3ProxyRecord[];
  /** Chooses the action of each request; `forward` for all by default. */
  decide: (request: S3ProxyRequest) => S3ProxyAction;
  /**
   * Make PutObject and CompleteMultipartUpload honour `If-None-Match: *` and `If-Match: "<etag>"` as S3 does (the local
   * server ignores both): the proxy HEADs the key first and answers 412 `PreconditionFailed`
   * itself when the object exists, or is missing or has another ETag. The check and the write
   * are one step per key: a conditional PutObject waits for the one before it on the same key.
   */
  enforceConditionalWrites: boolean;
  /** Resolves once no request is being handled (forwarded requests of a killed client included). */
  idle(): Promise<void>;
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

function s3Error(
  res: ServerResponse,
  status: number,
  code = 'InternalError',
  message = 'injected by the test proxy',
): void {
  const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** The entity tags of an `If-Match` value (`"a", "b"` or `*`), without quotes or weak marks. */
function entityTags(header: string): string[] {
  return header.split(',').map((tag) =>
    tag
      .trim()
      .replace(/^W\//, '')
      .replace(/^"(.*)"$/, '$1'),
  );
}

/**
 * Passes on the reply's status, headers and the first half of its body (by its Content-Length),
 * then destroys the connection: a body that breaks off after a reply began.
 */
async function breakBody(reply: IncomingMessage, res: ServerResponse, stall = false): Promise<void> {
  const length = Number(reply.headers['content-length'] ?? 0);
  const chunks: Buffer[] = [];
  for await (const chunk of reply) chunks.push(chunk as Buffer);
  const whole = Buffer.concat(chunks);
  const headers = { ...reply.headers, 'content-length': String(length || whole.length) };
  delete headers['transfer-encoding'];
  res.writeHead(reply.statusCode ?? 502, headers);
  const half = whole.subarray(0, Math.floor(whole.length / 2));
  await new Promise<void>((resolve) => res.write(half, () => resolve()));
  if (!stall) res.destroy();
}

/** Starts the proxy on an OS-assigned loopback port, in front of `target` (e.g. fauxqs's address). */
export async function startS3Proxy(target: string, options: S3ProxyOptions = {}): Promise<S3Proxy> {
  const upstream = new URL(target);
  const requests: S3ProxyRecord[] = [];
  const counts = new Map<S3Operation, number>();
  /** Per object path, the last conditional PutObject's turn: the next one waits for it. */
  const turns = new Map<string, Promise<unknown>>();

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

  /** The object's ETag (unquoted) in the store, or undefined when there is none. */
  const headUpstream = (path: string): Promise<string | undefined> =>
    new Promise((resolve, reject) => {
      const out = request({ host: upstream.hostname, port: upstream.port, method: 'HEAD', path }, (reply) => {
        reply.resume();
        if (reply.statusCode === 404) resolve(undefined);
        else if (reply.statusCode === 200) resolve(entityTags(String(reply.headers.etag ?? ''))[0]);
        else reject(new Error(`HEAD ${path} answered ${reply.statusCode}`));
      });
      out.on('error', reject);
      out.end();
    });

  /** Whether a write's `If-None-Match` / `If-Match` holds for the object now in the store. */
  const preconditionHolds = async (req: IncomingMessage, path: string): Promise<boolean> => {
    const ifNoneMatch = req.headers['if-none-match'];
    const ifMatch = req.headers['if-match'];
    const etag = await headUpstream(path);
    if (ifNoneMatch !== undefined && etag !== undefined) return false;
    if (ifMatch !== undefined) {
      if (etag === undefined) return false;
      const tags = entityTags(ifMatch);
      if (!tags.includes('*') && !tags.includes(etag)) return false;
    }
    return true;
  };

  /**
   * Forwards the request, or, for a conditional write (PutObject, CompleteMultipartUpload) when enforcing, checks the condition and
   * forwards in one turn per object (the store has answered, so has written, before the next check).
   * Undefined when the proxy refused it with 412.
   */
  const forwardChecked = async (
    req: IncomingMessage,
    body: Buffer,
    record: S3ProxyRecord,
    path: string,
  ): Promise<IncomingMessage | undefined> => {
    const conditional = req.headers['if-none-match'] !== undefined || req.headers['if-match'] !== undefined;
    // S3 honours both on the completion of a multipart upload too: the object appears only then.
    const writes = record.operation === 'PutObject' || record.operation === 'CompleteMultipartUpload';
    if (!proxy.enforceConditionalWrites || !writes || !conditional) {
      return forward(req, body, record);
    }
    const previous = turns.get(path) ?? Promise.resolve();
    const turn = previous.then(async () => {
      if (!(await preconditionHolds(req, path))) {
        record.preconditionFailed = true;
        return undefined;
      }
      return forward(req, body, record);
    });
    const settled = turn.catch(() => undefined);
    turns.set(path, settled);
    // Forget a path once its last turn is over, so the map holds only writes in flight.
    void settled.then(() => {
      if (turns.get(path) === settled) turns.delete(path);
    });
    return turn;
  };

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
    if (typeof action === 'object' && 'fail' in action) return s3Error(res, action.fail, action.code);
    if (typeof action === 'object') await action.after.catch(() => undefined);
    if (action === 'hold') return;
    if (action === 'flip' && body.length > 0) {
      const at = Math.floor(body.length / 2);
      body.writeUInt8(body.readUInt8(at) ^ 0xff, at);
    }
    const reply = await forwardChecked(req, body, record, url.pathname);
    if (action === 'hold-reply') {
      reply?.resume();
      return;
    }
    if (action === 'drop-reply' && reply !== undefined) {
      reply.resume();
      req.socket.destroy();
      return;
    }
    if ((action === 'break-body' || action === 'stall-body') && reply !== undefined) {
      return breakBody(reply, res, action === 'stall-body');
    }
    if (reply === undefined) {
      return s3Error(
        res,
        412,
        'PreconditionFailed',
        'At least one of the pre-conditions you specified did not hold',
      );
    }
    res.writeHead(reply.statusCode ?? 502, reply.headers);
    reply.pipe(res);
  };

  let inFlight = 0;
  const server = createServer((req, res) => {
    inFlight += 1;
    handle(req, res)
      .catch(() => {
        if (!res.headersSent) s3Error(res, 502);
        else res.destroy();
      })
      .finally(() => {
        inFlight -= 1;
      });
  });
  const listening = await listenOnLoopback(server);

  const proxy: S3Proxy = {
    url: listening.url,
    requests,
    decide: () => 'forward',
    enforceConditionalWrites: options.enforceConditionalWrites ?? false,
    async idle() {
      // Two quiet turns in a row: a request whose bytes had arrived is read and counted by then.
      for (let quiet = 0; quiet < 2; ) {
        await new Promise((resolve) => setImmediate(resolve));
        quiet = inFlight === 0 ? quiet + 1 : 0;
      }
    },
    close: () => listening.close(),
  };
  return proxy;
}
