/**
 * Draws a {@link Schedule} from a seed. The weights favour short schedules (small files, few
 * lines) so that thousands run in minutes, and the combinations that past attacks found: a run
 * that ends between the files and the manifest, a line restated before the next run, a DELETE
 * whose reply is odd and whose confirmation is a foreign document, a file added at the DELETE.
 */
import type { Fault, LineStatus } from '../local/tokens-service.ts';
import { Random } from './prng.ts';
import type {
  Delivery,
  LinePlan,
  Mode,
  RequestPoint,
  RunKind,
  RunStep,
  Schedule,
  ServiceChange,
  ServiceFault,
  StoreAction,
  StoreFault,
  Tamper,
  Trigger,
} from './schedule.ts';

const METRICS_FILES = ['data', 'score', 'analysis', 'delta'] as const;
const ECHOES = ['attribute', 'status', 'delete-reply'] as const;

/** What the generator may draw; the test and the command choose. */
export interface GenerateOptions {
  readonly modes?: readonly Mode[];
  /** Share of pass schedules that have one run by the CLI child process (most of them killed). */
  readonly cliShare?: number;
}

function fileSize(rng: Random): number {
  return rng.weighted<() => number>([
    [1, () => 0],
    [2, () => rng.int(1, 100)],
    [4, () => rng.int(101, 8192)],
    [3, () => rng.int(8193, 64 * 1024)],
  ])();
}

function filesOf(line: LinePlan): readonly string[] {
  return line.analysis === 'metrics' ? METRICS_FILES : ['data'];
}

function drawLines(rng: Random): LinePlan[] {
  return Array.from({ length: 1 + rng.count([3, 3, 2, 2]) }, () => ({
    id: rng.uuid(),
    status: rng.weighted<LineStatus>([
      [8, 'finished'],
      [1, 'started'],
      [1, 'requested'],
    ]),
    analysis: rng.chance(0.3) ? 'metrics' : 'none',
    fileSize: fileSize(rng),
  }));
}

/**
 * The line an event hits: half the time the schedule's first line, so that what happens to a line
 * in one run (a store outage, a change of mind) often meets what happens to it in the next.
 */
function target(rng: Random, lines: readonly LinePlan[]): number {
  return rng.chance(0.5) ? 0 : rng.int(0, lines.length - 1);
}

function anyFile(rng: Random, line: LinePlan): string {
  return rng.pick(filesOf(line));
}

/** A change of the files or status of a line (as between runs or while a run reads it). */
function fileChange(rng: Random, lines: readonly LinePlan[], line: number): ServiceChange {
  const plan = lines[line] as LinePlan;
  return rng.weighted<() => ServiceChange>([
    [5, () => ({ kind: 'restate', line, file: anyFile(rng, plan), size: fileSize(rng) })],
    [3, () => ({ kind: 'add-file', line, file: `extra${rng.int(1, 2)}`, size: fileSize(rng) })],
    [1, () => ({ kind: 'drop-file', line, file: `extra${rng.int(1, 2)}` })],
    [1, () => ({ kind: 'status', line, status: rng.pick<LineStatus>(['started', 'finished', 'requested']) })],
  ])();
}

function betweenRuns(rng: Random, lines: readonly LinePlan[]): ServiceChange {
  const line = target(rng, lines);
  return rng.weighted<() => ServiceChange>([
    [6, () => fileChange(rng, lines, line)],
    [3, () => ({ kind: 'complete-deletion', line })],
    [1, () => ({ kind: 'gone-status', status: rng.pick([404, 410] as const) })],
    [1, () => ({ kind: 'echo-key', line, where: rng.pick(ECHOES) })],
  ])();
}

function trigger(rng: Random, lines: readonly LinePlan[]): Trigger {
  const line = target(rng, lines);
  const kind = rng.weighted<RequestPoint['kind']>([
    [4, 'get'],
    [2, 'file'],
    [4, 'delete'],
  ]);
  const at: RequestPoint = { line, kind, nth: kind === 'delete' ? 1 : rng.int(1, 3) };
  if (kind === 'delete') {
    const change = rng.weighted<() => ServiceChange>([
      [5, () => fileChange(rng, lines, line)],
      [3, () => ({ kind: 'foreign-document', line })],
    ])();
    // A status change at the DELETE is the service's own business: keep to files there.
    return { at, change: change.kind === 'status' ? { kind: 'foreign-document', line } : change };
  }
  const change = rng.chance(0.1)
    ? ({ kind: 'echo-key', line, where: rng.pick(ECHOES) } as const)
    : fileChange(rng, lines, line);
  return { at, change };
}

function statusFault(rng: Random): Fault {
  const status = rng.pick([429, 500, 502, 503, 504]);
  return rng.chance(0.3)
    ? { kind: 'status', status, retryAfterSeconds: rng.int(0, 1) }
    : { kind: 'status', status };
}

