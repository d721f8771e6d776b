import { join } from 'node:path';
import type { LineSpec } from '../local/tokens-service.ts';
import { bundle, type Contributor, topInputs, topPackages } from './bundles.ts';
import { type ImportTiming, timeImport } from './cold-start.ts';
import { type Measurement, measure, type Workload } from './measure.ts';
import type { SequenceResult } from './request-sequence.ts';
import { bytesOf, formatBytes, type Sizes, shapeOf, type ThroughputSpec } from './sets.ts';
import { median, round } from './stats.ts';

const KIB = 1024;

export const SECTIONS = [
  'throughput',
  'baseline',
  'memory',
  'list',
  'cold-start',
  'concurrency',
  'requests',
] as const;
export type Section = (typeof SECTIONS)[number];

/**
 * What a tool spends on a service with no finished line (an empty list): its fixed start and end
 * within the measured work (the secret read, the list, the run report, the first connections).
 * The median of a few runs.
 */
export interface FixedCost {
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly runsMs: readonly number[];
}

/** Per-line figures of a run once its fixed cost is left out (issue 22). */
export interface Adjusted {
  /** Wall time less the tool's fixed cost. */
  readonly wallMs: number;
  /** CPU ms per line: as measured, and less the tool's fixed CPU. */
  readonly cpuMsPerLine: number;
  readonly adjustedCpuMsPerLine: number;
}

export interface ThroughputResult {
  readonly key: string;
  readonly label: string;
  /** Bytes of every file; for a mixed set its largest file (`mixed`). */
  readonly fileBytes: number;
  /** Lines of several shapes (the API examples' sizes), not one size. */
  readonly mixed?: boolean;
  readonly totalBytes: number;
  readonly lines: number;
  readonly readback: 'head' | 'full';
  readonly oneWayLatencyMs?: number;
  readonly reference: Measurement;
  readonly housekeeper: Measurement;
  /** Housekeeper MB/s over reference MB/s. */
  readonly ratio: number;
  /** Each tool's fixed cost, measured on an empty service under the same settings. */
  readonly fixed: { readonly reference: FixedCost; readonly housekeeper: FixedCost };
  readonly adjusted: { readonly reference: Adjusted; readonly housekeeper: Adjusted };
  /** Reference wall over housekeeper wall, each less its fixed cost (equal bytes: the MB/s ratio). */
  readonly adjustedRatio: number;
  /** Housekeeper CPU per line over the reference's, each less its fixed CPU. */
  readonly cpuRatio: number;
  /** Least ratio (issue 13), and whether it was reached; absent for a set reported only. */
  readonly goal?: number;
  readonly met?: boolean;
  /** Least start-adjusted ratio (issue 22), and whether it was reached. */
  readonly adjustedGoal?: number;
  readonly adjustedMet?: boolean;
  /** Wall times of every repeat (ms). */
  readonly repeatsMs: { readonly housekeeper: readonly number[]; readonly reference: readonly number[] };
  /** The rule's requests done plainly (`rule-floor.ts`) on the same set, for sets that ask for it. */
  readonly ruleFloor?: RuleFloorResult;
}

/** The rule floor's run, adjusted like the others, and its ratios to the copy. */
export interface RuleFloorResult {
  readonly measurement: Measurement;
  readonly fixed: FixedCost;
  readonly adjusted: Adjusted;
  /** Reference wall over the floor's, each less its fixed cost. */
  readonly adjustedRatio: number;
  /** The floor's CPU per line over the reference's, each less its fixed CPU. */
  readonly cpuRatio: number;
}

export interface BaselineResult {
  readonly key: string;
  readonly label: string;
  readonly baseline: Measurement;
  /** The housekeeper's figures on the same set, for comparison. */
  readonly housekeeper?: Measurement;
}

/** The sweeps of the memory section a row belongs to. */
export type MemorySweep = 'size' | 'in-flight';

export interface MemoryResult {
  readonly fileBytes: number;
  /** Lines of one file, all in flight at once (LINE_CONCURRENCY as many). */
  readonly lines: number;
  readonly sweeps: readonly MemorySweep[];
  readonly housekeeper: Measurement;
  /** RSS at start + UPLOAD_BUFFER_BYTES + 64 MB (MB = 10^6 bytes). */
  readonly boundMB: number;
  readonly met: boolean;
  readonly source: string;
}

