/**
 * In-memory fakes of the core's ports (a `TokensApi` and an `Archive`), for unit tests of the
 * core. Each records what it was asked, in order, in a shared log; each implements its port, so
 * the core takes it as it is, with no cast.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Logger } from '@aws-lambda-powertools/logger';
import { loadConfig } from '../../lambda/app/config.ts';
import { ArchiveKeys } from '../../lambda/archive/keys.ts';
import type { Config, Deps, MetricsSink } from '../../lambda/core/types.ts';
import type { MetricName } from '../../lambda/shared/contract.ts';
import { ArchiveChangedError, HttpStatusError, IntegrityError } from '../../lambda/shared/errors.ts';
import type { LineFile } from '../../lambda/shared/ids.ts';
import type {
  Archive,
  StoredFile,
  UploadOptions,
  Versioned,
  WriteCondition,
} from '../../lambda/shared/ports/archive.ts';
import type {
  DeleteReply,
  FilesStatement,
  LineRead,
  ListPage,
  TokensApi,
} from '../../lambda/shared/ports/tokens.ts';
import {
  asManifest,
  type Manifest,
  type PendingMarker,
  type Receipt,
  type ReceiptWrite,
} from '../../lambda/shared/records.ts';
import { goneStatus, type JsonReply, type WireDeleteReply } from '../../lambda/tokens/api.ts';
import { readDeleteReply, readKeptReply, readLine, readListPage } from '../../lambda/tokens/document.ts';

const BASE_URL = 'https://tokens.example.com';
export const NOW = Date.parse('2026-05-01T10:00:00.000Z');

export const sha256 = (bytes: string | Buffer): string => createHash('sha256').update(bytes).digest('hex');

export const silentLogger = (): Logger => new Logger({ serviceName: 'test', logLevel: 'SILENT' });

/** A configuration as `loadConfig` reads it, with retries that do not wait. */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    TOKENS_API_URL: BASE_URL,
    SESSION_KEY_SECRET_ID: 'tokens/session-key',
    ARCHIVE_BUCKET: 'tokens-archive',
    RETRY_ATTEMPTS: '2',
    RETRY_BASE_DELAY_MS: '0',
    RETRY_MAX_DELAY_MS: '0',
    ...env,
  });
}

/** A line as the service states it: its status, its files by content, its finish time. */
export interface LineSpec {
  readonly status?: string;
  /** File name -> content; the stated hash and size are the content's. */
  readonly files?: Readonly<Record<string, string>>;
  /** `timestamps.finished`; an hour before {@link NOW} unless said. */
  readonly finishedAt?: string;
}

const DEFAULT_FILES = { data: 'the tokens of the line\n' };

function lineResource(id: string, spec: LineSpec, status: string): Record<string, unknown> {
  const files = spec.files ?? DEFAULT_FILES;
  return {
    id,
    type: 'tokens',
    attributes: {
      status,
      analysis: 'none',
      alphabet: 'base32',
      digits: '8',
      timestamps: { finished: spec.finishedAt ?? new Date(NOW - 3_600_000).toISOString() },
      ...(status === 'finished' || status === 'deleted'
        ? {
            filehashes: Object.fromEntries(Object.entries(files).map(([name, body]) => [name, sha256(body)])),
            filesizes: Object.fromEntries(
              Object.entries(files).map(([name, body]) => [name, Buffer.byteLength(body)]),
            ),
          }
        : {}),
    },
  };
}

/** The reply of `GET /api/tokens/{id}` for a line as `spec` states it. */
function lineReply(id: string, spec: LineSpec = {}): JsonReply {
  const value = { data: lineResource(id, spec, spec.status ?? 'finished') };
  const text = JSON.stringify(value);
  return { bytes: Buffer.from(text), text, value };
}

/** A DELETE reply as it comes back: a 200 with the line's document, now `deleted`, by default. */
export function deleteReply(id: string, status = 200, spec: LineSpec = {}): WireDeleteReply {
  if (status !== 200)
    return { status, contentType: '', text: '', bytes: Buffer.alloc(0), document: undefined };
  const document = { data: lineResource(id, spec, 'deleted') };
  const text = JSON.stringify(document);
  return { status, contentType: 'application/vnd.api+json', text, bytes: Buffer.from(text), document };
}

/** The tokens service's reply to a GET of a line that is not there. */
export function notFound(id: string, status = 404): HttpStatusError {
  return new HttpStatusError(`answered ${status}`, {
    method: 'GET',
    url: `${BASE_URL}/api/tokens/${id}`,
    status,
    retryable: false,
  });
}

