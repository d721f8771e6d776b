/**
 * Watches one run from the servers' side: fires the schedule's triggers at their requests, injects
 * its store faults, kills the CLI at its point, and, at the moment each DELETE arrives (before the
 * service acts on it), looks in the store for every file the line states then.
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import type { S3ProxyAction, S3ProxyRequest } from '../reliability/s3-proxy.ts';
import { applyChange, type RawLines } from './changes.ts';
import type { ObjectKind, RunStep, Schedule, StoreAction, StoreFault } from './schedule.ts';
import { digestOf } from './store-read.ts';
import { PREFIX, type Stage } from './world.ts';

/** What the store held for a line at the moment its DELETE arrived. */
export interface DeleteMoment {
  readonly id: string;
  /** The line was still there (not a DELETE of a line already gone). */
  readonly live: boolean;
  /** The line's statement changed since the housekeeper last read it (a change at the DELETE itself). */
  readonly race: boolean;
  /** Stated files the store lacked, or held unverified; empty when all were there. */
  readonly problems: readonly string[];
  /** The files the line stated when the DELETE arrived ({@link filesOf}); '' when not live. */
  readonly files: string;
}

const ACTIONS: Record<StoreAction, S3ProxyAction> = {
  'fail-500': { fail: 500 },
  'fail-503': { fail: 503, code: 'SlowDown' },
  'refuse-403': { fail: 403, code: 'AccessDenied' },
  'fail-412': { fail: 412, code: 'PreconditionFailed' },
  'drop-reply': 'drop-reply',
  'break-body': 'break-body',
  flip: 'flip',
};

interface Counters {
  get: number;
  file: number;
  delete: number;
  /** Requests of the line to the service and to the store. */
  total: number;
}

/** The object kind and line id of a store key. */
export function objectOf(key: string): { kind: ObjectKind; id?: string } {
  if (key === '') return { kind: 'listing' };
  const rest = key.startsWith(PREFIX) ? key.slice(PREFIX.length) : key;
  const [head = '', name = '', ...more] = rest.split('/');
  if (head === '_pending' || head === '_queued') return { kind: 'marker', id: name.replace(/\.json$/, '') };
  if (head === '_runs') {
    const record = more.length > 0 ? more[more.length - 1]?.replace(/\.json$/, '') : undefined;
    return record === undefined ? { kind: 'report' } : { kind: 'report', id: record };
  }
  if (name === 'manifest.json') return { kind: 'manifest', id: head };
  if (name === 'deleted.json') return { kind: 'receipt', id: head };
  if (name.startsWith('line.sha256-')) return { kind: 'document', id: head };
  return { kind: 'file', id: head };
}

/** A line's status and files as one comparable text. */
export function statement(
  status: string,
  files: Iterable<{ name: unknown; size: unknown; sha256: unknown }>,
): string {
  return `${status}|${[...files]
    .map((f) => `${String(f.name)}:${String(f.size)}:${String(f.sha256)}`)
    .sort()
    .join(',')}`;
}

/** The files a line states now, as one comparable text (its status left out). */
export function filesOf(stage: Stage, id: string): string {
  return statement(
    '',
    [...(stage.tokens.lines.get(id)?.files ?? [])].map(([name, f]) => ({ name, ...f })),
  );
}

function signature(stage: Stage, id: string): string {
  const line = stage.tokens.lines.get(id);
  if (line === undefined) return 'unknown';
  return statement(
    line.status,
    [...line.files].map(([name, f]) => ({ name, ...f })),
  );
}

export class RunObserver {
  readonly moments: Promise<DeleteMoment>[] = [];
  /** Store faults applied, by action. */
  readonly storeFaults = new Map<StoreAction, number>();
  /** A store fault hit a receipt or a pending marker: the run may rightly have none. */
  recordsBroken = false;
  /** A store fault hit a run report or a fan-out line record: the run's own account may be short. */
  reportsBroken = false;
  /** Keys of the writes the store was made to flip. */
  readonly flipped = new Set<string>();
  killed = false;
  /** The triggers that fired and changed the service, as `at {kind}: {change}`. */
  readonly changed: string[] = [];
  readonly #stage: Stage;
  readonly #schedule: Schedule;
  readonly #step: RunStep;
  readonly #raw: RawLines;
  readonly #onKill: (() => void) | undefined;
  readonly #counters = new Map<string, Counters>();
  readonly #fired = new Set<number>();
  readonly #matched = new Map<StoreFault, number>();
  readonly #lastServed = new Map<string, string>();
  /** Every statement ({@link signature}) of each line a GET served this run. */
  readonly #served = new Map<string, Set<string>>();
  /**
   * Fan-out with several workers: a line can be read by one worker and deleted by another, so the
   * read before a DELETE is not necessarily the last one served.
   */
  readonly #concurrent: boolean;
  readonly #index: Map<string, number>;

  constructor(stage: Stage, schedule: Schedule, step: RunStep, raw: RawLines, onKill?: () => void) {
    this.#stage = stage;
    this.#schedule = schedule;
    this.#step = step;
    this.#raw = raw;
    this.#onKill = onKill;
    this.#index = new Map(schedule.lines.map((line, i) => [line.id, i]));
    this.#concurrent = schedule.mode === 'fanout' && (step.delivery?.workers ?? 1) > 1;
  }

  install(): void {
    this.#stage.tokens.beforeRequest((method, path) => this.#onService(method, path));
    this.#stage.proxy.decide = (request) => this.#onStore(request);
  }

  uninstall(): void {
    this.#stage.tokens.beforeRequest(undefined);
    this.#stage.proxy.decide = () => 'forward';
  }

