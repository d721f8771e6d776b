/**
 * The workloads of every section, full size and `--quick`. Keys are the same in both, so a quick
 * run reads like a small full one.
 */

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

/** One kind of line in a mixed set: its analysis and the bytes of each of its files. */
export interface LineShape {
  readonly analysis: 'none' | 'metrics';
  readonly fileSizes: Readonly<Record<string, number>>;
}

/**
 * The sizes of the tokens service API's examples (/work/shared/seeds, issue 22): an analysed line
 * (`analysis: metrics`, DELETE example) with its four files, and the two `data` sizes of the lines
 * without analysis (single-line and list examples). Cycled, so half the lines are analysed.
 */
export const EXAMPLE_LINES: readonly LineShape[] = [
  { analysis: 'metrics', fileSizes: { data: 124_415, score: 37_769, analysis: 2_067, delta: 40_658 } },
  { analysis: 'none', fileSizes: { data: 35_151 } },
  { analysis: 'metrics', fileSizes: { data: 124_415, score: 37_769, analysis: 2_067, delta: 40_658 } },
  { analysis: 'none', fileSizes: { data: 124_415 } },
];

/** One archiving workload of the throughput section: the housekeeper against the reference. */
export interface ThroughputSpec {
  readonly key: string;
  readonly label: string;
  readonly lines: number;
  /** `metrics` lines carry 4 files, `none` lines 1. */
  readonly analysis: 'none' | 'metrics';
  /** Bytes of every file; for a mixed set, its largest file. */
  readonly fileBytes: number;
  /** Lines of several shapes, cycled over the set's lines (then `analysis` and `fileBytes` do not apply). */
  readonly mix?: readonly LineShape[];
  /** Large objects go to disk, not the parent's memory. */
  readonly diskStorage: boolean;
  /** The housekeeper's VERIFY_READBACK (the reference reads nothing back). */
  readonly readback: 'head' | 'full';
  /**
   * The housekeeper's LINE_CONCURRENCY (FILE_CONCURRENCY stays 1), and so the files both tools
   * have in flight; the product's default when undefined.
   */
  readonly lineConcurrency?: number;
  /** Reference and housekeeper runs each, interleaved; the best (least disturbed) counts. */
  readonly repeats: number;
  /** Lines the obvious way archives from this set; none when undefined. */
  readonly baselineLines?: number;
  /** Added to each direction of every connection (a stand-in for distance; loopback has none). */
  readonly oneWayLatencyMs?: number;
  /** Least housekeeper MB/s over reference MB/s (issue 13); the set is reported only when undefined. */
  readonly goal?: number;
  /** Least start-adjusted ratio (issue 22), judged beside `goal`. */
  readonly adjustedGoal?: number;
  /** Also measure the rule's requests done plainly (`rule-floor.ts`); small files only. */
  readonly ruleFloor?: boolean;
}

/** The shape of the set's `index`th line. */
export function shapeOf(spec: ThroughputSpec, index: number): LineShape {
  const mixed = spec.mix?.[index % spec.mix.length];
  if (mixed !== undefined) return mixed;
  const names = spec.analysis === 'metrics' ? ['data', 'score', 'analysis', 'delta'] : ['data'];
  return {
    analysis: spec.analysis,
    fileSizes: Object.fromEntries(names.map((name) => [name, spec.fileBytes])),
  };
}

/** Bytes of the set's first `lines` lines. */
export function bytesOf(spec: ThroughputSpec, lines = spec.lines): number {
  let total = 0;
  for (let i = 0; i < lines; i++) {
    for (const size of Object.values(shapeOf(spec, i).fileSizes)) total += size;
  }
  return total;
}

/** The memory section: peak RSS as files grow (one in flight), and as more large files are in flight. */
export interface MemorySpec {
  /** File sizes archived one at a time (one line of one file). */
  readonly sizes: readonly number[];
  /** The file size of the in-flight sweep. */
  readonly inFlightFileBytes: number;
  /** Files in flight (lines of one file, LINE_CONCURRENCY as many). */
  readonly inFlight: readonly number[];
}

/** Sizes of every section; `--quick` shrinks them. */
export interface Sizes {
  readonly throughput: readonly ThroughputSpec[];
  readonly memory: MemorySpec;
  readonly list: { readonly lines: number; readonly finished: number; readonly pageSize: number };
  readonly coldStartRuns: number;
  readonly sweep: {
    readonly lines: number;
    readonly levels: readonly number[];
    /** Runs per point; the fastest counts. */
    readonly repeats: number;
    readonly latencyLines: number;
    readonly oneWayLatencyMs: number;
    /** One-way latencies to sweep (0 = loopback); loopback and `oneWayLatencyMs` when undefined. */
    readonly latencies?: readonly number[];
  };
}

/** The reference's files at once (issue 13); the ratio sets run the housekeeper with as many. */
const FILES_IN_FLIGHT = 4;