/** A DELETE reply; a 200 with the line's own document always acted (the client could not tell a lie). */
function deleteFault(rng: Random): Fault {
  return rng.weighted<() => Fault>([
    [3, () => statusFault(rng)],
    [2, () => ({ kind: 'delete-lost' })],
    [1, () => ({ kind: 'bad-json' })],
    [1, () => ({ kind: 'corrupt' })],
    [1, () => rng.pick<Fault>([{ kind: 'truncate' }, { kind: 'reset' }])],
    [
      6,
      () => {
        const status = rng.pick([200, 202, 204, 410, 502, 504]);
        const body = rng.pick(['none', 'document', 'other-id'] as const);
        const acts = status === 200 && body === 'document' ? true : rng.chance(status === 202 ? 0.3 : 0.6);
        return { kind: 'delete-reply', status, body, acts };
      },
    ],
  ])();
}

function serviceFault(rng: Random, lines: readonly LinePlan[]): ServiceFault {
  const line = target(rng, lines);
  const times = rng.weighted([
    [6, 1],
    [3, 2],
    [1, 3],
    [1, 20],
  ] as const);
  return rng.weighted<() => ServiceFault>([
    [
      1,
      () => ({
        target: 'list',
        fault: rng.chance(0.6)
          ? statusFault(rng)
          : rng.pick<Fault>([{ kind: 'truncate' }, { kind: 'bad-json' }]),
        times: Math.min(times, 3),
      }),
    ],
    [
      3,
      () => ({
        target: 'get',
        line,
        fault: rng.weighted<() => Fault>([
          [3, () => statusFault(rng)],
          [1, () => ({ kind: 'truncate' })],
          [1, () => ({ kind: 'reset' })],
          [1, () => ({ kind: 'bad-json' })],
          [1, () => ({ kind: 'corrupt' })],
        ])(),
        times,
      }),
    ],
    [
      4,
      () => ({
        target: 'file',
        line,
        file: anyFile(rng, lines[line] as LinePlan),
        fault: rng.weighted<() => Fault>([
          [2, () => statusFault(rng)],
          [2, () => ({ kind: 'truncate' })],
          [1, () => ({ kind: 'reset' })],
          [2, () => ({ kind: 'corrupt' })],
        ])(),
        times,
      }),
    ],
    [4, () => ({ target: 'delete', line, fault: deleteFault(rng), times: 1 })],
  ])();
}

/**
 * A store fault. `flip` (the store keeps other bytes than it was sent) only where the housekeeper
 * reads every object back: with `head` it trusts the store's own checksum check, which AWS S3
 * does and the local S3 does not.
 */
function storeFault(rng: Random, lines: readonly LinePlan[], readback: 'full' | 'head'): StoreFault {
  const line = rng.chance(0.8) ? target(rng, lines) : undefined;
  const count = rng.weighted([
    [5, 1],
    [2, 2],
    [1, 3],
    [3, 60],
  ] as const);
  const nth = rng.weighted([
    [6, 1],
    [3, 2],
    [1, 3],
  ] as const);
  const put = (object: StoreFault['object']): StoreFault => ({
    operation: 'PutObject',
    object,
    ...(line === undefined ? {} : { line }),
    nth,
    count,
    action: rng.weighted<StoreAction>([
      [3, 'fail-500'],
      [2, 'fail-503'],
      [1, 'refuse-403'],
      [1, 'fail-412'],
      [3, 'drop-reply'],
      [object === 'file' && readback === 'full' ? 2 : 0, 'flip'],
    ]),
  });
  const read = (operation: 'GetObject' | 'HeadObject', object: StoreFault['object']): StoreFault => ({
    operation,
    object,
    ...(line === undefined ? {} : { line }),
    nth,
    count: Math.min(count, 3),
    action: rng.weighted<StoreAction>([
      [2, 'fail-500'],
      [1, 'fail-503'],
      [operation === 'GetObject' ? 4 : 0, 'break-body'],
    ]),
  });
  return rng.weighted<() => StoreFault>([
    [4, () => put('file')],
    [4, () => put('manifest')],
    [1, () => put('document')],
    [2, () => put(rng.pick(['receipt', 'marker', 'report'] as const))],
    [5, () => read('GetObject', 'file')],
    [1, () => read('GetObject', rng.pick(['manifest', 'marker', 'document'] as const))],
    [2, () => read('HeadObject', 'file')],
    [
      1,
      () => ({
        operation: 'ListObjects',
        object: 'listing',
        nth,
        count: Math.min(count, 3),
        action: rng.pick(['fail-500', 'fail-503'] as const),
      }),
    ],
  ])();
}

function times<T>(rng: Random, weights: readonly number[], draw: () => T): T[] {
  return Array.from({ length: rng.count(weights) }, draw);
}

function runKind(rng: Random, index: number, lines: readonly LinePlan[]): Pick<RunStep, 'kind' | 'ids'> {
  const kind = rng.weighted<RunKind>([
    [index === 0 ? 4 : 1, 'archive-only'],
    [12, 'full'],
    [1, 'ids'],
    [index === 0 ? 0 : 1, 'keep-both'],
  ]);
  if (kind !== 'ids' && kind !== 'keep-both') return { kind };
  const ids = lines.map((_, i) => i).filter(() => rng.chance(0.6));
  return { kind, ids: ids.length > 0 ? ids : [rng.int(0, lines.length - 1)] };
}

