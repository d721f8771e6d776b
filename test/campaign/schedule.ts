/**
 * A schedule of the randomized fault campaign, as plain data: the lines a simulated service
 * starts with, then the runs of the housekeeper, each with the service's changes and the faults
 * of the service and of the store around it, then the audit and restore over an archive that may
 * be tampered with. `generate.ts` draws one from a seed; `describeSchedule` prints it.
 */
import type { Fault, FaultTarget, LineStatus } from '../local/tokens-service.ts';

/** Single pass (the handler or the CLI), or fan-out (a planner and workers over a queue). */
export type Mode = 'pass' | 'fanout';

export interface LinePlan {
  readonly id: string;
  readonly status: LineStatus;
  readonly analysis: 'none' | 'metrics';
  readonly fileSize: number;
}

/** Something the service does to a line (lines are named by their index in the schedule). */
export type ServiceChange =
  | { readonly kind: 'restate'; readonly line: number; readonly file: string; readonly size: number }
  | { readonly kind: 'add-file'; readonly line: number; readonly file: string; readonly size: number }
  | { readonly kind: 'drop-file'; readonly line: number; readonly file: string }
  | { readonly kind: 'status'; readonly line: number; readonly status: LineStatus }
  /** Deletes a line whose DELETE was taken (202) and recorded pending; nothing otherwise. */
  | { readonly kind: 'complete-deletion'; readonly line: number }
  /** `GET /api/tokens/{id}` serves another line's deleted document, until the next run starts. */
  | { readonly kind: 'foreign-document'; readonly line: number }
  /** The service echoes the session key: in an attribute or its DELETE replies (for good), or as the status (one run). */
  | {
      readonly kind: 'echo-key';
      readonly line: number;
      readonly where: 'attribute' | 'status' | 'delete-reply';
    }
  | { readonly kind: 'gone-status'; readonly status: 404 | 410 };

/** A request of one run, counted per line: the n-th GET of its document, of a file, or DELETE. */
export interface RequestPoint {
  readonly line: number;
  readonly kind: 'get' | 'file' | 'delete';
  readonly nth: number;
}

/** A service change made the moment a request arrives, before the service answers it. */
export interface Trigger {
  readonly at: RequestPoint;
  readonly change: ServiceChange;
}

/** A simulator fault rule, its line named by index. */
export interface ServiceFault {
  readonly target: FaultTarget;
  readonly line?: number;
  readonly file?: string;
  readonly fault: Fault;
  readonly times: number;
}

/** Which objects of the archive a store fault applies to. */
export type ObjectKind = 'file' | 'manifest' | 'document' | 'receipt' | 'marker' | 'report' | 'listing';

export type StoreAction =
  | 'fail-500'
  | 'fail-503'
  | 'refuse-403'
  | 'fail-412'
  | 'drop-reply'
  | 'break-body'
  | 'flip';

/** A fault of the store: from the `nth` matching request of the run on, `count` of them. */
export interface StoreFault {
  readonly operation: 'PutObject' | 'GetObject' | 'HeadObject' | 'ListObjects';
  readonly object: ObjectKind;
  /** The line whose objects it hits; undefined: any line (and the run's own records). */
  readonly line?: number;
  readonly nth: number;
  readonly count: number;
  readonly action: StoreAction;
}

/** What a run is asked to do. */
export type RunKind = 'full' | 'archive-only' | 'ids' | 'keep-both';

/** One run of the housekeeper and what happens around it. */
export interface RunStep {
  readonly kind: RunKind;
  /** `ids` and `keep-both`: the lines named. */
  readonly ids?: readonly number[];
  /** In-process handler, or the CLI child process (pass mode). */
  readonly executor: 'handler' | 'cli';
  /** CLI: SIGKILL at this request of the run (counted per line, service and store together). */
  readonly kill?: { readonly line: number; readonly nth: number };
  /** Service changes between the previous run and this one. */
  readonly before: readonly ServiceChange[];
  readonly triggers: readonly Trigger[];
  readonly serviceFaults: readonly ServiceFault[];
  readonly storeFaults: readonly StoreFault[];
  /** Fan-out: how the queue misdelivers this run's messages. */
  readonly delivery?: Delivery;
}

