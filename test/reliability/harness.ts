import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';
import type { Manifest, Receipt } from '../../lambda/archive/archive.ts';
import type { Summary } from '../../lambda/core/types.ts';
import { VARIABLES } from '../../lambda/shared/environment.ts';
import { type LocalStack, type LocalStackOptions, startLocalStack } from '../local/stack.ts';
import type { Fault, FaultRule, LineSpec, TokensService } from '../local/tokens-service.ts';
import { objectJson } from '../support/archive-inspect.ts';
import { type ChildResult, childEnded, summaryOf } from '../support/child-output.ts';
import { listenOnLoopback } from '../support/loopback.ts';
import { type S3Proxy, type S3ProxyOptions, startS3Proxy } from './s3-proxy.ts';

/** The project root: the CLI runs from here, as `npm run housekeep` does. */
export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Closable {
  close(): Promise<void>;
}

/**
 * Registers an `afterEach` that closes everything handed to `track` (servers, stacks, child
 * processes), in reverse order, whatever the test's outcome.
 */
export function closeAfterEach(): <T extends Closable>(closable: T) => T {
  const open: Closable[] = [];
  afterEach(async () => {
    const closing = open.splice(0).reverse();
    const failures: unknown[] = [];
    for (const closable of closing) {
      // One that fails to close must not leave the others open.
      await closable.close().catch((error: unknown) => failures.push(error));
    }
    if (failures.length > 0) throw new AggregateError(failures, 'closing after the test failed');
  });
  return (closable) => {
    open.push(closable);
    return closable;
  };
}

type Track = ReturnType<typeof closeAfterEach>;

/** A local stack for one scenario, closed after the test. */
export async function localStack(track: Track, options: LocalStackOptions = {}): Promise<LocalStack> {
  return track(await startLocalStack(options));
}

/** The id of the only line of a stack started with one. */
export function onlyLine(lines: ReadonlyMap<string, unknown>): string {
  const [id] = [...lines.keys()];
  if (id === undefined) throw new Error('no line');
  return id;
}

/** The housekeeper's environment for multipart uploads of 5 MiB parts from 5 MiB on (S3's smallest). */
export const MULTIPART_5_MIB: Readonly<Record<string, string>> = {
  MULTIPART_THRESHOLD_BYTES: String(5 * 2 ** 20),
  MULTIPART_PART_SIZE_BYTES: String(5 * 2 ** 20),
};

/**
 * A body timeout (60 s) no scenario reaches: a stalled reply holds the pass where it is until a
 * kill, the run's deadline or the line's own failure ends it, never the timeout first.
 */
export const PATIENT_BODIES: Readonly<Record<string, string>> = { HTTP_BODY_TIMEOUT_MS: '60000' };

/** `count` finished lines of `fileSize` bytes each (one file, `data`). */
export function finishedLines(count: number, fileSize = 1000): LineSpec[] {
  return Array.from({ length: count }, () => ({ status: 'finished', fileSize }));
}

/**
 * A local stack with one finished line of `fileSize` bytes (1000 unless said; `lines` replaces
 * it), the id of its first line, and the path of that line's document on the service.
 */
export async function oneFinishedLine(
  track: Track,
  { fileSize = 1000, ...options }: LocalStackOptions & { readonly fileSize?: number } = {},
): Promise<{ local: LocalStack; id: string; path: string }> {
  const local = await localStack(track, { lines: finishedLines(1, fileSize), ...options });
  const [id] = [...local.tokens.lines.keys()];
  if (id === undefined) throw new Error('no line');
  return { local, id, path: `/api/tokens/${id}` };
}

/**
 * A local stack with one finished line of one file uploaded in parts: 6 MiB + 17 bytes in 5 MiB
 * parts (MULTIPART_5_MIB), with `env` besides.
 */
export function oneMultipartLine(
  track: Track,
  env: Readonly<Record<string, string>> = {},
): Promise<{ local: LocalStack; id: string; path: string }> {
  return oneFinishedLine(track, { fileSize: 6 * 2 ** 20 + 17, env: { ...MULTIPART_5_MIB, ...env } });
}

