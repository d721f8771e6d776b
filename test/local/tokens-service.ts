/**
 * A local imitation of the remote tokens service (see /work/shared/seeds), served over real HTTP.
 *
 * Used by end-to-end tests, benchmarks and `npm start`. File contents are generated on the fly from
 * (line id, file name) by a counter-based generator, so files of any size are streamed without being held
 * in memory, and their bytes are reproducible for assertions.
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  createServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** States of a production line that a {@link LineSpec} can ask for. */
export type LineStatus = 'requested' | 'started' | 'finished';

/** Description of a production line to create in the simulator. */
export interface LineSpec {
  /** Defaults to `crypto.randomUUID()`. */
  id?: string;
  status: LineStatus;
  /** `none` gives one file (`data`), `metrics` four (`data`, `score`, `analysis`, `delta`). Default `none`. */
  analysis?: 'none' | 'metrics';
  /** Bytes of each file, default 4096. */
  fileSize?: number;
  /** Per-file size override; keys outside the line's default files add extra files. */
  fileSizes?: Record<string, number>;
  /** Cosmetic attributes. */
  alphabet?: string;
  digits?: string;
  /** A finished line: how long ago it finished (its whole history is moved back by this). */
  finishedAgoMs?: number;
  /** A finished line: `timestamps.finished` exactly as served, instead of the real time (e.g. unparseable). */
  finishedStamp?: string;
}

/** A line as the simulator holds it; `files` is filled once the line is finished and kept after deletion. */
export interface SimLine {
  id: string;
  status: LineStatus | 'deleted';
  analysis: 'none' | 'metrics';
  /** What the line states now: each file's size and hash (`content` seeds its bytes, default the name). */
  files: Map<string, { size: number; sha256: string; content?: string }>;
  /** Every version ever stated for each file name, oldest first (a line can change its mind). */
  history: Map<string, { size: number; sha256: string }[]>;
}

/**
 * Which kind of request a fault applies to: the list, the single-line GET (not its `requested`/`started`
 * snapshots), a file download, or a DELETE.
 */
export type FaultTarget = 'list' | 'get' | 'file' | 'delete';

/** A misbehaviour to inject into one reply. */
export type Fault =
  | { kind: 'status'; status: number; retryAfterSeconds?: number }
  | { kind: 'truncate' }
  | { kind: 'reset' }
  | { kind: 'corrupt' }
  | { kind: 'stall' }
  | { kind: 'oversize'; extraBytes: number }
  | { kind: 'never-ends' }
  | { kind: 'bad-json' }
  | { kind: 'wrong-content-type' }
  | { kind: 'delete-lost' }
  /**
   * DELETE only: answer `status` (200, 202, 204 or 410) with `body` ('none', the usual document, or
   * the document of another line id); `acts` says whether the line is deleted now (202: later, by
   * `completeDeletion`).
   */
  | { kind: 'delete-reply'; status: number; acts: boolean; body: 'none' | 'document' | 'other-id' }
  /** Serves the body at `chunkBytes` every `everyMs` (a body that trickles, never stalls). */
  | { kind: 'trickle'; chunkBytes: number; everyMs: number };

/**
 * A fault with its scope. `id`/`file` narrow the match when given. A fault is only consumed by a request
 * that would otherwise have succeeded (authorised, existing line/file).
 */
export interface FaultRule {
  target: FaultTarget;
  id?: string;
  file?: string;
  fault: Fault;
  /** Default 1; `Infinity` = always. */
  times?: number;
}

/** One request the simulator received. `status` is 0 when no reply was sent (e.g. `delete-lost`). */
export interface RequestRecord {
  method: string;
  /** Path including the query string, as sent. */
  path: string;
  sessionKey: string | undefined;
  status: number;
  at: number;
}

/** Options of {@link startTokensService}. */
export interface TokensServiceOptions {
  sessionKey: string;
  lines?: LineSpec[];
  /** Paginate the list (`?page=N`, 1-based, `links.next`) when set. */
  pageSize?: number;
  /** Default `127.0.0.1`. */
  host?: string;
}