export interface ListScaleResult {
  readonly lines: number;
  readonly finished: number;
  readonly pageSize?: number;
  readonly housekeeper: Measurement;
}

export interface ColdStartResult {
  readonly bundleBytes: number;
  readonly sourceMapBytes: number;
  readonly topInputs: readonly Contributor[];
  readonly topPackages: readonly Contributor[];
  readonly imports: readonly ImportTiming[];
}

export interface SweepResult {
  readonly lineConcurrency: number;
  readonly oneWayLatencyMs: number;
  readonly housekeeper: Measurement;
  /** The plain copy on the same lines with as many files in flight (absent in results before issue 22). */
  readonly reference?: Measurement;
  readonly repeatsMs: readonly number[];
}

export interface SectionResults {
  throughput?: ThroughputResult[];
  baseline?: BaselineResult[];
  memory?: MemoryResult[];
  listScale?: ListScaleResult[];
  coldStart?: ColdStartResult;
  concurrency?: SweepResult[];
  requestSequences?: SequenceResult[];
}

type Progress = (message: string) => void;

function finishedLines(count: number, spec: Omit<LineSpec, 'status'>): LineSpec[] {
  return Array.from({ length: count }, () => ({ status: 'finished', ...spec }));
}

function workloadOf(spec: ThroughputSpec, lines = spec.lines): Workload {
  return {
    lines: Array.from({ length: lines }, (_, i) => ({ status: 'finished', ...shapeOf(spec, i) })),
    diskStorage: spec.diskStorage,
    env: {
      VERIFY_READBACK: spec.readback,
      ...(spec.lineConcurrency === undefined ? {} : { LINE_CONCURRENCY: String(spec.lineConcurrency) }),
    },
    ...(spec.oneWayLatencyMs === undefined ? {} : { oneWayLatencyMs: spec.oneWayLatencyMs }),
  };
}

/** Runs of each tool on an empty service, for its fixed cost. */
const FIXED_RUNS = 3;

/**
 * Measures, once per tool and settings, what the tool spends on a service with no finished line
 * (the same settings, latency included): its fixed cost within the measured work.
 */
function fixedCosts(workerFile: string, progress: Progress) {
  const known = new Map<string, FixedCost>();
  return async (tool: 'reference' | 'rule-floor' | 'housekeeper', workload: Workload): Promise<FixedCost> => {
    const empty: Workload = { ...workload, lines: [], diskStorage: false };
    const key = `${tool} ${JSON.stringify(empty)}`;
    const cached = known.get(key);
    if (cached !== undefined) return cached;
    const runs: Measurement[] = [];
    for (let i = 0; i < FIXED_RUNS; i++) runs.push(await measure(workerFile, empty, tool));
    const failed = runs.find((m) => !m.ok);
    if (failed !== undefined) throw new Error(`${tool} on an empty service failed: ${failed.check}`);
    const cost = {
      wallMs: Math.round(median(runs.map((m) => m.wallMs))),
      cpuMs: Math.round(median(runs.map((m) => m.cpuMs))),
      runsMs: runs.map((m) => m.wallMs),
    };
    progress(`  fixed cost of ${tool} (empty service): ${cost.wallMs} ms wall, ${cost.cpuMs} ms CPU`);
    known.set(key, cost);
    return cost;
  };
}

function adjust(m: Measurement, fixed: FixedCost): Adjusted {
  const lines = Math.max(1, m.lines);
  return {
    // At least 1 ms: a run never takes less than nothing.
    wallMs: Math.max(1, m.wallMs - fixed.wallMs),
    cpuMsPerLine: round(m.cpuMs / lines, 2),
    adjustedCpuMsPerLine: round(Math.max(0, m.cpuMs - fixed.cpuMs) / lines, 2),
  };
}

function describe(m: Measurement): string {
  return `${(m.wallMs / 1000).toFixed(1)} s, ${m.mbPerSec} MB/s, ${m.linesPerSec} lines/s, ${m.requestsPerLine} requests/line, peak RSS ${m.peakRssMB} MB${m.ok ? '' : ` NOT OK (${m.check})`}`;
}

