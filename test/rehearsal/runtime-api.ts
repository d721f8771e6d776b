import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small stand-in for the AWS Lambda Runtime API
 * (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html), enough to run a deployed
 * bundle under the real `aws-lambda-ric`: point AWS_LAMBDA_RUNTIME_API at `address`, then
 * `invoke()` events one at a time, as the platform does for one execution environment.
 */

export interface Invocation {
  requestId: string;
  deadlineMs: number;
  functionArn: string;
  traceId: string;
}

export type InvocationResult =
  | { kind: 'response'; body: unknown; invocation: Invocation }
  | { kind: 'error'; errorType: string; errorMessage: string; body: unknown; invocation: Invocation }
  | { kind: 'timeout'; invocation: Invocation } // the platform's side: no answer by the deadline
  | { kind: 'init-error'; errorType: string; errorMessage: string; body: unknown };

export type InitErrorResult = InvocationResult & { kind: 'init-error' };

export interface InvokeOptions {
  timeoutMs: number;
  requestId?: string;
  /** Called when the deadline passes unanswered: the caller kills the process, as Lambda does. */
  onTimeout?: () => void;
}

/** Something the emulator was asked to do that it cannot. */
export class RuntimeApiError extends Error {
  override readonly name: string = 'RuntimeApiError';
}

/** invoke() was given a request id that is still queued or in flight. */
export class DuplicateRequestIdError extends RuntimeApiError {
  override readonly name = 'DuplicateRequestIdError';
  constructor(readonly requestId: string) {
    super(`invoke(): request id ${requestId} is already queued or in flight`);
  }
}

/** close() ran while an invocation had no result yet; it never will. */
export class RuntimeApiClosedError extends RuntimeApiError {
  override readonly name = 'RuntimeApiClosedError';
  constructor(readonly requestId: string) {
    super(`the Runtime API closed before invocation ${requestId} was answered`);
  }
}

const PREFIX = '/2018-06-01/runtime';
const NEXT = `${PREFIX}/invocation/next`;
const INIT_ERROR = `${PREFIX}/init/error`;
const ANSWER = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/;
const DEFAULT_ARN = 'arn:aws:lambda:us-east-1:123456789012:function:rehearsal';

interface Pending {
  readonly invocation: Invocation;
  readonly event: unknown;
  readonly timer: NodeJS.Timeout;
  readonly resolve: (result: InvocationResult) => void;
  readonly reject: (error: Error) => void;
}

export class RuntimeApi {
  readonly address: string;
  readonly initError: Promise<InitErrorResult>;

  /** Invocations not yet handed to a poll, oldest first. */
  readonly #queue: Pending[] = [];
  /** Every invocation without a result yet, queued or handed out, by request id. */
  readonly #pending = new Map<string, Pending>();
  /** `next` requests held open until an invocation arrives, oldest first. */
  readonly #polls: ServerResponse[] = [];
  #pollCount = 0;
  #initResult: InitErrorResult | undefined;
  #resolveInitError!: (result: InitErrorResult) => void;
  #closed = false;