/** Handle on a running simulator. */
export interface TokensService {
  /** E.g. `http://127.0.0.1:PORT`, without trailing slash. */
  readonly url: string;
  /** Every line ever added, deleted ones included (status `deleted`). */
  readonly lines: ReadonlyMap<string, SimLine>;
  readonly requests: readonly RequestRecord[];
  addLine(spec: LineSpec): SimLine;
  /** Moves a line to another state; moving to `finished` generates and hashes its files. */
  setStatus(id: string, status: LineStatus): void;
  /** The exact correct bytes of a file (held in memory: keep it for small files). */
  fileBytes(id: string, name: string): Buffer;
  /** Faults are consumed in order of injection, each `times` times. */
  inject(rule: FaultRule): void;
  /** Forgets every fault not yet consumed. */
  clearFaults(): void;
  setSessionKey(key: string): void;
  /** Replaces/adds links in the single-line reply (e.g. pointing at another origin). */
  setLinkOverride(id: string, links: Record<string, string>): void;
  /** Raw (possibly malformed) items appended to the list's data array, after the real lines. */
  setRawListItems(items: unknown[]): void;
  /** Serves this raw document for `GET /api/tokens/{id}`, whether or not the line exists. */
  setRawLine(id: string, doc: unknown): void;
  /** How many DELETEs were received for the id, whatever their outcome (401s included). */
  deleteCount(id: string): number;
  /** The line now states other bytes for `name` (another size and hash), as a service changing its mind. */
  restateFile(id: string, name: string, size?: number): void;
  /** The line now states one more file. */
  addFile(id: string, name: string, size: number): void;
  /** Deletes a line now (a 202's deferred deletion). */
  completeDeletion(id: string): void;
  /** Called with each request's method and path before it is handled (to change a line mid-run). */
  onRequest(hook: ((method: string, path: string) => void) | undefined): void;
  /**
   * Like {@link onRequest}, called after it; a promise it returns holds the request until it settles
   * (to look at the archive at the very moment a DELETE arrives, before the line is deleted).
   */
  beforeRequest(hook: ((method: string, path: string) => Promise<void> | undefined) | undefined): void;
  /** The line states one file fewer (dropped from its statement; its history keeps it). */
  dropFile(id: string, name: string): void;
  /** Serves the line again as it is, after {@link setRawLine}. */
  clearRawLine(id: string): void;
  /** Resolves once no request is being handled (a killed client's last requests included). */
  idle(): Promise<void>;
  /** The status a deleted or unknown line answers on GET (404 by default; 410 Gone). */
  setGoneStatus(status: 404 | 410): void;
  /** Echo the id as the request spelled it (upper case), as a case-insensitive service may. */
  setEchoRequestedId(echo: boolean): void;
  /** Adds an attribute to the single-line reply as raw JSON text (e.g. nested a million levels deep). */
  setRawAttribute(id: string, name: string, json: string): void;
  /** A `meta` object the line's DELETE replies carry (e.g. echoing a header back). */
  setDeleteReplyMeta(id: string, meta: Record<string, unknown>): void;
  /** Closes the server and destroys every open socket, stalled ones included. */
  close(): Promise<void>;
}

const JSON_API = 'application/vnd.api+json';
/** Write unit of streamed bodies; the server waits for 'drain' between chunks when the client is slow. */
const CHUNK = 64 * 1024;
/** Larger unit for hashing: fewer calls, still constant memory. */
const HASH_CHUNK = 1024 * 1024;
const DEFAULT_FILE_SIZE = 4096;
const NONE_FILES = ['data'] as const;
const METRICS_FILES = ['data', 'score', 'analysis', 'delta'] as const;
const SNAPSHOTS = new Set<string>(['requested', 'started']);
/** Time to let a client read what was flushed before the connection is reset (an RST discards unread data). */
const RESET_DELAY_MS = 50;

const ALPHABET_SIZES: Record<string, number> = {
  DICE: 6,
  DIGITS: 10,
  HEX: 16,
  LOWER_VOWELS: 5,
  UPPER_VOWELS: 5,
  LOWER_LATIN: 26,
  UPPER_LATIN: 26,
  LATIN: 52,
  ALPHANUMERIC: 62,
};

/** Whether Uint32Array stores words little-endian, so that the fast path matches the defined content. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * The deterministic content of one file: little-endian 32-bit words, word `i` being a keyed bijective mix of
 * `i` (seeded by a SHA-256 of line id and file name). Any range can be generated in place, which keeps
 * streaming free of allocations: garbage buffers would pile up as external memory until V8 collects them.
 */
class FileContent {
  readonly #a: number;
  readonly #b: number;

  constructor(id: string, name: string) {
    const seed = createHash('sha256').update(`tokens-sim\0${id}\0${name}`).digest();
    this.#a = seed.readUInt32LE(0);
    this.#b = seed.readUInt32LE(4);
  }