/** A run with nothing injected: what a schedule ends with until nothing is left to do. */
export const CLEAN_RUN: RunStep = {
  kind: 'full',
  executor: 'handler',
  before: [],
  triggers: [],
  serviceFaults: [],
  storeFaults: [],
};

/** Fan-out: duplicates, redeliveries and reordering of the work messages, and the batch size. */
export interface Delivery {
  readonly batchSize: number;
  readonly duplicate: number;
  readonly redeliver: number;
  readonly shuffle: boolean;
  readonly workers: number;
  /** Messages held back, delivered during the next run. */
  readonly late: number;
}

/** Damage done to the archive directly in the store, before the audit and the restore. */
export type Tamper =
  | { readonly kind: 'overwrite'; readonly line: number }
  | { readonly kind: 'delete-object'; readonly line: number }
  | { readonly kind: 'manifest-hash'; readonly line: number }
  | { readonly kind: 'manifest-name'; readonly line: number }
  | { readonly kind: 'delete-manifest'; readonly line: number };

export interface Schedule {
  readonly seed: number;
  readonly mode: Mode;
  readonly sessionKey: string;
  readonly lines: readonly LinePlan[];
  /** Housekeeper settings of the whole schedule. */
  readonly settings: {
    readonly lineConcurrency: number;
    readonly fileConcurrency: number;
    readonly readback: 'full' | 'head';
    readonly retryAttempts: number;
    /** `MAX_DISMANTLES_PER_RUN`, when the schedule sets the dismantle guard. */
    readonly maxDismantles?: number;
    /** `MAX_REQUESTS_PER_SECOND`, when the schedule caps the requests to the service. */
    readonly maxRequestsPerSecond?: number;
    /** `MAX_BYTES_PER_SECOND`, when the schedule caps the bytes read from the service. */
    readonly maxBytesPerSecond?: number;
  };
  /** The runs with faults; clean full runs follow until nothing is left to do (at most `maxRuns`). */
  readonly runs: readonly RunStep[];
  readonly maxRuns: number;
  readonly tamper?: Tamper;
  /** The line restored at the end (when it has a manifest). */
  readonly restore: number;
}

function size(bytes: number): string {
  return bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes} B`;
}

function lineName(line: number | undefined): string {
  return line === undefined ? 'any line' : `L${line}`;
}

export function describeChange(change: ServiceChange): string {
  switch (change.kind) {
    case 'restate':
      return `restate L${change.line}.${change.file} (${size(change.size)})`;
    case 'add-file':
      return `add L${change.line}.${change.file} (${size(change.size)})`;
    case 'drop-file':
      return `drop L${change.line}.${change.file}`;
    case 'status':
      return `L${change.line} status ${change.status}`;
    case 'complete-deletion':
      return `complete L${change.line}'s deferred deletion`;
    case 'foreign-document':
      return `GET L${change.line} serves another line's deleted document`;
    case 'echo-key':
      return `L${change.line} echoes the session key in ${{ status: 'its status', attribute: 'an attribute', 'delete-reply': 'its DELETE replies' }[change.where]}`;
    case 'gone-status':
      return `gone lines answer ${change.status}`;
  }
}

/** A fault in a few words, as the figures count them (`delete-reply 202 none acts`). */
export function faultKind(fault: Fault): string {
  switch (fault.kind) {
    case 'status':
      return `${fault.status}${fault.retryAfterSeconds === undefined ? '' : ' retry-after'}`;
    case 'delete-reply':
      return `delete-reply ${fault.status} ${fault.body}${fault.acts ? ' acts' : ''}`;
    default:
      return fault.kind;
  }
}