/** Sections 1 and 2: the product against the reference (the plain parallel copy), and the obvious way. */
export async function runThroughput(
  workerFile: string,
  sizes: Sizes,
  withBaseline: boolean,
  withThroughput: boolean,
  progress: Progress,
  /** Where each tool's run writes a V8 CPU profile of its work, named `{set}-{tool}-{run}.cpuprofile`. */
  profileDir?: string,
): Promise<{ throughput: ThroughputResult[]; baseline: BaselineResult[] }> {
  const throughput: ThroughputResult[] = [];
  const baseline: BaselineResult[] = [];
  const fixedCost = fixedCosts(workerFile, progress);
  for (const spec of sizes.throughput) {
    let housekeeper: Measurement | undefined;
    if (withThroughput) {
      const referenceRuns: Measurement[] = [];
      const productRuns: Measurement[] = [];
      const floorRuns: Measurement[] = [];
      // Interleaved, so drift in the machine's load hits both alike.
      for (let i = 0; i < spec.repeats; i++) {
        progress(`throughput (${spec.key}) ${spec.label}: reference, run ${i + 1}/${spec.repeats}`);
        const profile = (tool: string) =>
          profileDir === undefined
            ? {}
            : { cpuProfile: join(profileDir, `${spec.key}-${tool}-${i + 1}.cpuprofile`) };
        referenceRuns.push(
          await measure(workerFile, workloadOf(spec), 'reference', [], profile('reference')),
        );
        progress(`  ${describe(referenceRuns.at(-1) as Measurement)}`);
        progress(`throughput (${spec.key}) ${spec.label}: housekeeper, run ${i + 1}/${spec.repeats}`);
        productRuns.push(
          await measure(workerFile, workloadOf(spec), 'housekeeper', [], profile('housekeeper')),
        );
        progress(`  ${describe(productRuns.at(-1) as Measurement)}`);
        if (spec.ruleFloor) {
          progress(`throughput (${spec.key}) ${spec.label}: rule floor, run ${i + 1}/${spec.repeats}`);
          floorRuns.push(
            await measure(workerFile, workloadOf(spec), 'rule-floor', [], profile('rule-floor')),
          );
          progress(`  ${describe(floorRuns.at(-1) as Measurement)}`);
        }
      }
      const reference = pick(referenceRuns);
      housekeeper = pick(productRuns);
      const ratio = round(housekeeper.mbPerSec / reference.mbPerSec, 2);
      progress(`throughput (${spec.key}): each tool on an empty service, ${FIXED_RUNS} runs`);
      const fixed = {
        reference: await fixedCost('reference', workloadOf(spec)),
        housekeeper: await fixedCost('housekeeper', workloadOf(spec)),
      };
      const adjusted = {
        reference: adjust(reference, fixed.reference),
        housekeeper: adjust(housekeeper, fixed.housekeeper),
      };
      const adjustedRatio = round(adjusted.reference.wallMs / adjusted.housekeeper.wallMs, 2);
      const cpuRatio = round(
        adjusted.housekeeper.adjustedCpuMsPerLine / Math.max(0.01, adjusted.reference.adjustedCpuMsPerLine),
        2,
      );
      const ok = housekeeper.ok && reference.ok;
      const ruleFloor =
        floorRuns.length === 0
          ? undefined
          : measureFloor(
              pick(floorRuns),
              adjusted.reference,
              await fixedCost('rule-floor', workloadOf(spec)),
            );
      throughput.push({
        key: spec.key,
        label: spec.label,
        fileBytes: spec.fileBytes,
        ...(spec.mix === undefined ? {} : { mixed: true }),
        totalBytes: bytesOf(spec),
        lines: spec.lines,
        readback: spec.readback,
        ...(spec.oneWayLatencyMs === undefined ? {} : { oneWayLatencyMs: spec.oneWayLatencyMs }),
        reference,
        housekeeper,
        ratio,
        fixed,
        adjusted,
        adjustedRatio,
        cpuRatio,
        ...(spec.goal === undefined ? {} : { goal: spec.goal, met: ok && ratio >= spec.goal }),
        ...(spec.adjustedGoal === undefined
          ? {}
          : { adjustedGoal: spec.adjustedGoal, adjustedMet: ok && adjustedRatio >= spec.adjustedGoal }),
        repeatsMs: {
          housekeeper: productRuns.map((m) => m.wallMs),
          reference: referenceRuns.map((m) => m.wallMs),
        },
        ...(ruleFloor === undefined ? {} : { ruleFloor }),
      });
    }
    if (withBaseline && spec.baselineLines !== undefined) {
      const lines = spec.baselineLines;
      progress(`baseline (${spec.key}) ${lines} of ${spec.label}: the obvious way`);
      const naive = await measure(workerFile, workloadOf(spec, lines), 'baseline');
      progress(`  ${describe(naive)}`);
      baseline.push({
        key: spec.key,
        label: lines === spec.lines ? spec.label : `${lines} of ${spec.label}`,
        baseline: naive,
        ...(housekeeper === undefined ? {} : { housekeeper }),
      });
    }
  }
  return { throughput, baseline };
}