/** A local stack with two finished lines of one 1000-byte file each, and their ids. */
export async function twoFinishedLines(
  track: Track,
  options: Omit<LocalStackOptions, 'lines'> = {},
): Promise<{ local: LocalStack; ids: [string, string] }> {
  const local = await localStack(track, { lines: finishedLines(2), ...options });
  const [first, second] = [...local.tokens.lines.keys()];
  if (first === undefined || second === undefined) throw new Error('not two lines');
  return { local, ids: [first, second] };
}

/**
 * The simulator rule that answers line `id`'s DELETE with `status` and `body`, having acted on it
 * (the line is gone) or not.
 */
export function deleteReply(
  id: string,
  status: number,
  acts: boolean,
  body: Extract<Fault, { kind: 'delete-reply' }>['body'] = 'none',
): FaultRule {
  return { target: 'delete', id, fault: { kind: 'delete-reply', status, acts, body } };
}

/**
 * Line `id`'s document as the service shows it once deleted, stating the files the simulator
 * states for it now (a service that says so while the line is still there lies).
 */
export function deletedDocument(tokens: TokensService, id: string, documentId = id): unknown {
  const files = [...(tokens.lines.get(id)?.files ?? new Map()).entries()];
  return {
    links: { self: `/api/tokens/${documentId}` },
    data: {
      type: 'tokens',
      id: documentId,
      attributes: {
        status: 'deleted',
        analysis: 'none',
        filehashes: Object.fromEntries(files.map(([name, file]) => [name, file.sha256])),
        filesizes: Object.fromEntries(files.map(([name, file]) => [name, file.size])),
      },
    },
  };
}

/** The receipt the archive holds for line `id` (`deleted.json`), as stored. */
export async function storedReceipt(local: LocalStack, id: string): Promise<Partial<Receipt>> {
  return (await objectJson(local.s3Client, local.bucket, `tokens/${id}/deleted.json`)) as Partial<Receipt>;
}

/** The manifest the archive holds for line `id`, as stored. */
export async function storedManifest(local: LocalStack, id: string): Promise<Manifest> {
  return (await objectJson(local.s3Client, local.bucket, `tokens/${id}/manifest.json`)) as Manifest;
}

/** The S3 proxy in front of the stack's store, and the environment of a housekeeper that goes through it. */
export async function proxiedS3(
  track: Track,
  local: LocalStack,
  options: S3ProxyOptions = {},
): Promise<{ proxy: S3Proxy; env: Record<string, string> }> {
  const proxy = track(await startS3Proxy(local.s3.address, options));
  return { proxy, env: { ...local.env, AWS_ENDPOINT_URL_S3: proxy.url } };
}

/**
 * Polls `probe` every `intervalMs` until it returns a value other than `undefined`/`false`, for at
 * most `timeoutMs`. For readiness conditions that have no event to wait on (another process's state).
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  { timeoutMs = 10_000, intervalMs = 10 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() >= deadline)
      throw new Error(`timed out after ${timeoutMs} ms (${attempt + 1} polls) waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** One request a {@link RecordingServer} received. */
export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
}