function describeServiceFault(f: ServiceFault): string {
  const where = `${f.target}${f.line === undefined ? '' : ` L${f.line}`}${f.file === undefined ? '' : `.${f.file}`}`;
  const retryAfter =
    f.fault.kind === 'status' && f.fault.retryAfterSeconds !== undefined
      ? ` ${f.fault.retryAfterSeconds}s`
      : '';
  return `${where}: ${faultKind(f.fault)}${retryAfter}${f.times === 1 ? '' : ` x${f.times}`}`;
}

function describeStoreFault(f: StoreFault): string {
  return `${f.operation} ${f.object} of ${lineName(f.line)} #${f.nth}${f.count === 1 ? '' : `+${f.count - 1}`}: ${f.action}`;
}

function describeRun(step: RunStep, index: number): string[] {
  const ids = step.ids === undefined ? '' : ` ${step.ids.map((i) => `L${i}`).join(',')}`;
  const how =
    step.executor === 'cli'
      ? `CLI${step.kill === undefined ? '' : `, SIGKILL at request #${step.kill.nth} of L${step.kill.line}`}`
      : 'handler';
  const out = [`run ${index + 1}: ${step.kind}${ids} (${how})`];
  for (const change of step.before) out.push(`  before: ${describeChange(change)}`);
  for (const { at, change } of step.triggers) {
    out.push(`  at ${at.kind.toUpperCase()} #${at.nth} of L${at.line}: ${describeChange(change)}`);
  }
  for (const fault of step.serviceFaults) out.push(`  service: ${describeServiceFault(fault)}`);
  for (const fault of step.storeFaults) out.push(`  store: ${describeStoreFault(fault)}`);
  const d = step.delivery;
  if (d !== undefined) {
    out.push(
      `  queue: ${d.workers} workers, batches of ${d.batchSize}, ${d.duplicate} duplicated, ${d.redeliver} redelivered, ${d.late} late${d.shuffle ? ', out of order' : ''}`,
    );
  }
  return out;
}

function describeTamper(tamper: Tamper | undefined): string {
  if (tamper === undefined) return 'no tampering';
  const what = {
    overwrite: 'overwrite a file object of',
    'delete-object': 'delete a file object of',
    'manifest-hash': 'edit a hash in the manifest of',
    'manifest-name': 'edit a file name in the manifest of',
    'delete-manifest': 'delete the manifest of',
  }[tamper.kind];
  return `tamper: ${what} L${tamper.line}`;
}

/** The schedule in a few lines: what a failure prints beside its seed. */
export function describeSchedule(schedule: Schedule): string {
  const { settings: s } = schedule;
  const lines = schedule.lines.map(
    (line, i) =>
      `L${i} ${line.id.slice(0, 8)} ${line.status}${line.status === 'finished' ? ` ${line.analysis} ${size(line.fileSize)}` : ''}`,
  );
  return [
    `seed ${schedule.seed}, ${schedule.mode} mode, ${lines.join('; ')}`,
    `settings: lines ${s.lineConcurrency}, files ${s.fileConcurrency}, read-back ${s.readback}, attempts ${s.retryAttempts}${s.maxDismantles === undefined ? '' : `, at most ${s.maxDismantles} dismantled a run`}${s.maxRequestsPerSecond === undefined ? '' : `, at most ${s.maxRequestsPerSecond} requests a second`}${s.maxBytesPerSecond === undefined ? '' : `, at most ${s.maxBytesPerSecond / 1024 / 1024} MiB a second`}, conditional writes ${schedule.seed % 2 === 0 ? 'enforced' : 'ignored'}; then full runs until nothing is left (at most ${schedule.maxRuns} runs)`,
    ...schedule.runs.flatMap(describeRun),
    `end: audit, restore L${schedule.restore}; ${describeTamper(schedule.tamper)}`,
  ].join('\n');
}