  #count(id: string, kind?: 'get' | 'file' | 'delete'): Counters {
    const counters = this.#counters.get(id) ?? { get: 0, file: 0, delete: 0, total: 0 };
    this.#counters.set(id, counters);
    counters.total += 1;
    if (kind !== undefined) counters[kind] += 1;
    const kill = this.#step.kill;
    if (
      kill !== undefined &&
      !this.killed &&
      this.#index.get(id) === kill.line &&
      counters.total === kill.nth
    ) {
      this.killed = true;
      this.#onKill?.();
    }
    return counters;
  }

  #onService(method: string, path: string): Promise<void> | undefined {
    const match = /^\/api\/tokens\/([^/?]+)(?:\/([^/?]+))?(?:\?.*)?$/.exec(path);
    if (match === null) return undefined;
    const id = decodeURIComponent(match[1] ?? '').toLowerCase();
    const sub = match[2];
    const line = this.#index.get(id);
    if (line === undefined) return undefined;
    const kind =
      method === 'DELETE' && sub === undefined
        ? 'delete'
        : method === 'GET' && sub === undefined
          ? 'get'
          : method === 'GET' && sub !== 'requested' && sub !== 'started'
            ? 'file'
            : undefined;
    const counters = this.#count(id, kind);
    if (kind === undefined) return undefined;
    for (const [i, trigger] of this.#step.triggers.entries()) {
      const { at } = trigger;
      if (this.#fired.has(i) || at.line !== line || at.kind !== kind || counters[kind] !== at.nth) continue;
      this.#fired.add(i);
      if (applyChange(this.#stage, this.#schedule, trigger.change, this.#raw)) {
        this.changed.push(`at ${at.kind}: ${trigger.change.kind}`);
      }
    }
    if (kind === 'get' && !this.#raw.has(id)) {
      const served = signature(this.#stage, id);
      this.#lastServed.set(id, served);
      this.#served.set(id, (this.#served.get(id) ?? new Set()).add(served));
    }
    if (kind !== 'delete') return undefined;
    const now = signature(this.#stage, id);
    const seen = this.#lastServed.get(id);
    const moment = this.#inspect(id, seen !== undefined && seen !== now);
    this.moments.push(moment);
    return moment.then(() => undefined);
  }

  /**
   * Every file the line states now: a manifest entry, and bytes in the store that hash to it.
   * `race`: the statement changed since the last read; with workers side by side, also when the
   * manifest states what some read served (the worker that sent the DELETE may have read that).
   */
  async #inspect(id: string, changed: boolean): Promise<DeleteMoment> {
    const line = this.#stage.tokens.lines.get(id);
    if (line === undefined || line.status === 'deleted')
      return { id, live: false, race: false, problems: [], files: '' };
    // As the DELETE found it: another worker's read may change the line while the store is read.
    const stated = new Map(line.files);
    const now = signature(this.#stage, id);
    const files = filesOf(this.#stage, id);
    let race = changed;
    const problems: string[] = [];
    if (line.status !== 'finished') problems.push(`the line is ${line.status}, not finished`);
    const client = this.#stage.world.s3Client;
    let entries: { name?: unknown; key?: unknown; size?: unknown; sha256?: unknown }[] = [];
    try {
      const reply = await client.send(
        new GetObjectCommand({ Bucket: this.#stage.bucket, Key: `${PREFIX}${id}/manifest.json` }),
      );
      const manifest = JSON.parse((await reply.Body?.transformToString('utf8')) ?? 'null') as {
        files?: typeof entries;
      };
      entries = Array.isArray(manifest?.files) ? manifest.files : [];
      const archived = statement('finished', entries as { name: unknown; size: unknown; sha256: unknown }[]);
      if (this.#concurrent && archived !== now && this.#served.get(id)?.has(archived)) race = true;
    } catch {
      problems.push('no readable manifest');
    }
    for (const [name, file] of stated) {
      const entry = entries.find((e) => e.name === name && e.sha256 === file.sha256 && e.size === file.size);
      if (entry === undefined) {
        problems.push(`${name}: no manifest entry for its stated ${file.size} bytes ${file.sha256}`);
        continue;
      }
      const key = String(entry.key);
      const ownKeys = [`${PREFIX}${id}/${name}`, `${PREFIX}${id}/${name}.sha256-${file.sha256}`];
      const stored = ownKeys.includes(key) ? await digestOf(client, this.#stage.bucket, key) : undefined;
      if (stored?.sha256 !== file.sha256 || stored.size !== file.size) {
        problems.push(`${name}: ${key} does not hold its stated bytes`);
      }
    }
    // Changed while the DELETE was held (another worker's read set a change off): as at the DELETE itself.
    if (signature(this.#stage, id) !== now) race = true;
    return { id, live: true, race, problems, files };
  }

  #onStore(request: S3ProxyRequest): S3ProxyAction {
    const { kind, id } = objectOf(request.key);
    if (id !== undefined && this.#index.has(id)) this.#count(id);
    const operation = request.operation;
    for (const fault of this.#step.storeFaults) {
      if (fault.operation !== operation || fault.object !== kind) continue;
      if (fault.line !== undefined && this.#schedule.lines[fault.line]?.id !== id) continue;
      const n = (this.#matched.get(fault) ?? 0) + 1;
      this.#matched.set(fault, n);
      if (n < fault.nth || n >= fault.nth + fault.count) continue;
      this.storeFaults.set(fault.action, (this.storeFaults.get(fault.action) ?? 0) + 1);
      if (kind === 'receipt' || kind === 'marker') this.recordsBroken = true;
      if (kind === 'report') this.reportsBroken = true;
      if (fault.action === 'flip') this.flipped.add(request.key);
      return ACTIONS[fault.action];
    }
    return 'forward';
  }
}