/** The sets of issue 13's goals, plus 4 MiB files and small lines over +20 ms round trips, reported without one. */
function throughputSets(s: {
  smallLines: number;
  exampleLines: number;
  midLines: number;
  large: number;
  largest: number;
  rttLines: number;
  repeats: number;
}): ThroughputSpec[] {
  const atFour = { lineConcurrency: FILES_IN_FLIGHT };
  return [
    {
      key: 'small',
      label: `${s.smallLines} lines x 256 KiB, head`,
      lines: s.smallLines,
      analysis: 'none',
      fileBytes: 256 * KIB,
      diskStorage: false,
      readback: 'head',
      ...atFour,
      repeats: s.repeats,
      baselineLines: s.smallLines,
      goal: 0.7,
      adjustedGoal: 0.8,
      ruleFloor: true,
    },
    {
      key: 'examples',
      label: `${s.exampleLines} lines of the API examples' sizes (2 KB to 125 KB), half with 4 files, head`,
      lines: s.exampleLines,
      analysis: 'none',
      fileBytes: 124_415,
      mix: EXAMPLE_LINES,
      diskStorage: false,
      readback: 'head',
      ...atFour,
      repeats: s.repeats,
      adjustedGoal: 0.95,
      ruleFloor: true,
    },
    {
      key: 'mid',
      label: `${s.midLines} lines x 4 files of 4 MiB, head`,
      lines: s.midLines,
      analysis: 'metrics',
      fileBytes: 4 * MIB,
      diskStorage: false,
      readback: 'head',
      ...atFour,
      repeats: 1,
      baselineLines: s.midLines,
    },
    {
      key: 'large-2',
      label: `2 lines x ${formatBytes(s.large)}, head`,
      lines: 2,
      analysis: 'none',
      fileBytes: s.large,
      diskStorage: true,
      readback: 'head',
      ...atFour,
      repeats: s.repeats,
      baselineLines: 1,
      goal: 0.85,
    },
    {
      key: 'large-1',
      label: `1 line x ${formatBytes(s.largest)}, head`,
      lines: 1,
      analysis: 'none',
      fileBytes: s.largest,
      diskStorage: true,
      readback: 'head',
      ...atFour,
      repeats: s.repeats,
      goal: 0.85,
    },
    {
      key: 'large-2-full',
      label: `2 lines x ${formatBytes(s.large)}, full`,
      lines: 2,
      analysis: 'none',
      fileBytes: s.large,
      diskStorage: true,
      readback: 'full',
      ...atFour,
      repeats: 1,
      goal: 0.6,
    },
    {
      key: 'large-1-full',
      label: `1 line x ${formatBytes(s.largest)}, full`,
      lines: 1,
      analysis: 'none',
      fileBytes: s.largest,
      diskStorage: true,
      readback: 'full',
      ...atFour,
      repeats: 1,
      goal: 0.6,
    },
    {
      key: 'small-rtt',
      label: `${s.rttLines} lines x 256 KiB, head, +20 ms round trip, default concurrency`,
      lines: s.rttLines,
      analysis: 'none',
      fileBytes: 256 * KIB,
      diskStorage: false,
      readback: 'head',
      repeats: 1,
      oneWayLatencyMs: 10,
      ruleFloor: true,
    },
  ];
}

export const FULL: Sizes = {
  throughput: throughputSets({
    smallLines: 600,
    exampleLines: 300,
    midLines: 50,
    large: 256 * MIB,
    largest: GIB,
    rttLines: 120,
    repeats: 2,
  }),
  memory: { sizes: [64 * MIB, 256 * MIB, GIB], inFlightFileBytes: 256 * MIB, inFlight: [1, 2, 4, 8] },
  list: { lines: 10_000, finished: 100, pageSize: 1000 },
  coldStartRuns: 7,
  sweep: { lines: 200, levels: [1, 2, 4, 8, 16, 32], repeats: 2, latencyLines: 128, oneWayLatencyMs: 10 },
};

export const QUICK: Sizes = {
  throughput: throughputSets({
    smallLines: 50,
    exampleLines: 40,
    midLines: 5,
    large: 24 * MIB,
    largest: 48 * MIB,
    rttLines: 16,
    repeats: 1,
  }),
  memory: { sizes: [16 * MIB, 48 * MIB], inFlightFileBytes: 24 * MIB, inFlight: [1, 2, 4] },
  list: { lines: 1000, finished: 10, pageSize: 100 },
  coldStartRuns: 3,
  sweep: { lines: 40, levels: [1, 4, 16], repeats: 1, latencyLines: 16, oneWayLatencyMs: 10 },
};

export function formatBytes(bytes: number): string {
  if (bytes >= GIB && bytes % GIB === 0) return `${bytes / GIB} GiB`;
  if (bytes >= MIB && bytes % MIB === 0) return `${bytes / MIB} MiB`;
  if (bytes >= KIB && bytes % KIB === 0) return `${bytes / KIB} KiB`;
  return `${bytes} B`;
}