/** How the queue misdelivers a fan-out run's messages. */
function drawDelivery(rng: Random): Delivery {
  return {
    batchSize: rng.int(1, 4),
    duplicate: rng.count([4, 3, 2, 0, 1]),
    redeliver: rng.count([5, 3, 1]),
    shuffle: rng.chance(0.5),
    workers: rng.int(1, 3),
    late: rng.count([6, 3, 1]),
  };
}

function drawRun(
  rng: Random,
  lines: readonly LinePlan[],
  index: number,
  settings: Settings,
  mode: Mode,
): RunStep {
  const faulty = rng.chance(0.85);
  return {
    ...runKind(rng, index, lines),
    executor: 'handler',
    before: index === 0 ? [] : times(rng, [3, 4, 2], () => betweenRuns(rng, lines)),
    triggers: times(rng, [5, 4, 1], () => trigger(rng, lines)),
    serviceFaults: faulty ? times(rng, [2, 4, 3, 0, 2], () => serviceFault(rng, lines)) : [],
    storeFaults: faulty ? times(rng, [2, 4, 3, 1], () => storeFault(rng, lines, settings.readback)) : [],
    ...(mode === 'fanout' ? { delivery: drawDelivery(rng) } : {}),
  };
}

const TAMPERING = [
  'overwrite',
  'delete-object',
  'manifest-hash',
  'manifest-name',
  'delete-manifest',
] as const;

function drawTamper(rng: Random, lines: readonly LinePlan[]): Tamper | undefined {
  if (!rng.chance(0.4)) return undefined;
  return { kind: rng.pick(TAMPERING), line: rng.int(0, lines.length - 1) };
}

type Settings = Schedule['settings'];

/**
 * The dismantle guard of a schedule, from a stream of its own (the seed's other draws, and so the
 * schedules of seeds found earlier, stay as they were): a quarter of schedules cap their runs at
 * one or two dismantlings.
 */
function dismantleGuard(seed: number): Pick<Settings, 'maxDismantles'> {
  const rng = new Random(seed ^ 0x5bd1e995);
  return rng.chance(0.25) ? { maxDismantles: rng.pick([1, 2]) } : {};
}

/**
 * The request cap of a schedule, from a stream of its own as the guard's: a fifth of schedules
 * run under `MAX_REQUESTS_PER_SECOND`, high enough to cost little time and low enough that
 * requests wait for their slot, and those around a DELETE go before the others.
 */
function requestCap(seed: number): Pick<Settings, 'maxRequestsPerSecond'> {
  const rng = new Random(seed ^ 0x2545f491);
  return rng.chance(0.2) ? { maxRequestsPerSecond: rng.pick([200, 500]) } : {};
}

/**
 * The byte cap of a schedule, from a stream of its own too: a fifth of schedules read the service
 * through `MAX_BYTES_PER_SECOND` (4 or 8 MiB a second, above what the read-ahead of 4 lines of 2
 * downloads needs), so paced downloads and the urgent bodies around a DELETE meet the faults.
 */
function byteCap(seed: number): Pick<Settings, 'maxBytesPerSecond'> {
  const rng = new Random(seed ^ 0x68e31da4);
  return rng.chance(0.2) ? { maxBytesPerSecond: rng.pick([4, 8]) * 1024 * 1024 } : {};
}

/** The schedule of one seed: the same seed gives the same schedule. */
export function generateSchedule(seed: number, options: GenerateOptions = {}): Schedule {
  const rng = new Random(seed);
  const mode = rng.pick<Mode>(options.modes ?? ['pass']);
  const sessionKey = rng.uuid();
  const lines = drawLines(rng);
  const settings: Settings = {
    lineConcurrency: rng.pick([1, 2, 4]),
    fileConcurrency: rng.pick([1, 2]),
    readback: rng.chance(0.6) ? 'full' : 'head',
    retryAttempts: rng.pick([2, 3, 5]),
    ...dismantleGuard(seed),
    ...requestCap(seed),
    ...byteCap(seed),
  };
  // Most schedules have two or three runs with faults: what one run leaves is what the next meets.
  const runs = Array.from({ length: 1 + rng.count([1, 3, 3]) }, (_, i) =>
    drawRun(rng, lines, i, settings, mode),
  );
  if (mode === 'pass' && rng.chance(options.cliShare ?? 0.1)) {
    const at = rng.int(0, runs.length - 1);
    const run = runs[at] as RunStep;
    const kill = rng.chance(0.8) ? { kill: { line: rng.int(0, lines.length - 1), nth: rng.int(1, 12) } } : {};
    runs[at] = { ...run, executor: 'cli', ...kill };
  }
  const tamper = drawTamper(rng, lines);
  return {
    seed,
    mode,
    sessionKey,
    lines,
    settings,
    runs,
    maxRuns: 6,
    ...(tamper === undefined ? {} : { tamper }),
    restore: rng.int(0, lines.length - 1),
  };
}