  #word(i: number): number {
    let x = (i ^ this.#a) >>> 0;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d);
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b);
    x ^= x >>> 16;
    x ^= this.#b;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d);
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b);
    x ^= x >>> 16;
    return x >>> 0;
  }

  /** Fills `target` with the file's bytes from byte `offset` on. */
  fill(target: Buffer, offset: number): void {
    let done = 0;
    if (LITTLE_ENDIAN && offset % 4 === 0 && target.byteOffset % 4 === 0) {
      const words = new Uint32Array(target.buffer, target.byteOffset, target.length >>> 2);
      const first = offset / 4;
      // Inlined copy of #word: this loop is the simulator's hot path.
      const a = this.#a;
      const b = this.#b;
      for (let i = 0; i < words.length; i++) {
        let x = ((first + i) ^ a) >>> 0;
        x ^= x >>> 16;
        x = Math.imul(x, 0x7feb352d);
        x ^= x >>> 15;
        x = Math.imul(x, 0x846ca68b);
        x ^= x >>> 16;
        x ^= b;
        x ^= x >>> 16;
        x = Math.imul(x, 0x7feb352d);
        x ^= x >>> 15;
        x = Math.imul(x, 0x846ca68b);
        x ^= x >>> 16;
        words[i] = x;
      }
      done = words.length * 4;
    }
    for (let j = done; j < target.length; j++) {
      const at = offset + j;
      target.writeUInt8((this.#word(Math.floor(at / 4)) >>> (8 * (at % 4))) & 0xff, j);
    }
  }
}

/** Sequential reader of a reply body; past `size` it keeps producing filler bytes forever. */
interface BodySource {
  readonly size: number;
  position: number;
  /** Between 1 and `n` (<= CHUNK) bytes, which the caller may modify. */
  read(n: number): Buffer;
  /** Hands back a chunk from `read` once the socket is done with it. */
  release(chunk: Buffer): void;
}

/** Chunks are recycled once written, so a transfer of any length uses a handful of buffers. */
function fileSource(id: string, name: string, size: number): BodySource {
  const content = new FileContent(id, name);
  return contentSource(content, size);
}

function contentSource(content: FileContent, size: number): BodySource {
  const free: ArrayBuffer[] = [];
  return {
    size,
    position: 0,
    read(n) {
      const chunk = Buffer.from(free.pop() ?? new ArrayBuffer(CHUNK), 0, n);
      content.fill(chunk, this.position);
      this.position += n;
      return chunk;
    },
    release(chunk) {
      if (chunk.buffer instanceof ArrayBuffer && chunk.buffer.byteLength === CHUNK) free.push(chunk.buffer);
    },
  };
}

const SPACES = Buffer.alloc(CHUNK, 0x20);

/** Filler is spaces: an oversized JSON body stays valid JSON, so only a size cap can stop the client. */
function bufferSource(buf: Buffer): BodySource {
  return {
    size: buf.length,
    position: 0,
    read(n) {
      const start = this.position;
      const out =
        start < buf.length ? buf.subarray(start, Math.min(buf.length, start + n)) : SPACES.subarray(0, n);
      this.position += out.length;
      return out;
    },
    release() {
      // Slices of a per-reply buffer: nothing to recycle.
    },
  };
}

/** One scratch buffer for hashing: hashing is synchronous, so it is never shared between two calls. */
const HASH_SCRATCH = Buffer.from(new ArrayBuffer(HASH_CHUNK));

function hashFile(id: string, name: string, size: number): string {
  const content = new FileContent(id, name);
  const hash = createHash('sha256');
  for (let offset = 0; offset < size; offset += HASH_CHUNK) {
    const chunk = HASH_SCRATCH.subarray(0, Math.min(HASH_CHUNK, size - offset));
    content.fill(chunk, offset);
    hash.update(chunk);
  }
  return hash.digest('hex');
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function errorDoc(status: number): Buffer {
  return Buffer.from(
    JSON.stringify({ errors: [{ status: String(status), title: STATUS_CODES[status] ?? 'Error' }] }),
  );
}

/** Resolves on 'drain' or when the response is gone, whichever comes first. */
function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Writes a chunk and resolves once it has been handed to the OS (or the response is gone). */
function writeFlushed(res: ServerResponse, chunk: Buffer, written: () => void): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('close', done);
      resolve();
    };
    res.on('close', done);
    res.write(chunk, () => {
      written();
      done();
    });
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Streams `count` bytes (may be Infinity) of `body` with backpressure; the last chunk is awaited until
 * flushed so that a following socket destroy does not drop it. Flips the byte at `corruptAt` when in range.
 */
async function pump(res: ServerResponse, body: BodySource, count: number, corruptAt = -1): Promise<void> {
  let left = count;
  while (left > 0 && !res.destroyed) {
    const start = body.position;
    const chunk = body.read(Math.min(CHUNK, left));
    if (corruptAt >= start && corruptAt < start + chunk.length) {
      const at = corruptAt - start;
      chunk.writeUInt8(chunk.readUInt8(at) ^ 0xff, at);
    }
    left -= chunk.length;
    // The write callback fires once the socket no longer needs the bytes: only then may they be reused.
    const written = (): void => body.release(chunk);
    if (left <= 0) {
      await writeFlushed(res, chunk, written);
    } else if (!res.write(chunk, written)) {
      await drainOrClose(res);
    }
  }
}

interface LineState {
  readonly sim: SimLine;
  readonly seed: string;
  readonly paymentId: string;
  readonly paymentIdent: string;
  readonly alphabet: string;
  readonly digits: string;
  readonly size: bigint;
  readonly total: bigint;
  readonly rate: number;
  readonly progress: number;
  readonly plannedFiles: ReadonlyMap<string, number>;
  times: { requested: number; started?: number; ended?: number; analyzed?: number; finished?: number };
  /** Set when deleted: the state the line had, and when. */
  deleted?: { from: LineStatus; at: number };
}

interface ActiveRule {
  readonly rule: FaultRule;
  left: number;
}

type Reply = { status: number; headers: OutgoingHttpHeaders; body: BodySource; chunked: boolean };

function jsonReply(status: number, doc: unknown, extra: OutgoingHttpHeaders = {}): Reply {
  return {
    status,
    headers: { 'content-type': JSON_API, 'cache-control': 'no-cache', ...extra },
    body: bufferSource(typeof doc === 'string' ? Buffer.from(doc) : Buffer.from(JSON.stringify(doc))),
    // The real service (nginx) answers JSON with Transfer-Encoding: chunked.
    chunked: true,
  };
}

function errorReply(status: number, extra: OutgoingHttpHeaders = {}): Reply {
  return {
    status,
    headers: { 'content-type': JSON_API, 'cache-control': 'no-cache', ...extra },
    body: bufferSource(errorDoc(status)),
    chunked: true,
  };
}

function validSize(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${what} must be a non-negative integer, got ${n}`);
  return n;
}

class Simulator implements TokensService {
  url = '';
  readonly #lines = new Map<string, SimLine>();
  readonly #states = new Map<string, LineState>();
  readonly #requests: RequestRecord[] = [];
  readonly #faults: ActiveRule[] = [];
  readonly #deletes = new Map<string, number>();
  readonly #linkOverrides = new Map<string, Record<string, string>>();
  readonly #rawLines = new Map<string, unknown>();
  readonly #sockets = new Set<Socket>();
  readonly #server = createServer((req, res) => {
    this.#inFlight += 1;
    this.#handle(req, res)
      .catch(() => {
        // A bug in the simulator must not crash the test process: report it as a 500 when still possible.
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': JSON_API }).end(errorDoc(500));
        } else {
          res.destroy();
        }
      })
      .finally(() => {
        this.#inFlight -= 1;
      });
  });
  #rawListItems: unknown[] = [];
  #onRequest: ((method: string, path: string) => void) | undefined;
  #beforeRequest: ((method: string, path: string) => Promise<void> | undefined) | undefined;
  #inFlight = 0;
  #goneStatus: 404 | 410 = 404;
  #echoRequestedId = false;
  readonly #rawAttributes = new Map<string, Record<string, string>>();
  readonly #deleteReplyMeta = new Map<string, Record<string, unknown>>();
  readonly #finishedStamps = new Map<string, string>();
  #sessionKey: string;
  readonly #pageSize: number | undefined;

  constructor(opts: TokensServiceOptions) {
    this.#sessionKey = opts.sessionKey;
    if (opts.pageSize !== undefined && (!Number.isSafeInteger(opts.pageSize) || opts.pageSize < 1)) {
      throw new Error(`pageSize must be a positive integer, got ${opts.pageSize}`);
    }
    this.#pageSize = opts.pageSize;
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  get lines(): ReadonlyMap<string, SimLine> {
    return this.#lines;
  }

  get requests(): readonly RequestRecord[] {
    return this.#requests;
  }

  listen(host: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, host, () => {
        this.#server.off('error', reject);
        const { address, port } = this.#server.address() as AddressInfo;
        this.url = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
        resolve();
      });
    });
  }

  addLine(spec: LineSpec): SimLine {
    const id = spec.id ?? randomUUID();
    if (this.#lines.has(id)) throw new Error(`line ${id} already exists`);
    const analysis = spec.analysis ?? 'none';
    const alphabet = spec.alphabet ?? 'DICE';
    const digits = spec.digits ?? '5';
    if (!/^\d{1,5}$/.test(digits)) throw new Error(`digits must be a decimal string, got ${digits}`);
    const total = BigInt(ALPHABET_SIZES[alphabet] ?? 26) ** BigInt(digits);
    const defaultSize = validSize(spec.fileSize ?? DEFAULT_FILE_SIZE, 'fileSize');
    const plannedFiles = new Map<string, number>();
    for (const name of analysis === 'metrics' ? METRICS_FILES : NONE_FILES) {
      plannedFiles.set(name, defaultSize);
    }
    for (const [name, size] of Object.entries(spec.fileSizes ?? {})) {
      plannedFiles.set(name, validSize(size, `fileSizes.${name}`));
    }
    const idHash = createHash('sha256').update(id).digest();
    const sim: SimLine = { id, status: 'requested', analysis, files: new Map(), history: new Map() };
    const state: LineState = {
      sim,
      seed: randomUUID(),
      paymentId: randomUUID(),
      paymentIdent: `pi_${idHash.toString('hex').slice(0, 24)}`,
      alphabet,
      digits,
      size: total <= 10_000n ? total : 1000n,
      total,
      rate: 3000 + (idHash.readUInt16BE(0) % 7000),
      progress: 1 + (idHash.readUInt8(2) % 99),
      plannedFiles,
      times: { requested: Date.now() },
    };
    this.#lines.set(id, sim);
    this.#states.set(id, state);
    this.#moveTo(state, spec.status, true);
    if (spec.finishedAgoMs !== undefined) {
      const ago = validSize(spec.finishedAgoMs, 'finishedAgoMs');
      const t = state.times;
      state.times = {
        requested: t.requested - ago,
        ...(t.started === undefined ? {} : { started: t.started - ago }),
        ...(t.ended === undefined ? {} : { ended: t.ended - ago }),
        ...(t.analyzed === undefined ? {} : { analyzed: t.analyzed - ago }),
        ...(t.finished === undefined ? {} : { finished: t.finished - ago }),
      };
    }
    if (spec.finishedStamp !== undefined) this.#finishedStamps.set(id, spec.finishedStamp);
    return sim;
  }

  setStatus(id: string, status: LineStatus): void {
    const state = this.#states.get(id);
    if (!state) throw new Error(`unknown line ${id}`);
    if (state.deleted) throw new Error(`line ${id} is deleted`);
    this.#moveTo(state, status, false);
  }

  /** Sets the status and plausible timestamps; a line created directly as finished gets a short history. */
  #moveTo(state: LineState, status: LineStatus, backdate: boolean): void {
    const now = Date.now();
    const { times } = state;
    if (status === 'requested') {
      state.times = { requested: backdate ? now : times.requested };
    } else if (status === 'started') {
      state.times = { requested: times.requested, started: now };
      if (backdate) state.times.requested = now - 200;
    } else {
      // Seeds order them: requested < started < ended < analyzed (metrics only) < finished.
      const started = backdate ? now - 7800 : (times.started ?? now);
      const ended = Math.max(started, now - 10);
      state.times = {
        requested: backdate ? now - 8000 : Math.min(times.requested, started),
        started,
        ended,
        finished: now,
      };
      if (state.sim.analysis === 'metrics') state.times.analyzed = Math.max(ended, now - 5);
    }
    state.sim.status = status;
    if (status === 'finished') {
      if (state.sim.files.size === 0) {
        for (const [name, size] of state.plannedFiles) {
          this.#state(state, name, size, name);
        }
      }
    } else {
      state.sim.files.clear();
    }
  }

  fileBytes(id: string, name: string): Buffer {
    const file = this.#lines.get(id)?.files.get(name);
    if (!file) throw new Error(`no file ${name} for line ${id}`);
    const bytes = Buffer.from(new ArrayBuffer(file.size));
    new FileContent(id, file.content ?? name).fill(bytes, 0);
    return bytes;
  }

  /** Sets what the line states for one file, and remembers it in the file's history. */
  #state(state: LineState, name: string, size: number, content: string): void {
    const sha256 = hashFile(state.sim.id, content, size);
    state.sim.files.set(name, { size, sha256, content });
    const versions = state.sim.history.get(name) ?? [];
    versions.push({ size, sha256 });
    state.sim.history.set(name, versions);
  }

  restateFile(id: string, name: string, size?: number): void {
    const state = this.#states.get(id);
    const file = state?.sim.files.get(name);
    if (!state || !file) throw new Error(`no file ${name} for line ${id}`);
    const version = state.sim.history.get(name)?.length ?? 1;
    this.#state(state, name, size ?? file.size, `${name}#v${version + 1}`);
  }

  addFile(id: string, name: string, size: number): void {
    const state = this.#states.get(id);
    if (state?.sim.status !== 'finished') throw new Error(`line ${id} is not finished`);
    this.#state(state, name, validSize(size, 'size'), name);
  }

  completeDeletion(id: string): void {
    const state = this.#liveState(id);
    if (!state) throw new Error(`line ${id} is not live`);
    state.deleted = { from: state.sim.status as LineStatus, at: Date.now() };
    state.sim.status = 'deleted';
  }

  onRequest(hook: ((method: string, path: string) => void) | undefined): void {
    this.#onRequest = hook;
  }

  beforeRequest(hook: ((method: string, path: string) => Promise<void> | undefined) | undefined): void {
    this.#beforeRequest = hook;
  }

  dropFile(id: string, name: string): void {
    const state = this.#states.get(id);
    if (!state?.sim.files.delete(name)) throw new Error(`no file ${name} for line ${id}`);
  }

  clearRawLine(id: string): void {
    this.#rawLines.delete(id);
  }

  async idle(): Promise<void> {
    // Two quiet turns in a row: a request whose bytes had arrived is read and counted by then.
    for (let quiet = 0; quiet < 2; ) {
      await new Promise((resolve) => setImmediate(resolve));
      quiet = this.#inFlight === 0 ? quiet + 1 : 0;
    }
  }

  setGoneStatus(status: 404 | 410): void {
    this.#goneStatus = status;
  }

  setEchoRequestedId(echo: boolean): void {
    this.#echoRequestedId = echo;
  }

  setDeleteReplyMeta(id: string, meta: Record<string, unknown>): void {
    this.#deleteReplyMeta.set(id, meta);
  }

  setRawAttribute(id: string, name: string, json: string): void {
    this.#rawAttributes.set(id, { ...this.#rawAttributes.get(id), [name]: json });
  }

  inject(rule: FaultRule): void {
    const times = rule.times ?? 1;
    if (!(times > 0)) throw new Error(`times must be positive, got ${times}`);
    this.#faults.push({ rule, left: times });
  }

  clearFaults(): void {
    this.#faults.length = 0;
  }

  setSessionKey(key: string): void {
    this.#sessionKey = key;
  }

  setLinkOverride(id: string, links: Record<string, string>): void {
    this.#linkOverrides.set(id, { ...this.#linkOverrides.get(id), ...links });
  }

  setRawListItems(items: unknown[]): void {
    this.#rawListItems = [...items];
  }

  setRawLine(id: string, doc: unknown): void {
    this.#rawLines.set(id, doc);
  }

  deleteCount(id: string): number {
    return this.#deletes.get(id) ?? 0;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      // Stalled and never-ending replies keep their sockets busy forever: destroy them all.
      for (const socket of this.#sockets) socket.destroy();
      this.#sockets.clear();
    });
  }

  #takeFault(target: FaultTarget, id?: string, file?: string): Fault | undefined {
    const i = this.#faults.findIndex(
      ({ rule }) =>
        rule.target === target &&
        (rule.id === undefined || rule.id === id) &&
        (rule.file === undefined || rule.file === file),
    );
    const active = this.#faults[i];
    if (!active) return undefined;
    active.left -= 1;
    if (active.left <= 0) this.#faults.splice(i, 1);
    return active.rule.fault;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const rawKey = req.headers['session-key'];
    const sessionKey = Array.isArray(rawKey) ? rawKey.join(', ') : rawKey;
    const record: RequestRecord = { method, path: req.url ?? '', sessionKey, status: 0, at: Date.now() };
    this.#requests.push(record);
    res.on('error', () => {
      // The client went away mid-reply; nothing to do.
    });

    const url = new URL(req.url ?? '/', 'http://sim.invalid');
    const segments = url.pathname.split('/').slice(1);
    let parts: string[];
    try {
      parts = segments.map((s) => decodeURIComponent(s));
    } catch {
      parts = [];
    }
    this.#onRequest?.(method, req.url ?? '');
    const held = this.#beforeRequest?.(method, req.url ?? '');
    if (held !== undefined) await held;
    const [api, tokens, requestedId, sub, ...rest] = parts;
    // UUIDs are case-insensitive: the service finds a line whatever the case of the request.
    const id = requestedId === undefined ? undefined : requestedId.toLowerCase();
    const isTokens = api === 'api' && tokens === 'tokens' && rest.length === 0 && id !== '' && sub !== '';
    if (method === 'DELETE' && isTokens && id !== undefined && sub === undefined) {
      this.#deletes.set(id, this.deleteCount(id) + 1);
    }

    // Every path, even an unknown one, requires the key: that is what the real service does first.
    if (sessionKey !== this.#sessionKey) return this.#send(req, res, record, errorReply(401));
    if (!isTokens) return this.#send(req, res, record, errorReply(404));

    if (method === 'GET' && id === undefined) return this.#list(req, res, record, url);
    if (id === undefined) return this.#send(req, res, record, errorReply(405, { allow: 'GET' }));
    if (sub === undefined) {
      if (method === 'GET') return this.#getLine(req, res, record, id, requestedId ?? id);
      if (method === 'DELETE') return this.#delete(req, res, record, id);
      return this.#send(req, res, record, errorReply(405, { allow: 'GET, DELETE' }));
    }
    if (method !== 'GET') return this.#send(req, res, record, errorReply(405, { allow: 'GET' }));
    return this.#getSub(req, res, record, id, sub);
  }

  #liveState(id: string): LineState | undefined {
    const state = this.#states.get(id);
    return state && !state.deleted ? state : undefined;
  }

  async #list(req: IncomingMessage, res: ServerResponse, record: RequestRecord, url: URL): Promise<void> {
    const items: unknown[] = [];
    for (const state of this.#states.values()) {
      if (!state.deleted) items.push(this.#resource(state, state.sim.status as LineStatus, false));
    }
    items.push(...this.#rawListItems);
    const links: Record<string, string> = { self: '/api/tokens' };
    let data = items;
    if (this.#pageSize !== undefined) {
      const pageParam = url.searchParams.get('page') ?? '1';
      if (!/^[1-9]\d{0,8}$/.test(pageParam)) return this.#send(req, res, record, errorReply(400));
      const page = Number(pageParam);
      data = items.slice((page - 1) * this.#pageSize, page * this.#pageSize);
      if (url.searchParams.has('page')) links.self = `/api/tokens?page=${page}`;
      if (page * this.#pageSize < items.length) links.next = `/api/tokens?page=${page + 1}`;
    }
    return this.#send(req, res, record, jsonReply(200, { links, data }), this.#takeFault('list'));
  }

  async #getLine(
    req: IncomingMessage,
    res: ServerResponse,
    record: RequestRecord,
    id: string,
    requestedId: string,
  ): Promise<void> {
    if (this.#rawLines.has(id)) {
      // `undefined` cannot be serialised: serve it as an empty body, another hostile case.
      const text = JSON.stringify(this.#rawLines.get(id)) ?? '';
      return this.#send(req, res, record, jsonReply(200, text), this.#takeFault('get', id));
    }
    const state = this.#liveState(id);
    if (!state) return this.#send(req, res, record, errorReply(this.#goneStatus));
    const status = state.sim.status as LineStatus;
    const links: Record<string, string> = { self: '/api/tokens', info: `/api/tokens/${id}` };
    if (status === 'finished') links.data = `/api/tokens/${id}/data`;
    Object.assign(links, this.#linkOverrides.get(id));
    const data = this.#resource(state, status, true);
    if (this.#echoRequestedId) data.id = requestedId;
    let text = JSON.stringify({ meta: { seed: state.seed }, links, data });
    for (const [name, json] of Object.entries(this.#rawAttributes.get(id) ?? {})) {
      // Spliced in as text: the simulator itself must not walk a value nested too deep to serialize.
      text = text.replace('"attributes":{', `"attributes":{${JSON.stringify(name)}:${json},`);
    }
    return this.#send(req, res, record, jsonReply(200, text), this.#takeFault('get', id));
  }

  async #getSub(
    req: IncomingMessage,
    res: ServerResponse,
    record: RequestRecord,
    id: string,
    sub: string,
  ): Promise<void> {
    const state = this.#liveState(id);
    if (!state) return this.#send(req, res, record, errorReply(404));
    if (SNAPSHOTS.has(sub)) {
      const view = sub as 'requested' | 'started';
      if (view === 'started' && state.times.started === undefined) {
        return this.#send(req, res, record, errorReply(404));
      }
      const doc = {
        meta: { seed: state.seed },
        links: { self: '/api/tokens', info: `/api/tokens/${id}` },
        data: this.#resource(state, view, false, true),
      };
      return this.#send(req, res, record, jsonReply(200, doc));
    }
    const file = state.sim.status === 'finished' ? state.sim.files.get(sub) : undefined;
    if (!file) return this.#send(req, res, record, errorReply(404));
    const reply: Reply = {
      status: 200,
      headers: { 'content-type': 'application/octet-stream', 'cache-control': 'no-cache' },
      body: fileSource(id, file.content ?? sub, file.size),
      chunked: false,
    };
    return this.#send(req, res, record, reply, this.#takeFault('file', id, sub));
  }

  async #delete(req: IncomingMessage, res: ServerResponse, record: RequestRecord, id: string): Promise<void> {
    const state = this.#liveState(id);
    if (!state) return this.#send(req, res, record, errorReply(this.#goneStatus));
    const fault = this.#takeFault('delete', id);
    // A refusal (status) or an interposed HTML page means the service never acted; any other fault damages
    // the reply of a deletion that did happen.
    const acts =
      fault?.kind === 'delete-reply'
        ? fault.acts
        : fault?.kind !== 'status' && fault?.kind !== 'wrong-content-type';
    if (acts) {
      state.deleted = { from: state.sim.status as LineStatus, at: Date.now() };
      state.sim.status = 'deleted';
    }
    const data = this.#resource(state, 'deleted', true);
    const extra = this.#deleteReplyMeta.get(id);
    const meta = extra === undefined ? {} : { meta: extra };
    if (fault?.kind === 'delete-reply') {
      if (fault.body === 'other-id') data.id = randomUUID();
      const reply =
        fault.body === 'none'
          ? { status: fault.status, headers: {}, body: bufferSource(Buffer.alloc(0)), chunked: false }
          : jsonReply(fault.status, { ...meta, links: { self: `/api/tokens/${id}` }, data });
      return this.#send(req, res, record, reply);
    }
    const doc = { ...meta, links: { self: `/api/tokens/${id}` }, data };
    return this.#send(req, res, record, jsonReply(200, doc), fault);
  }

  /** The JSON:API resource object of a line, as seen in the given state. */
  #resource(
    state: LineState,
    view: LineStatus | 'deleted',
    withHashes: boolean,
    snapshot = false,
  ): Record<string, unknown> {
    const shown = view === 'deleted' ? (state.deleted?.from ?? 'finished') : view;
    const { times } = state;
    const base = {
      status: view,
      analysis: state.sim.analysis,
      alphabet: state.alphabet,
      digits: state.digits,
      size: String(state.size),
    };
    let attributes: Record<string, unknown>;
    if (shown === 'finished') {
      const filesizes: Record<string, number> = {};
      const filehashes: Record<string, string> = {};
      for (const [name, f] of state.sim.files) {
        filesizes[name] = f.size;
        filehashes[name] = f.sha256;
      }
      const timestamps: Record<string, string> = {
        requested: iso(times.requested),
        started: iso(times.started ?? times.requested),
        ended: iso(times.ended ?? times.requested),
      };
      if (times.analyzed !== undefined) timestamps.analyzed = iso(times.analyzed);
      timestamps.finished = this.#finishedStamps.get(state.sim.id) ?? iso(times.finished ?? times.requested);
      attributes = {
        ...base,
        rate: state.rate,
        reachable: '0',
        available: '0',
        partial: false,
        checksum: '0'.repeat(70),
        filesizes,
        ...(withHashes ? { filehashes } : {}),
        timestamps,
      };
    } else {
      const available = String(state.total > state.size ? state.total - state.size : 0n);
      const reachable = String(state.total < 10_485n ? state.total : 10_485n);
      attributes = { ...base, reachable, available };
      if (shown === 'started') {
        // A started snapshot is the line at the moment it started: no progress yet.
        attributes.progress = snapshot ? 0 : state.progress;
        attributes.timestamps = {
          requested: iso(times.requested),
          started: iso(times.started ?? times.requested),
        };
      } else {
        attributes.timestamps = { requested: iso(times.requested) };
      }
    }
    if (state.deleted) {
      (attributes.timestamps as Record<string, string>).deleted = iso(state.deleted.at);
    }
    return {
      id: state.sim.id,
      type: 'tokens',
      attributes,
      relationships: {
        payment: { data: { id: state.paymentId, ident: state.paymentIdent, type: 'transaction' } },
      },
    };
  }

  /** Sends a reply, distorted by `fault` when given. */
  async #send(
    req: IncomingMessage,
    res: ServerResponse,
    record: RequestRecord,
    reply: Reply,
    fault?: Fault,
  ): Promise<void> {
    let { status, headers, body, chunked } = reply;
    switch (fault?.kind) {
      case 'status': {
        const extra: OutgoingHttpHeaders = {};
        if (fault.retryAfterSeconds !== undefined) extra['retry-after'] = String(fault.retryAfterSeconds);
        ({ status, headers, body, chunked } = errorReply(fault.status, extra));
        break;
      }
      case 'bad-json': {
        // A cut-off document plus a stray '<': never parseable, whatever the original was.
        const cut = body.read(Math.min(CHUNK, Math.max(1, Math.floor(body.size / 2))));
        body = bufferSource(Buffer.concat([cut, Buffer.from(' <not json>')]));
        break;
      }
      case 'wrong-content-type':
        status = 200;
        headers = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' };
        body = bufferSource(
          Buffer.from(
            '<!DOCTYPE html><html><head><title>Sign in</title></head><body><h1>Sign in</h1></body></html>',
          ),
        );
        break;
      case 'delete-lost':
        req.socket.destroy();
        return;
      default:
        break;
    }

    const size = body.size;
    const open = fault?.kind === 'oversize' || fault?.kind === 'never-ends';
    if (
      !open &&
      (!chunked || fault?.kind === 'truncate' || fault?.kind === 'reset' || fault?.kind === 'stall')
    ) {
      headers = { ...headers, 'content-length': String(size) };
    }
    record.status = status;
    res.writeHead(status, headers);

    switch (fault?.kind) {
      case 'truncate':
        await this.#partial(res, body, Math.floor(size / 2));
        req.socket.destroy();
        return;
      case 'reset':
        await this.#partial(res, body, Math.floor(size / 2));
        await delay(RESET_DELAY_MS);
        if (!req.socket.destroyed) req.socket.resetAndDestroy();
        return;
      case 'stall':
        // Left open on purpose: only the client giving up, or close(), ends it.
        await this.#partial(res, body, Math.min(Math.floor(size / 2), CHUNK));
        return;
      case 'oversize':
        await pump(res, body, size + fault.extraBytes);
        break;
      case 'never-ends':
        await pump(res, body, Number.POSITIVE_INFINITY);
        return;
      case 'corrupt':
        await pump(res, body, size, size > 0 ? Math.floor(size / 2) : -1);
        break;
      case 'trickle':
        for (let left = size; left > 0 && !res.destroyed; left -= fault.chunkBytes) {
          await pump(res, body, Math.min(fault.chunkBytes, left));
          await delay(fault.everyMs);
        }
        break;
      default:
        await pump(res, body, size);
        break;
    }
    if (!res.destroyed) res.end();
  }

  /** Sends headers and `count` body bytes, making sure they have left the process. */
  async #partial(res: ServerResponse, body: BodySource, count: number): Promise<void> {
    if (count > 0) {
      await pump(res, body, count);
    } else {
      res.flushHeaders();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

/** Starts a simulator on an OS-assigned port of `opts.host` (default 127.0.0.1). */
export async function startTokensService(opts: TokensServiceOptions): Promise<TokensService> {
  const sim = new Simulator(opts);
  for (const spec of opts.lines ?? []) sim.addLine(spec);
  await sim.listen(opts.host ?? '127.0.0.1');
  return sim;
}

/** A realistic mix of lines, cycling: requested, started, finished (none), finished (metrics). */
export function mixedLines(count: number, opts: { fileSize?: number } = {}): LineSpec[] {
  const kinds: LineSpec[] = [
    { status: 'requested', alphabet: 'UPPER_VOWELS', digits: '100' },
    { status: 'started', alphabet: 'UPPER_VOWELS', digits: '100' },
    { status: 'finished', analysis: 'none', alphabet: 'LOWER_LATIN', digits: '3' },
    { status: 'finished', analysis: 'metrics', alphabet: 'DICE', digits: '5' },
  ];
  return Array.from({ length: count }, (_, i) => {
    const kind = kinds[i % kinds.length] as LineSpec;
    return opts.fileSize === undefined ? { ...kind } : { ...kind, fileSize: opts.fileSize };
  });
}