function measureFloor(measurement: Measurement, reference: Adjusted, fixed: FixedCost): RuleFloorResult {
  const adjusted = adjust(measurement, fixed);
  return {
    measurement,
    fixed,
    adjusted,
    adjustedRatio: round(reference.wallMs / adjusted.wallMs, 2),
    cpuRatio: round(adjusted.adjustedCpuMsPerLine / Math.max(0.01, reference.adjustedCpuMsPerLine), 2),
  };
}

/** The fastest successful run: on a shared machine, the fastest is the least disturbed. */
function pick(runs: readonly Measurement[]): Measurement {
  return [...runs].sort((a, b) => Number(b.ok) - Number(a.ok) || a.wallMs - b.wallMs)[0] as Measurement;
}

/** What issue 13 allows above the budget: the runtime, the code, the stream chunks in flight. */
export const MEMORY_ALLOWANCE_MB = 64;

/**
 * Section 3: peak RSS of the housekeeper's process (objects on disk, `head`) as files grow, one
 * at a time, and as more large files are in flight; each against RSS at start + the budget + 64
 * MB. A throughput run of the same work (one file a line, `head`, no latency, as many files in
 * flight) is reused rather than run again.
 */
export async function runMemory(
  workerFile: string,
  sizes: Sizes,
  fromThroughput: readonly ThroughputResult[],
  progress: Progress,
): Promise<MemoryResult[]> {
  const { sizes: fileSizes, inFlightFileBytes, inFlight } = sizes.memory;
  const rows = new Map<string, { fileBytes: number; lines: number; sweeps: MemorySweep[] }>();
  const add = (fileBytes: number, lines: number, sweep: MemorySweep) => {
    const key = `${fileBytes}x${lines}`;
    const row = rows.get(key) ?? { fileBytes, lines, sweeps: [] };
    row.sweeps.push(sweep);
    rows.set(key, row);
  };
  for (const fileBytes of fileSizes) add(fileBytes, 1, 'size');
  for (const lines of inFlight) add(inFlightFileBytes, lines, 'in-flight');

  const results: MemoryResult[] = [];
  for (const { fileBytes, lines, sweeps } of rows.values()) {
    const reused = fromThroughput.find(
      (t) =>
        t.fileBytes === fileBytes &&
        t.lines === lines &&
        t.totalBytes === fileBytes * lines &&
        t.readback === 'head' &&
        t.oneWayLatencyMs === undefined &&
        t.housekeeper.filesInFlight >= lines,
    );
    if (reused !== undefined) {
      results.push(memoryResult(fileBytes, lines, sweeps, reused.housekeeper, `throughput (${reused.key})`));
      continue;
    }
    progress(`memory: ${lines} lines x ${formatBytes(fileBytes)}, LINE_CONCURRENCY=${lines}`);
    const m = await measure(
      workerFile,
      {
        lines: finishedLines(lines, { fileSize: fileBytes }),
        diskStorage: true,
        env: { LINE_CONCURRENCY: String(lines) },
      },
      'housekeeper',
    );
    progress(`  ${describe(m)}`);
    results.push(memoryResult(fileBytes, lines, sweeps, m, 'memory run'));
  }
  return results;
}

function memoryResult(
  fileBytes: number,
  lines: number,
  sweeps: readonly MemorySweep[],
  m: Measurement,
  source: string,
): MemoryResult {
  if (m.uploadBufferBytes === null) throw new Error(`a ${m.tool} run has no budget to judge its memory by`);
  const boundMB = Math.round(m.startRssMB + m.uploadBufferBytes / 1e6 + MEMORY_ALLOWANCE_MB);
  return { fileBytes, lines, sweeps, housekeeper: m, boundMB, met: m.ok && m.peakRssMB <= boundMB, source };
}

