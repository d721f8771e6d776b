import type { LineSpec } from '../local/tokens-service.ts';
import { bundle, type Contributor, topInputs, topPackages } from './bundles.ts';
import { type ImportTiming, timeImport } from './cold-start.ts';
import { type Measurement, measure, type Workload } from './measure.ts';
import { round } from './stats.ts';

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

export const SECTIONS = ['throughput', 'baseline', 'memory', 'list', 'cold-start', 'concurrency'] as const;
export type Section = (typeof SECTIONS)[number];

/** One archiving workload of the throughput section. */
interface ThroughputSpec {
  readonly key: string;
  readonly label: string;
  readonly lines: number;
  readonly analysis: 'none' | 'metrics';
  readonly fileBytes: number;
  /** Large objects go to disk, not the parent's memory. */
  readonly diskStorage: boolean;
  /** Raw and housekeeper runs each; the best (least disturbed) counts. */
  readonly repeats: number;
  /** Whether the obvious way runs on this set too (default yes). */
  readonly withBaseline?: boolean;
  /** Lines for the obvious way (all when undefined). */
  readonly baselineLines?: number;
  /** Added to each direction of every connection (a stand-in for distance; loopback has none). */
  readonly oneWayLatencyMs?: number;
  /** Housekeeper settings on top of the bench defaults. */
  readonly env?: Readonly<Record<string, string>>;
  /** Minimum ratio to the raw-copy limit. */
  readonly goal: number;
}

interface MemorySpec {
  readonly fileBytes: number;
  readonly lines: number;
  /** LINE_CONCURRENCY when not the default (8). */
  readonly lineConcurrency?: number;
}

/** Sizes of every section; `--quick` shrinks them. */
export interface Sizes {
  readonly throughput: readonly ThroughputSpec[];
  /** Workloads of the memory section (objects on disk); the largest throughput set is added. */
  readonly memory: readonly MemorySpec[];
  readonly list: { readonly lines: number; readonly finished: number; readonly pageSize: number };
  readonly coldStartRuns: number;
  readonly sweep: {
    readonly lines: number;
    readonly levels: readonly number[];
    /** Runs per point; the fastest counts. */
    readonly repeats: number;
    readonly latencyLines: number;
    readonly oneWayLatencyMs: number;
  };
}

export const FULL: Sizes = {
  throughput: [
    {
      key: 'a',
      label: '500 lines x 1 file of 256 KiB',
      lines: 500,
      analysis: 'none',
      fileBytes: 256 * KIB,
      diskStorage: false,
      repeats: 3,
      goal: 0.7,
    },
    {
      key: 'b',
      label: '50 lines x 4 files of 4 MiB',
      lines: 50,
      analysis: 'metrics',
      fileBytes: 4 * MIB,
      diskStorage: false,
      repeats: 2,
      goal: 0.7,
    },
    {
      key: 'c',
      label: '2 lines x 1 file of 1 GiB',
      lines: 2,
      analysis: 'none',
      fileBytes: GIB,
      diskStorage: true,
      repeats: 2,
      baselineLines: 1,
      goal: 0.85,
    },
    {
      key: 'a-rtt',
      label: '60 lines x 1 file of 256 KiB, +20 ms round trip',
      lines: 60,
      analysis: 'none',
      fileBytes: 256 * KIB,
      diskStorage: false,
      repeats: 1,
      goal: 0.7,
      oneWayLatencyMs: 10,
    },
    {
      key: 'b-full',
      label: '50 lines x 4 files of 4 MiB, VERIFY_READBACK=full',
      lines: 50,
      analysis: 'metrics',
      fileBytes: 4 * MIB,
      diskStorage: false,
      repeats: 1,
      goal: 0.7,
      env: { VERIFY_READBACK: 'full' },
      withBaseline: false,
    },
  ],
  memory: [
    { fileBytes: 64 * MIB, lines: 2 },
    { fileBytes: 256 * MIB, lines: 2 },
    { fileBytes: 256 * MIB, lines: 4 },
    { fileBytes: 64 * MIB, lines: 8, lineConcurrency: 8 },
    // One large file alone: the issue's memory goal is stated for a single 1 GiB file.
    { fileBytes: GIB, lines: 1 },
    // The same without the exec wrapper: the runtime's young generation (51 MB semi-spaces).
  ],
  list: { lines: 10_000, finished: 100, pageSize: 1000 },
  coldStartRuns: 7,
  sweep: { lines: 200, levels: [1, 2, 4, 8, 16], repeats: 2, latencyLines: 60, oneWayLatencyMs: 10 },
};