type Scripted<T> = T | Error;

/**
 * The {@link TokensApi} port over scripted replies: each line answers its scripted replies in
 * turn, the last one repeated. Replies are scripted as they come back from the service and read
 * by the tokens adapter's own readers, so the core sees what it would see.
 */
class FakeTokens implements TokensApi {
  readonly #log: string[];
  readonly #lines = new Map<string, Scripted<JsonReply>[]>();
  readonly #rewrites = new Map<string, (reply: JsonReply) => JsonReply>();
  readonly #deletes = new Map<string, Scripted<WireDeleteReply>[]>();
  /** The last state of each line served by `getLine`: a DELETE reply states its files by default. */
  readonly #lastServed = new Map<string, LineSpec>();
  readonly #specs = new Map<JsonReply, LineSpec>();
  readonly #contents = new Map<string, Buffer>();
  /** Bodies served whatever the line states (`serve`). */
  readonly #served = new Map<string, Buffer>();
  readonly #openFailures = new Map<string, Error>();
  readonly #pages: unknown[] = [];
  /** Files opened for download, by name, in order. */
  readonly opened: string[] = [];

  constructor(log: string[]) {
    this.#log = log;
  }

  /**
   * What `GET /api/tokens/{id}` answers, call after call; the files of each state are served (the
   * last state's, until a read serves a state: then that state's, as a service that changed).
   */
  line(id: string, ...states: (LineSpec | Error)[]): this {
    this.#lines.set(
      id,
      states.map((state) => {
        if (state instanceof Error) return state;
        this.#serveFiles(id, state);
        const reply = lineReply(id, state);
        this.#specs.set(reply, state);
        return reply;
      }),
    );
    return this;
  }

  /** Serves every reply of `GET /api/tokens/{id}` as `rewrite` makes it (its text, say). */
  rewrite(id: string, rewrite: (reply: JsonReply) => JsonReply): this {
    this.#rewrites.set(id, rewrite);
    return this;
  }

  /** What `DELETE /api/tokens/{id}` answers, call after call. */
  onDelete(id: string, ...replies: Scripted<WireDeleteReply>[]): this {
    this.#deletes.set(id, replies);
    return this;
  }

  /** Serves `body` for a file instead of the stated content (a corrupt download). */
  serve(id: string, name: string, body: string): this {
    this.#served.set(`${id}/${name}`, Buffer.from(body));
    return this;
  }

  /** Makes the download of a file fail with `error`. */
  failOpen(name: string, error: Error): this {
    this.#openFailures.set(name, error);
    return this;
  }

  /** The pages of `GET /api/tokens`: lines by id and status, plus raw items. */
  listPages(
    ...pages: { readonly lines: readonly (readonly [string, string])[]; readonly raw?: unknown[] }[]
  ) {
    pages.forEach((page, index) => {
      this.#pages.push({
        data: [
          ...page.lines.map(([id, status]) => ({ id, type: 'tokens', attributes: { status } })),
          ...(page.raw ?? []),
        ],
        links: index + 1 < pages.length ? { next: `${BASE_URL}/api/tokens?page=${index + 1}` } : {},
      });
    });
    return this;
  }

  async listPage(next?: string): Promise<ListPage> {
    this.#log.push('listPage');
    const index = next === undefined ? 0 : Number(new URL(next).searchParams.get('page'));
    return readListPage(this.#pages[index] ?? { data: [], links: {} });
  }

  async getLine(
    id: string,
    options: { readonly signal?: AbortSignal; readonly urgent?: boolean } = {},
  ): Promise<LineRead> {
    // An urgent read (the one a DELETE rests on, or confirms it) goes before others under a cap.
    this.#log.push(options.urgent === true ? 'getLine urgent' : 'getLine');
    let reply: JsonReply;
    try {
      reply = next(this.#lines.get(id), () => notFound(id));
    } catch (error) {
      const status = goneStatus(error);
      if (status !== undefined) return { kind: 'gone', status };
      throw error;
    }
    const spec = this.#specs.get(reply);
    if (spec !== undefined) {
      this.#lastServed.set(id, spec);
      this.#serveFiles(id, spec);
    }
    const served = this.#rewrites.get(id)?.(reply) ?? reply;
    return { kind: 'read', ...readLine(served.value, id, served.bytes) };
  }

  async deleteLine(id: string): Promise<DeleteReply> {
    this.#log.push('deleteLine');
    return readDeleteReply(
      id,
      next(this.#deletes.get(id), () => deleteReply(id, 200, this.#lastServed.get(id))),
    );
  }

  readKeptReply(id: string, body: string): FilesStatement | undefined {
    return readKeptReply(id, body);
  }

  fileUrl(lineId: string, file: LineFile): URL {
    return new URL(`${BASE_URL}/api/tokens/${lineId}/${file.name}`);
  }

  /** The files `openFile` serves for the line from now on: those `state` states. */
  #serveFiles(id: string, state: LineSpec): void {
    for (const [name, body] of Object.entries(state.files ?? DEFAULT_FILES)) {
      this.#contents.set(`${id}/${name}`, Buffer.from(body));
    }
  }

  async openFile(url: URL, _signal?: AbortSignal): Promise<Readable> {
    const [, , , id = '', name = ''] = url.pathname.split('/');
    this.#log.push(`openFile ${name}`);
    this.opened.push(name);
    const failure = this.#openFailures.get(name);
    if (failure !== undefined) throw failure;
    const body = this.#served.get(`${id}/${name}`) ?? this.#contents.get(`${id}/${name}`);
    if (body === undefined) throw notFound(id);
    return Readable.from([body]);
  }
}

/** The next scripted answer (the last one repeats), or `otherwise` when none is scripted; errors are thrown. */
function next<T>(script: Scripted<T>[] | undefined, otherwise: () => Scripted<T>): T {
  let answer: Scripted<T> | undefined = script?.length === 1 ? script[0] : script?.shift();
  answer ??= otherwise();
  if (answer instanceof Error) throw answer;
  return answer;
}

/** One object of the fake bucket: its bytes and the SHA-256 its upload recorded (none: not ours). */
interface StoredObject {
  readonly bytes: Buffer;
  readonly recorded: { readonly size: number; readonly sha256: string } | undefined;
  /** `"etag-N"`, a new one at each write. */
  readonly version: string;
  readonly modified: Date;
}

/** The {@link Archive} port over an in-memory bucket, with the real key layout. */
export class FakeArchive extends ArchiveKeys implements Archive {
  readonly bucket = 'tokens-archive';
  readonly objects = new Map<string, StoredObject>();
  /** Every upload, with the key and condition it was made with. */
  readonly uploads: { readonly name: string; readonly key: string; readonly condition?: WriteCondition }[] =
    [];
  readonly #log: string[];
  #etags = 0;

  constructor(log: string[] = [], prefix = 'tokens/') {
    super(prefix);
    this.#log = log;
  }

  /** Stores `body` at `key` as this tool's upload would: recorded with its own hash, unless said. */
  put(key: string, body: string | Buffer, recorded?: { size: number; sha256: string } | 'unrecorded'): this {
    const bytes = Buffer.from(body);
    this.objects.set(key, {
      bytes,
      recorded:
        recorded === 'unrecorded' ? undefined : (recorded ?? { size: bytes.length, sha256: sha256(bytes) }),
      version: `"etag-${++this.#etags}"`,
      modified: new Date(NOW),
    });
    return this;
  }

  putJson(key: string, value: unknown): this {
    return this.put(key, JSON.stringify(value));
  }

  json(key: string): unknown {
    const object = this.objects.get(key);
    return object === undefined ? undefined : JSON.parse(object.bytes.toString('utf8'));
  }

  manifest(lineId: string): Manifest | undefined {
    return asManifest(this.json(this.manifestKey(lineId)), lineId);
  }

  async inspect(key: string): Promise<StoredFile> {
    const object = this.objects.get(key);
    if (object === undefined) return { kind: 'missing' };
    if (object.recorded === undefined) return { kind: 'unrecorded', version: object.version };
    if (object.recorded.size !== object.bytes.length || object.recorded.sha256 !== sha256(object.bytes)) {
      return {
        kind: 'damaged',
        recorded: object.recorded,
        problem: 'does not hash to its record',
        version: object.version,
      };
    }
    return { kind: 'verified', recorded: object.recorded, version: object.version };
  }

  async uploadVerified(
    lineId: string,
    file: LineFile,
    body: Readable,
    options: UploadOptions = {},
  ): Promise<void> {
    const key = options.key ?? this.fileKey(lineId, file.name);
    this.#log.push(`uploadVerified ${file.name}`);
    this.uploads.push({
      name: file.name,
      key,
      ...(options.condition ? { condition: options.condition } : {}),
    });
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(Buffer.from(chunk as Uint8Array));
    const bytes = Buffer.concat(chunks);
    if (bytes.length !== file.size || sha256(bytes) !== file.sha256) {
      throw new IntegrityError(
        lineId,
        file.name,
        file,
        { size: bytes.length, sha256: sha256(bytes) },
        'hash differs',
      );
    }
    // As S3 judges a conditional write: when the object is complete, against what is there then.
    if (options.condition !== undefined && !this.holds(key, options.condition)) {
      throw new ArchiveChangedError(key, 'changed by another pass while this one uploaded it; planned again');
    }
    this.put(key, bytes);
  }

  async lineObjects(lineId: string): Promise<ReadonlySet<string>> {
    const folder = this.lineKey(lineId);
    return new Set(
      [...this.objects.keys()].filter((key) => key.startsWith(folder)).map((key) => key.slice(folder.length)),
    );
  }

  async readManifest(lineId: string): Promise<Manifest | undefined> {
    return this.manifest(lineId);
  }

  async readManifestForUpdate(
    lineId: string,
  ): Promise<{ readonly manifest: Manifest | undefined; readonly version: string } | undefined> {
    const object = this.objects.get(this.manifestKey(lineId));
    if (object === undefined) return undefined;
    return { manifest: this.manifest(lineId), version: object.version };
  }

  async writeManifest(manifest: Manifest, over: WriteCondition): Promise<boolean> {
    this.#log.push('writeManifest');
    return this.putJsonIf(this.manifestKey(manifest.lineId), manifest, over);
  }

  async writeReceipt(receipt: Receipt): Promise<ReceiptWrite> {
    this.#log.push('writeReceipt');
    this.putJson(this.receiptKey(receipt.lineId), receipt);
    return 'written';
  }

  async hasReceipt(lineId: string): Promise<boolean> {
    return this.objects.has(this.receiptKey(lineId));
  }

  async receiptRunId(lineId: string): Promise<string | null | undefined> {
    const receipt = this.json(this.receiptKey(lineId)) as { runId?: unknown } | undefined;
    if (receipt === undefined) return undefined;
    return typeof receipt.runId === 'string' ? receipt.runId : null;
  }

  async writePendingMarker(marker: PendingMarker): Promise<void> {
    this.#log.push('writePendingMarker');
    this.putJson(this.pendingMarkerKey(marker.lineId), marker);
  }

  async readPendingMarker(lineId: string): Promise<PendingMarker | undefined> {
    return this.json(this.pendingMarkerKey(lineId)) as PendingMarker | undefined;
  }

  async amendPendingMarker(
    lineId: string,
    amend: (marker: PendingMarker) => PendingMarker,
  ): Promise<'amended' | 'absent'> {
    const marker = await this.readPendingMarker(lineId);
    if (marker === undefined) return 'absent';
    this.#log.push('amendPendingMarker');
    this.putJson(this.pendingMarkerKey(lineId), amend(marker));
    return 'amended';
  }

  async pendingLineIds(): Promise<string[]> {
    this.#log.push('pendingLineIds');
    const folder = `${this.prefix}_pending/`;
    return [...this.objects.keys()]
      .filter((key) => key.startsWith(folder))
      .map((key) => key.slice(folder.length, -'.json'.length))
      .filter((id) => !this.objects.has(this.receiptKey(id)));
  }

  async writeRunReport(runId: string, started: Date, report: unknown): Promise<string> {
    this.#log.push('writeRunReport');
    const key = this.runReportKey(runId, started);
    this.putJson(key, report);
    return key;
  }

  async lineIds(): Promise<string[]> {
    const ids = new Set<string>();
    for (const key of this.objects.keys()) {
      const [id] = key.slice(this.prefix.length).split('/');
      if (id !== undefined && !id.startsWith('_')) ids.add(id);
    }
    return [...ids].sort();
  }

  async storedDigest(key: string): Promise<{ size: number; sha256: string } | undefined> {
    const object = this.objects.get(key);
    return object === undefined ? undefined : { size: object.bytes.length, sha256: sha256(object.bytes) };
  }

  async openObject(key: string): Promise<Readable | undefined> {
    const object = this.objects.get(key);
    return object === undefined ? undefined : Readable.from([object.bytes]);
  }

  /** The JSON at `key` with its version, as the archive's `...ForUpdate` reads return it. */
  jsonWithVersion(key: string): Versioned<unknown> | undefined {
    const object = this.objects.get(key);
    if (object === undefined) return undefined;
    try {
      return { value: JSON.parse(object.bytes.toString('utf8')) as unknown, version: object.version };
    } catch {
      return { value: undefined, version: object.version };
    }
  }

  /** A conditional JSON write as a store judges it: false when the condition does not hold. */
  putJsonIf(key: string, value: unknown, over: WriteCondition): boolean {
    const allowed = this.holds(key, over);
    if (allowed) this.putJson(key, value);
    return allowed;
  }

  /** Whether a write under `over` may replace what `key` holds now. */
  holds(key: string, over: WriteCondition): boolean {
    const existing = this.objects.get(key);
    return 'mustNotExist' in over ? existing === undefined : existing?.version === over.mustMatch;
  }

  async readLineRecordForUpdate(
    runId: string,
    planned: Date,
    lineId: string,
  ): Promise<Versioned<unknown> | undefined> {
    return this.jsonWithVersion(this.lineRecordKey(runId, planned, lineId));
  }

  async writeLineRecordIf(
    runId: string,
    planned: Date,
    lineId: string,
    record: unknown,
    over: WriteCondition,
  ): Promise<boolean> {
    this.#log.push('writeLineRecordIf');
    return this.putJsonIf(this.lineRecordKey(runId, planned, lineId), record, over);
  }

  async readQueuedMarkerForUpdate(lineId: string): Promise<Versioned<unknown> | undefined> {
    return this.jsonWithVersion(this.queuedMarkerKey(lineId));
  }

  async writeQueuedMarkerIf(
    lineId: string,
    marker: { readonly runId: string; readonly at: string },
    over: WriteCondition,
  ): Promise<boolean> {
    this.#log.push('writeQueuedMarkerIf');
    return this.putJsonIf(this.queuedMarkerKey(lineId), { lineId, ...marker }, over);
  }

  async queuedMarkers(): Promise<Map<string, Date>> {
    return this.#under(`${this.prefix}_queued/`, (name) => name.slice(0, -'.json'.length));
  }

  async writePlan(runId: string, started: Date, plan: unknown): Promise<string> {
    const key = this.planKey(runId, started);
    this.putJson(key, plan);
    return key;
  }

  async archivedLines(): Promise<Map<string, number>> {
    const lines = new Map<string, number>();
    for (const [key, object] of this.objects) {
      const [id, file] = key.slice(this.prefix.length).split('/');
      if (id === undefined || id.startsWith('_') || (file !== 'manifest.json' && file !== 'deleted.json'))
        continue;
      lines.set(id, Math.max(lines.get(id) ?? 0, object.modified.getTime()));
    }
    return lines;
  }

  async drillReportKeys(): Promise<string[]> {
    return [...this.objects.keys()]
      .filter((key) => key.startsWith(this.drillsFolder))
      .sort()
      .reverse();
  }

  async readJson(key: string): Promise<unknown> {
    return this.jsonWithVersion(key)?.value;
  }

  async writeDrillReport(drillId: string, started: Date, report: unknown): Promise<string> {
    const key = this.drillReportKey(drillId, started);
    this.putJson(key, report);
    return key;
  }

  /** The objects directly under `folder`, by the name `idOf` gives them, with when they were stored. */
  #under(folder: string, idOf: (name: string) => string): Map<string, Date> {
    const found = new Map<string, Date>();
    for (const [key, object] of this.objects) {
      if (key.startsWith(folder)) found.set(idOf(key.slice(folder.length)), object.modified);
    }
    return found;
  }
}

/** A metrics sink that remembers each metric added, in order. */
export function recordingMetrics(): MetricsSink & {
  readonly added: { name: MetricName; unit: string; value: number }[];
  value(name: MetricName): number | undefined;
} {
  const added: { name: MetricName; unit: string; value: number }[] = [];
  return {
    added,
    addMetric(name, unit, value) {
      added.push({ name, unit, value });
    },
    value: (name) => added.find((metric) => metric.name === name)?.value,
  };
}

/** Fakes wired as the core's {@link Deps}: each implements its port, so none is cast. */
export function fakeDeps(options: { readonly prefix?: string; readonly now?: () => number } = {}) {
  const log: string[] = [];
  const tokens = new FakeTokens(log);
  const archive = new FakeArchive(log, options.prefix);
  const metrics = recordingMetrics();
  const deps: Deps = {
    archive,
    tokens: () => tokens,
    now: options.now ?? (() => NOW),
    logger: silentLogger(),
    metrics,
  };
  return { deps, tokens, archive, metrics, log };
}