/** A server that records every connection and request: an "evil" origin, or a silent service. */
export interface RecordingServer {
  readonly url: string;
  /** Connections the server accepted. */
  readonly connections: number;
  readonly requests: readonly RecordedRequest[];
  /** Resolves once every connection accepted so far has closed (the client let go of it). */
  allClosed(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts a loopback server on an OS-assigned port. `reply` answers each request; without it the
 * server answers 200 with a small body.
 */
export async function startRecordingServer(
  reply?: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<RecordingServer> {
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (reply !== undefined) reply(req, res);
    else res.writeHead(200, { 'content-type': 'application/octet-stream' }).end('stolen');
  });
  const listening = await listenOnLoopback(server);
  return {
    url: listening.url,
    get connections() {
      return listening.connections;
    },
    requests,
    allClosed: () => listening.allClosed(),
    close: () => listening.close(),
  };
}

/** Answers a request in place of the simulator, or returns false to let it through. */
export type Intercept = (req: IncomingMessage, res: ServerResponse) => boolean;

/**
 * A front for the simulator that forwards everything except what `intercept` answers itself;
 * `upstreamPath` maps the path of a forwarded request (e.g. to serve the simulator under `/svc`).
 */
export async function startFront(
  target: string,
  intercept: Intercept,
  options: { readonly upstreamPath?: (path: string) => string } = {},
): Promise<{ url: string; close(): Promise<void> }> {
  const upstream = new URL(target);
  const server = createServer((req, res) => {
    if (intercept(req, res)) return;
    const out = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: options.upstreamPath?.(req.url ?? '/') ?? req.url,
        headers: req.headers,
      },
      (reply) => {
        res.writeHead(reply.statusCode ?? 502, reply.headers);
        reply.pipe(res);
      },
    );
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  const { url, close } = await listenOnLoopback(server);
  return { url, close };
}

/** What the simulator answered a request that a front passed on. */
export interface ForwardedReply {
  readonly status: number;
  readonly contentType: string | null;
  readonly text: string;
}

/**
 * Sends the request on to `target` (which acts on it), then answers with `answer`, which is given
 * the simulator's reply, instead of that reply.
 */
export function forwardThen(
  target: string,
  req: IncomingMessage,
  res: ServerResponse,
  answer: (res: ServerResponse, reply: ForwardedReply) => void,
): true {
  void (async () => {
    const headers: Record<string, string> = {};
    for (const name of ['session-key', 'accept', 'content-type']) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const reply = await fetch(`${target}${req.url ?? '/'}`, { method: req.method ?? 'GET', headers });
    const text = await reply.text();
    answer(res, { status: reply.status, contentType: reply.headers.get('content-type'), text });
  })().catch(() => res.destroy());
  return true;
}

/**
 * A front for the stack's simulator that passes every DELETE on (so the service acts on it) and
 * answers it with `answer`; the environment of a housekeeper that goes through it.
 */
export async function deleteAnsweredBy(
  track: Track,
  local: LocalStack,
  answer: (res: ServerResponse) => void,
): Promise<Record<string, string>> {
  const target = local.tokens.url;
  const front = track(
    await startFront(target, (req, res) =>
      req.method === 'DELETE' ? forwardThen(target, req, res, answer) : false,
    ),
  );
  return { ...local.env, [VARIABLES.TOKENS_API_URL.name]: front.url };
}

/** How a CLI child process ended. */
export interface CliResult extends ChildResult {
  /** The summary printed on stdout, when the run got that far. */
  readonly summary: Summary | undefined;
}

/** A running `npm run housekeep` child process. */
export interface CliRun {
  readonly child: ChildProcess;
  readonly done: Promise<CliResult>;
  /** SIGKILL, as a crashed host or an OOM kill would; resolves once the process is gone. */
  kill(): Promise<CliResult>;
  close(): Promise<void>;
}

/**
 * Starts the CLI (`lambda/entries/cli.ts`, what `npm run housekeep` runs) as a child process of this Node
 * binary with tsx, so that the pid is the process that runs the pass and SIGKILL ends exactly it.
 * Logs at DEBUG, so that a leaked secret in any log line would be seen.
 */
export function startCli(env: Readonly<Record<string, string>>, args: readonly string[] = []): CliRun {
  const child = spawn(process.execPath, ['--import', 'tsx', 'lambda/entries/cli.ts', ...args], {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH ?? '', POWERTOOLS_LOG_LEVEL: 'DEBUG', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const done = childEnded(child).then((ended) => ({ ...ended, summary: summaryOf(ended.stdout) }));
  const kill = async (): Promise<CliResult> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    return done;
  };
  return {
    child,
    done,
    kill,
    async close() {
      await kill();
    },
  };
}

/** Runs the CLI to its end. */
export function runCli(
  track: Track,
  env: Readonly<Record<string, string>>,
  args: readonly string[] = [],
): Promise<CliResult> {
  return track(startCli(env, args)).done;
}