export const QUICK: Sizes = {
  throughput: [
    {
      key: 'a',
      label: '50 lines x 1 file of 256 KiB',
      lines: 50,
      analysis: 'none',
      fileBytes: 256 * KIB,
      diskStorage: false,
      repeats: 1,
      goal: 0.7,
    },
    {
      key: 'b',
      label: '5 lines x 4 files of 4 MiB',
      lines: 5,
      analysis: 'metrics',
      fileBytes: 4 * MIB,
      diskStorage: false,
      repeats: 1,
      goal: 0.7,
    },
    {
      key: 'c',
      label: '2 lines x 1 file of 24 MiB',
      lines: 2,
      analysis: 'none',
      fileBytes: 24 * MIB,
      diskStorage: true,
      repeats: 1,
      baselineLines: 1,
      goal: 0.85,
    },
    {
      key: 'a-rtt',
      label: '16 lines x 1 file of 256 KiB, +20 ms round trip',
      lines: 16,
      analysis: 'none',
      fileBytes: 256 * KIB,
      diskStorage: false,
      repeats: 1,
      goal: 0.7,
      oneWayLatencyMs: 10,
    },
  ],
  memory: [{ fileBytes: 16 * MIB, lines: 2 }],
  list: { lines: 1000, finished: 10, pageSize: 100 },
  coldStartRuns: 3,
  sweep: { lines: 40, levels: [1, 4, 16], repeats: 1, latencyLines: 16, oneWayLatencyMs: 10 },
};

export interface ThroughputResult {
  readonly key: string;
  readonly label: string;
  readonly fileBytes: number;
  readonly totalBytes: number;
  readonly housekeeper: Measurement;
  readonly raw: Measurement;
  /** Housekeeper MB/s over raw-copy MB/s. */
  readonly ratio: number;
  readonly goal: number;
  readonly met: boolean;
  /** Wall times of every repeat (ms), best first counted. */
  readonly repeatsMs: { readonly housekeeper: readonly number[]; readonly raw: readonly number[] };
}

export interface BaselineResult {
  readonly key: string;
  readonly label: string;
  readonly baseline: Measurement;
  /** The housekeeper's figures on the same set, for comparison. */
  readonly housekeeper?: Measurement;
}

export interface MemoryResult {
  readonly fileBytes: number;
  readonly lines: number;
  readonly lineConcurrency: number;
  readonly housekeeper: Measurement;
  readonly goalMB: number;
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
  readonly goalBytes: number;
  readonly bundleMet: boolean;
  readonly topInputs: readonly Contributor[];
  readonly topPackages: readonly Contributor[];
  readonly imports: readonly ImportTiming[];
  readonly goalMs: number;
  readonly importMet: boolean;
}

export interface SweepResult {
  readonly lineConcurrency: number;
  readonly oneWayLatencyMs: number;
  readonly housekeeper: Measurement;
  readonly repeatsMs: readonly number[];
}

export interface SectionResults {
  throughput?: ThroughputResult[];
  baseline?: BaselineResult[];
  memory?: MemoryResult[];
  listScale?: ListScaleResult[];
  coldStart?: ColdStartResult;
  concurrency?: SweepResult[];
}

type Progress = (message: string) => void;

function finishedLines(count: number, spec: Omit<LineSpec, 'status'>): LineSpec[] {
  return Array.from({ length: count }, () => ({ status: 'finished', ...spec }));
}