  private constructor(
    private readonly server: Server,
    private readonly functionArn: string,
  ) {
    const { port } = server.address() as AddressInfo;
    this.address = `127.0.0.1:${port}`;
    this.initError = new Promise((resolve) => {
      this.#resolveInitError = resolve;
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.#route(req, res));
  }

  static async start(options: { functionArn?: string } = {}): Promise<RuntimeApi> {
    // The runtime client keeps one connection alive between polls; let idle ones live long.
    const server = createServer({ keepAliveTimeout: 60_000 });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new RuntimeApi(server, options.functionArn ?? DEFAULT_ARN);
  }

  /** How many times `next` was polled: a warm process polls again after each answer. */
  get polls(): number {
    return this.#pollCount;
  }

  /**
   * Queues an event; resolves when the function answers, errors, reports an init error, or the
   * deadline passes (then calls onTimeout). The deadline runs from this call, as on Lambda. Once
   * an init error has been reported the runtime is taken as dead: a later invoke() resolves with
   * that init error at once. Rejects with RuntimeApiClosedError if close() runs first.
   */
  invoke(event: unknown, options: InvokeOptions): Promise<InvocationResult> {
    if (this.#closed) return Promise.reject(new RuntimeApiError('invoke(): the Runtime API is closed'));
    if (this.#initResult) return Promise.resolve(this.#initResult);
    const requestId = options.requestId ?? randomUUID();
    if (this.#pending.has(requestId)) return Promise.reject(new DuplicateRequestIdError(requestId));

    return new Promise<InvocationResult>((resolve, reject) => {
      const invocation: Invocation = {
        requestId,
        deadlineMs: Date.now() + options.timeoutMs,
        functionArn: this.functionArn,
        traceId: traceId(),
      };
      const timer = setTimeout(() => {
        this.#settle(requestId, { kind: 'timeout', invocation });
        options.onTimeout?.();
      }, options.timeoutMs);
      const pending: Pending = { invocation, event, timer, resolve, reject };
      this.#pending.set(requestId, pending);
      this.#queue.push(pending);
      this.#dispatch();
    });
  }

  /** Stops listening, ends held polls and every connection, and clears all timers. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new RuntimeApiClosedError(pending.invocation.requestId));
    }
    this.#pending.clear();
    this.#queue.length = 0;
    for (const poll of this.#polls.splice(0)) poll.destroy();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  #route(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === NEXT) {
      this.#pollCount += 1;
      this.#polls.push(res);
      // A client that gives up on its poll must not be handed an invocation it will never see.
      res.on('close', () => {
        const index = this.#polls.indexOf(res);
        if (index >= 0) this.#polls.splice(index, 1);
      });
      this.#dispatch();
      return;
    }
    if (req.method === 'POST' && path === INIT_ERROR) {
      void readBody(req).then(
        ({ body, errorType, errorMessage }) => {
          const result: InitErrorResult = { kind: 'init-error', errorType, errorMessage, body };
          accepted(res);
          this.#reportInitError(result);
        },
        () => res.destroy(),
      );
      return;
    }
    const answer = req.method === 'POST' ? ANSWER.exec(path ?? '') : null;
    if (answer?.[1] && answer[2]) {
      const requestId = decodeURIComponent(answer[1]);
      const kind = answer[2];
      void readBody(req).then(
        ({ body, errorType, errorMessage }) => {
          const pending = this.#pending.get(requestId);
          // Only an invocation handed out by `next` and not yet settled may be answered.
          if (!pending || this.#queue.includes(pending)) {
            // The real API answers 400 InvalidRequestID for an id it is not waiting on: unknown,
            // already answered, or timed out (aws-lambda-runtime-interface-emulator, rendering.go).
            json(res, 400, { errorMessage: 'Invalid request ID', errorType: 'InvalidRequestID' });
            return;
          }
          accepted(res);
          const invocation = pending.invocation;
          this.#settle(
            requestId,
            kind === 'response'
              ? { kind: 'response', body, invocation }
              : { kind: 'error', errorType, errorMessage, body, invocation },
          );
        },
        () => res.destroy(),
      );
      return;
    }
    req.resume();
    json(res, 404, { errorMessage: `no such route: ${req.method} ${path}`, errorType: 'NotFound' });
  }

  /** Hands queued invocations to held polls, oldest to oldest. */
  #dispatch(): void {
    while (this.#queue.length > 0 && this.#polls.length > 0) {
      const pending = this.#queue.shift() as Pending;
      const poll = this.#polls.shift() as ServerResponse;
      const { requestId, deadlineMs, functionArn, traceId } = pending.invocation;
      const body = JSON.stringify(pending.event) ?? 'null';
      poll.writeHead(200, {
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(body),
        'Lambda-Runtime-Aws-Request-Id': requestId,
        'Lambda-Runtime-Deadline-Ms': String(deadlineMs),
        'Lambda-Runtime-Invoked-Function-Arn': functionArn,
        'Lambda-Runtime-Trace-Id': traceId,
      });
      poll.end(body);
    }
  }

  #settle(requestId: string, result: InvocationResult): void {
    const pending = this.#pending.get(requestId);
    if (!pending) return;
    this.#pending.delete(requestId);
    clearTimeout(pending.timer);
    const queued = this.#queue.indexOf(pending);
    if (queued >= 0) this.#queue.splice(queued, 1);
    pending.resolve(result);
  }

  #reportInitError(result: InitErrorResult): void {
    if (this.#initResult) return;
    this.#initResult = result;
    this.#resolveInitError(result);
    for (const requestId of [...this.#pending.keys()]) this.#settle(requestId, result);
  }
}

interface PostedBody {
  /** The body parsed as JSON, or its text when it is not JSON. */
  body: unknown;
  errorType: string;
  errorMessage: string;
}

/** Reads a posted body; errorType comes from the body, else the Lambda-Runtime-Function-Error-Type header. */
async function readBody(req: IncomingMessage): Promise<PostedBody> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: keep the text, as Lambda passes any payload through.
  }
  const fields = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  const header = req.headers['lambda-runtime-function-error-type'];
  const errorType =
    typeof fields.errorType === 'string' ? fields.errorType : typeof header === 'string' ? header : 'Unknown';
  const errorMessage = typeof fields.errorMessage === 'string' ? fields.errorMessage : '';
  return { body, errorType, errorMessage };
}

function accepted(res: ServerResponse): void {
  json(res, 202, { status: 'OK' });
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** An X-Ray trace header in the shape Lambda passes: Root=1-<epoch hex>-<24 hex>;Parent=<16 hex>;Sampled=0. */
function traceId(): string {
  const epoch = Math.floor(Date.now() / 1000).toString(16);
  return `Root=1-${epoch}-${randomBytes(12).toString('hex')};Parent=${randomBytes(8).toString('hex')};Sampled=0`;
}