/** Section 4: a long list, mostly unfinished lines: the time and memory to list and select (dry run). */
export async function runListScale(
  workerFile: string,
  sizes: Sizes,
  progress: Progress,
): Promise<ListScaleResult[]> {
  const { lines, finished, pageSize } = sizes.list;
  const specs: LineSpec[] = Array.from({ length: lines }, (_, i) =>
    i < finished ? { status: 'finished' } : { status: i % 2 === 0 ? 'requested' : 'started' },
  );
  const results: ListScaleResult[] = [];
  for (const size of [undefined, pageSize]) {
    progress(
      `list: ${lines} lines (${finished} finished), ${size === undefined ? 'one page' : `pages of ${size}`}, dry run`,
    );
    const m = await measure(
      workerFile,
      { lines: specs, ...(size === undefined ? {} : { pageSize: size }) },
      'housekeeper',
      ['--dry-run'],
    );
    progress(
      `  ${(m.wallMs / 1000).toFixed(2)} s, ${m.requests} requests, peak RSS ${m.peakRssMB} MB, ${m.check}`,
    );
    results.push({ lines, finished, ...(size === undefined ? {} : { pageSize: size }), housekeeper: m });
  }
  return results;
}

/**
 * Section 5: the function's bundle as `cdk synth` builds it, and its import time in a fresh
 * process. Figures only: an hourly batch job does not feel tens of milliseconds of cold start.
 */
export async function runColdStart(
  outDir: string,
  sizes: Sizes,
  progress: Progress,
): Promise<ColdStartResult> {
  progress('cold start: bundling lambda/entries/handler.ts as the CDK stack does');
  const handler = await bundle('lambda/entries/handler.ts', outDir, 'index');
  progress(`  ${handler.bytes} bytes (+ ${handler.sourceMapBytes} bytes of source map)`);
  const imports: ImportTiming[] = [];
  // Plain node, the stack's NODE_OPTIONS (source maps), and as Lambda starts the function.
  for (const start of ['plain', 'node-options', 'lambda'] as const) {
    progress(`cold start: ${sizes.coldStartRuns} imports in fresh processes, ${start}`);
    const timing = await timeImport(handler.file, start, sizes.coldStartRuns);
    progress(`  median ${timing.importMedianMs} ms (runs ${timing.importMs.join(', ')})`);
    imports.push(timing);
  }
  return {
    bundleBytes: handler.bytes,
    sourceMapBytes: handler.sourceMapBytes,
    topInputs: topInputs(handler.metafile, 10),
    topPackages: topPackages(handler.metafile, 10),
    imports,
  };
}

/**
 * Section 6: lines per second by LINE_CONCURRENCY on 256 KiB lines, on loopback and with added
 * latency; the reference copies the same lines with as many files in flight, interleaved.
 */
export async function runConcurrency(
  workerFile: string,
  sizes: Sizes,
  progress: Progress,
): Promise<SweepResult[]> {
  const results: SweepResult[] = [];
  const { lines, levels, repeats, latencyLines, oneWayLatencyMs, latencies } = sizes.sweep;
  for (const latency of latencies ?? [0, oneWayLatencyMs]) {
    const count = latency === 0 ? lines : latencyLines;
    for (const level of levels) {
      const workload: Workload = {
        lines: finishedLines(count, { fileSize: 256 * KIB }),
        env: { LINE_CONCURRENCY: String(level) },
        ...(latency === 0 ? {} : { oneWayLatencyMs: latency }),
      };
      const runs: Measurement[] = [];
      const referenceRuns: Measurement[] = [];
      for (let i = 0; i < repeats; i++) {
        const where = `LINE_CONCURRENCY=${level}, ${count} lines x 256 KiB, ${latency === 0 ? 'loopback' : `+${latency} ms each way`}, run ${i + 1}/${repeats}`;
        progress(`concurrency: reference, ${where}`);
        referenceRuns.push(await measure(workerFile, workload, 'reference'));
        progress(`  ${describe(referenceRuns.at(-1) as Measurement)}`);
        progress(`concurrency: housekeeper, ${where}`);
        runs.push(await measure(workerFile, workload, 'housekeeper'));
        progress(`  ${describe(runs.at(-1) as Measurement)}`);
      }
      results.push({
        lineConcurrency: level,
        oneWayLatencyMs: latency,
        housekeeper: pick(runs),
        reference: pick(referenceRuns),
        repeatsMs: runs.map((m) => m.wallMs),
      });
    }
  }
  return results;
}