function workloadOf(spec: ThroughputSpec, lines = spec.lines): Workload {
  return {
    lines: finishedLines(lines, { analysis: spec.analysis, fileSize: spec.fileBytes }),
    diskStorage: spec.diskStorage,
    ...(spec.oneWayLatencyMs === undefined ? {} : { oneWayLatencyMs: spec.oneWayLatencyMs }),
    ...(spec.env === undefined ? {} : { env: spec.env }),
  };
}

function describe(m: Measurement): string {
  return `${(m.wallMs / 1000).toFixed(1)} s, ${m.mbPerSec} MB/s, ${m.linesPerSec} lines/s, peak RSS ${m.peakRssMB} MB${m.ok ? '' : ` NOT OK (${m.check})`}`;
}

/** Sections 1 and 2: the product against the raw-copy limit, and the obvious way. */
export async function runThroughput(
  workerFile: string,
  sizes: Sizes,
  withBaseline: boolean,
  withThroughput: boolean,
  progress: Progress,
): Promise<{ throughput: ThroughputResult[]; baseline: BaselineResult[] }> {
  const throughput: ThroughputResult[] = [];
  const baseline: BaselineResult[] = [];
  for (const spec of sizes.throughput) {
    let housekeeper: Measurement | undefined;
    if (withThroughput) {
      const rawRuns: Measurement[] = [];
      const productRuns: Measurement[] = [];
      // Interleaved, so drift in the machine's load hits both alike.
      for (let i = 0; i < spec.repeats; i++) {
        progress(`throughput (${spec.key}) ${spec.label}: raw copy, run ${i + 1}/${spec.repeats}`);
        rawRuns.push(await measure(workerFile, workloadOf(spec), 'raw'));
        progress(`  ${describe(rawRuns.at(-1) as Measurement)}`);
        progress(`throughput (${spec.key}) ${spec.label}: housekeeper, run ${i + 1}/${spec.repeats}`);
        productRuns.push(await measure(workerFile, workloadOf(spec), 'housekeeper'));
        progress(`  ${describe(productRuns.at(-1) as Measurement)}`);
      }
      const raw = pick(rawRuns);
      housekeeper = pick(productRuns);
      const ratio = round(housekeeper.mbPerSec / raw.mbPerSec, 2);
      throughput.push({
        key: spec.key,
        label: spec.label,
        fileBytes: spec.fileBytes,
        totalBytes: spec.lines * spec.fileBytes * (spec.analysis === 'metrics' ? 4 : 1),
        housekeeper,
        raw,
        ratio,
        goal: spec.goal,
        met: housekeeper.ok && ratio >= spec.goal,
        repeatsMs: { housekeeper: productRuns.map((m) => m.wallMs), raw: rawRuns.map((m) => m.wallMs) },
      });
    }
    if (withBaseline && spec.withBaseline !== false) {
      const lines = spec.baselineLines ?? spec.lines;
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

/** The fastest successful run: on a shared machine, the fastest is the least disturbed. */
function pick(runs: readonly Measurement[]): Measurement {
  return [...runs].sort((a, b) => Number(b.ok) - Number(a.ok) || a.wallMs - b.wallMs)[0] as Measurement;
}

const MEMORY_GOAL_MB = 200;
/** The product's default (lambda/config.ts). */
const DEFAULT_LINE_CONCURRENCY = 8;

/** Section 3: peak RSS of the housekeeper's own process as files grow (objects on disk). */
export async function runMemory(
  workerFile: string,
  sizes: Sizes,
  fromThroughput: readonly ThroughputResult[],
  progress: Progress,
): Promise<MemoryResult[]> {
  const results: MemoryResult[] = [];
  for (const { fileBytes, lines, lineConcurrency } of sizes.memory) {
    const concurrency = lineConcurrency ?? DEFAULT_LINE_CONCURRENCY;
    const source = 'memory run';
    progress(
      `memory: ${lines} lines x ${formatBytes(fileBytes)}, LINE_CONCURRENCY=${concurrency}, ${source}`,
    );
    const m = await measure(
      workerFile,
      {
        lines: finishedLines(lines, { fileSize: fileBytes }),
        diskStorage: true,
        env: { LINE_CONCURRENCY: String(concurrency) },
      },
      'housekeeper',
    );
    progress(`  ${describe(m)}`);
    results.push(memoryResult(fileBytes, lines, concurrency, m, source));
  }
  const largest = sizes.throughput.reduce<ThroughputSpec | undefined>(
    (max, spec) => (max === undefined || spec.fileBytes > max.fileBytes ? spec : max),
    undefined,
  );
  const reused = fromThroughput.find((t) => t.key === largest?.key);
  if (largest !== undefined) {
    if (reused !== undefined) {
      results.push(
        memoryResult(
          largest.fileBytes,
          largest.lines,
          DEFAULT_LINE_CONCURRENCY,
          reused.housekeeper,
          `throughput (${largest.key})`,
        ),
      );
    } else {
      progress(`memory: ${largest.label}`);
      const m = await measure(workerFile, workloadOf(largest), 'housekeeper');
      progress(`  ${describe(m)}`);
      results.push(memoryResult(largest.fileBytes, largest.lines, DEFAULT_LINE_CONCURRENCY, m, 'memory run'));
    }
  }
  return results;
}

function memoryResult(
  fileBytes: number,
  lines: number,
  lineConcurrency: number,
  m: Measurement,
  source: string,
): MemoryResult {
  return {
    fileBytes,
    lines,
    lineConcurrency,
    housekeeper: m,
    goalMB: MEMORY_GOAL_MB,
    met: m.ok && m.peakRssMB < MEMORY_GOAL_MB,
    source,
  };
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

const BUNDLE_GOAL_BYTES = 1_000_000;
const IMPORT_GOAL_MS = 150;

/** Section 5: the function's bundle as `cdk synth` builds it, and its import time in a fresh process. */
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
    goalBytes: BUNDLE_GOAL_BYTES,
    bundleMet: handler.bytes < BUNDLE_GOAL_BYTES,
    topInputs: topInputs(handler.metafile, 10),
    topPackages: topPackages(handler.metafile, 10),
    imports,
    goalMs: IMPORT_GOAL_MS,
    importMet: imports.every((timing) => timing.importMedianMs < IMPORT_GOAL_MS),
  };
}

/** Section 6: lines per second by LINE_CONCURRENCY on 256 KiB lines, on loopback and with added latency. */
export async function runConcurrency(
  workerFile: string,
  sizes: Sizes,
  progress: Progress,
): Promise<SweepResult[]> {
  const results: SweepResult[] = [];
  const { lines, levels, repeats, latencyLines, oneWayLatencyMs } = sizes.sweep;
  for (const latency of [0, oneWayLatencyMs]) {
    const count = latency === 0 ? lines : latencyLines;
    for (const level of levels) {
      const runs: Measurement[] = [];
      for (let i = 0; i < repeats; i++) {
        progress(
          `concurrency: LINE_CONCURRENCY=${level}, ${count} lines x 256 KiB, ${latency === 0 ? 'loopback' : `+${latency} ms each way`}, run ${i + 1}/${repeats}`,
        );
        runs.push(
          await measure(
            workerFile,
            {
              lines: finishedLines(count, { fileSize: 256 * KIB }),
              env: { LINE_CONCURRENCY: String(level) },
              ...(latency === 0 ? {} : { oneWayLatencyMs: latency }),
            },
            'housekeeper',
          ),
        );
        progress(`  ${describe(runs.at(-1) as Measurement)}`);
      }
      results.push({
        lineConcurrency: level,
        oneWayLatencyMs: latency,
        housekeeper: pick(runs),
        repeatsMs: runs.map((m) => m.wallMs),
      });
    }
  }
  return results;
}

export function formatBytes(bytes: number): string {
  if (bytes >= GIB && bytes % GIB === 0) return `${bytes / GIB} GiB`;
  if (bytes >= MIB && bytes % MIB === 0) return `${bytes / MIB} MiB`;
  if (bytes >= KIB && bytes % KIB === 0) return `${bytes / KIB} KiB`;
  return `${bytes} B`;
}
