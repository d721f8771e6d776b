import { join, resolve } from 'node:path';
import { judgeGoals } from './goals.ts';
import type { Machine } from './machine.ts';
import type { Measurement } from './measure.ts';
import type { RuleFloorResult, SectionResults, ThroughputResult } from './sections.ts';
import { formatBytes } from './sets.ts';
import { table } from './table.ts';

/** What `npm run bench` writes to results/latest.json. */
export interface BenchResults extends SectionResults {
  /** 2: the reference is the plain parallel copy (issue 13), `raw` is gone. */
  readonly schemaVersion: 2;
  readonly generatedAt: string;
  /** The commit the bench ran on (uncommitted changes are not recorded). */
  readonly commit: string | undefined;
  /** Product files (lambda/, infra/, package files) that differed from `commit` when the bench ran. */
  readonly uncommittedProductFiles: readonly string[];
  readonly quick: boolean;
  readonly durationS: number;
  readonly machine: Machine;
  readonly notes: readonly string[];
}

const seconds = (ms: number) => (ms / 1000).toFixed(ms < 10_000 ? 2 : 1);
const cpu = (m: Measurement) => `${seconds(m.cpuMs)} / ${seconds(m.serverCpuMs)}`;
/** The budget a measurement ran with, as the product read it. */
const budget = (m: Measurement) => (m.uploadBufferBytes === null ? '' : formatBytes(m.uploadBufferBytes));
const rss = (m: Measurement) => `${m.startRssMB} / ${m.peakRssMB}`;
const check = (m: Measurement) =>
  m.ok ? `ok${m.retries ? `, ${m.retries} retries` : ''}` : `FAILED: ${m.check}`;

/** Every section present in `results`, as Markdown, and the goals of issue 13 last. */
export function renderTables(results: BenchResults): string {
  const out: string[] = [];
  const m = results.machine;
  out.push(
    `Machine: ${m.nproc} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, Node ${m.node}, ${m.platform}` +
      `${results.commit === undefined ? '' : `, commit ${results.commit}`}` +
      `${results.uncommittedProductFiles.length > 0 ? ` + uncommitted ${results.uncommittedProductFiles.join(', ')}` : ''}` +
      `${results.quick ? ' (QUICK run)' : ''}`,
  );
  const load = highestLoad(results);
  if (load !== undefined && load > m.nproc) {
    out.push(
      `Load average (1 min) reached ${load} on ${m.nproc} CPUs when a run started: other work shared the machine, figures are disturbed.`,
    );
  }

  if (results.throughput !== undefined) {
    const rows: (string | number)[][] = [];
    for (const set of results.throughput) {
      rows.push(throughputRow(`(${set.key}) ${set.label}`, set, 'reference'));
      rows.push(throughputRow('', set, 'housekeeper'));
      if (set.ruleFloor !== undefined) rows.push(floorRow(set.ruleFloor));
    }
    out.push(
      '### Throughput (1): the housekeeper against the reference, a plain parallel copy',
      table(
        [
          'Set',
          'Tool',
          'Files in flight',
          'Wall s',
          'Fixed s',
          'MB/s',
          'Lines/s',
          'Requests/line tokens + S3',
          'RSS start / peak MB',
          'Budget',
          'CPU s proc/servers',
          'CPU ms/line (less fixed)',
          'Ratio',
          'Start-adj. ratio',
          'CPU/line vs copy',
          'Goal',
          'Check',
        ],
        rows,
      ),
    );
  }

  if (results.baseline !== undefined) {
    out.push(
      '### The obvious way (2)',
      table(
        [
          'Set',
          'Wall s',
          'MB/s',
          'Lines/s',
          'Requests/line',
          'RSS start / peak MB',
          'CPU s proc/servers',
          'Housekeeper',
          'Check',
        ],
        results.baseline.map((entry) => [
          `(${entry.key}) ${entry.label}`,
          seconds(entry.baseline.wallMs),
          entry.baseline.mbPerSec,
          entry.baseline.linesPerSec,
          entry.baseline.requestsPerLine,
          rss(entry.baseline),
          cpu(entry.baseline),
          entry.housekeeper === undefined
            ? ''
            : `x${(entry.housekeeper.mbPerSec / entry.baseline.mbPerSec).toFixed(2)} as fast`,
          check(entry.baseline),
        ]),
      ),
    );
  }

  if (results.memory !== undefined) {
    out.push(
      '### Memory (3): peak RSS of the housekeeper process',
      table(
        [
          'File size',
          'Files in flight',
          'Wall s',
          'MB/s',
          'RSS at start MB',
          'Peak RSS MB',
          'Heap peak MB',
          'ArrayBuffers peak MB',
          'Budget',
          'Bound MB',
          'Goal',
          'From',
          'Check',
        ],
        results.memory.map((r) => [
          formatBytes(r.fileBytes),
          r.lines,
          seconds(r.housekeeper.wallMs),
          r.housekeeper.mbPerSec,
          r.housekeeper.startRssMB,
          r.housekeeper.peakRssMB,
          r.housekeeper.heapTotalPeakMB,
          r.housekeeper.arrayBuffersPeakMB,
          budget(r.housekeeper),
          r.boundMB,
          r.met
            ? 'met'
            : r.housekeeper.peakRssMB > r.boundMB
              ? `missed by ${r.housekeeper.peakRssMB - r.boundMB} MB`
              : 'FAILED',
          r.source,
          check(r.housekeeper),
        ]),
      ),
    );
  }

  if (results.listScale !== undefined) {
    out.push(
      '### Scale of the list (4): dry run',
      table(
        ['Lines', 'Finished', 'Paging', 'Wall s', 'Requests', 'Peak RSS MB', 'CPU s proc/servers', 'Check'],
        results.listScale.map((r) => [
          r.lines,
          r.finished,
          r.pageSize === undefined ? 'one page' : `pages of ${r.pageSize}`,
          seconds(r.housekeeper.wallMs),
          r.housekeeper.requests,
          r.housekeeper.peakRssMB,
          cpu(r.housekeeper),
          r.housekeeper.check,
        ]),
      ),
    );
  }

  const cold = results.coldStart;
  if (cold !== undefined) {
    out.push(
      '### Cold start (5): figures, no goal',
      table(
        [
          'Bundle bytes',
          'Source map bytes',
          'Node flags',
          'Import median ms',
          'Runs ms',
          'Process median ms',
          'RSS after import MB',
        ],
        cold.imports.map((timing) => [
          cold.bundleBytes,
          cold.sourceMapBytes,
          timing.nodeOptions,
          timing.importMedianMs,
          timing.importMs.join(', '),
          timing.processMedianMs,
          timing.rssAfterImportMB,
        ]),
      ),
      '#### Top inputs of the bundle (esbuild metafile, bytes in output)',
      table(
        ['Input', 'Bytes'],
        cold.topInputs.map((c) => [c.path, c.bytes]),
      ),
      '#### By package',
      table(
        ['Package', 'Bytes'],
        cold.topPackages.map((c) => [c.path, c.bytes]),
      ),
    );
  }

  if (results.concurrency !== undefined) {
    const latencies = [...new Set(results.concurrency.map((r) => r.oneWayLatencyMs))];
    const levels = [...new Set(results.concurrency.map((r) => r.lineConcurrency))];
    const find = (level: number, latency: number) =>
      results.concurrency?.find((r) => r.lineConcurrency === level && r.oneWayLatencyMs === latency);
    out.push(
      '### Concurrency sweep (6): 256 KiB lines, against the plain copy with as many files in flight',
      table(
        [
          'LINE_CONCURRENCY',
          ...latencies.flatMap((latency) => {
            const where = latency === 0 ? 'loopback' : `+${2 * latency} ms RTT`;
            return [
              `Lines/s ${where}`,
              `Copy lines/s ${where}`,
              `Ratio ${where}`,
              `Peak RSS MB ${where}`,
              `CPU s ${where}`,
            ];
          }),
        ],
        levels.map((level) => [
          level,
          ...latencies.flatMap((latency) => {
            const point = find(level, latency);
            if (point === undefined) return ['', '', '', '', ''];
            const r = point.housekeeper;
            const copy = point.reference;
            return [
              `${r.linesPerSec}${r.ok ? '' : ' (NOT OK)'}`,
              copy === undefined ? '' : `${copy.linesPerSec}${copy.ok ? '' : ' (NOT OK)'}`,
              copy === undefined ? '' : (r.linesPerSec / copy.linesPerSec).toFixed(2),
              copy === undefined ? `${r.peakRssMB}` : `${r.peakRssMB} (copy ${copy.peakRssMB})`,
              seconds(r.cpuMs),
            ];
          }),
        ]),
      ),
    );
  }

  for (const sequence of results.requestSequences ?? []) {
    const perLine = (service: string) =>
      sequence.steps.filter((step) => step.service === service && step.per === 'line').length;
    const counts = Object.entries(sequence.counts)
      .map(([service, count]) => `${service} ${count}, ${perLine(service)} of them for the line`)
      .join('; ');
    out.push(
      `### Requests of one line (7): ${sequence.tool}, ${sequence.label} (${counts})`,
      table(
        ['#', 'Per', 'Service', 'Operation', 'Path'],
        sequence.steps.map((step, i) => [i + 1, step.per, step.service, step.operation, step.target]),
      ),
    );
  }

  const goals = judgeGoals(results);
  if (goals.length > 0) {
    out.push(
      '### Goals of issues 13 and 22',
      table(
        ['Goal', 'Target', 'Measured', 'Verdict'],
        goals.map((g) => [g.goal, g.target, g.measured, g.verdict]),
      ),
    );
  }
  return `${out.join('\n\n')}\n`;
}

/** Requests per line to the tokens service and to S3 (listings included, the secret read left out). */
export function requestsPerLine(m: Measurement): { tokens: number; s3: number } {
  const of = (service: string) =>
    Object.entries(m.requestsBy)
      .filter(([key]) => key.startsWith(`${service} `))
      .reduce((sum, [, count]) => sum + count, 0);
  const lines = Math.max(1, m.lines);
  return { tokens: round2(of('tokens') / lines), s3: round2(of('s3') / lines) };
}

const round2 = (value: number) => Math.round(value * 100) / 100;

/** One goal's verdict in a cell: `>= 0.7: met`, `adj. >= 0.8: missed by 0.05`. */
function goalCell(name: string, goal: number | undefined, value: number, met: boolean | undefined): string {
  if (goal === undefined) return '';
  const verdict = met ? 'met' : value < goal ? `missed by ${(goal - value).toFixed(2)}` : 'FAILED';
  return `${name}>= ${goal}: ${verdict}`;
}

function throughputRow(
  label: string,
  set: ThroughputResult,
  tool: 'reference' | 'housekeeper',
): (string | number)[] {
  const m = set[tool];
  const ours = tool === 'housekeeper';
  return [
    label,
    ...measuredCells(m, set.fixed?.[tool], set.adjusted?.[tool]),
    ours ? set.ratio.toFixed(2) : '1.00',
    set.adjustedRatio === undefined ? '' : ours ? set.adjustedRatio.toFixed(2) : '1.00',
    set.cpuRatio === undefined ? '' : ours ? `x${set.cpuRatio.toFixed(2)}` : 'x1.00',
    ours
      ? [
          goalCell('', set.goal, set.ratio, set.met),
          goalCell('adj. ', set.adjustedGoal, set.adjustedRatio ?? 0, set.adjustedMet),
        ]
          .filter((cell) => cell !== '')
          .join('; ')
      : '',
    check(m),
  ];
}

/** The rule's requests done plainly: its figures, and its ratios to the copy where ours stand. */
function floorRow(floor: RuleFloorResult): (string | number)[] {
  return [
    '',
    ...measuredCells(floor.measurement, floor.fixed, floor.adjusted),
    '',
    floor.adjustedRatio.toFixed(2),
    `x${floor.cpuRatio.toFixed(2)}`,
    '',
    check(floor.measurement),
  ];
}

/** A throughput row's cells from the tool to its CPU per line, as every tool's row shows them. */
function measuredCells(
  m: Measurement,
  fixed: { readonly wallMs: number } | undefined,
  adjusted: { readonly cpuMsPerLine: number; readonly adjustedCpuMsPerLine: number } | undefined,
): (string | number)[] {
  const requests = requestsPerLine(m);
  return [
    m.tool,
    m.filesInFlight,
    seconds(m.wallMs),
    fixed === undefined ? '' : seconds(fixed.wallMs),
    m.mbPerSec,
    m.linesPerSec,
    `${requests.tokens} + ${requests.s3}`,
    rss(m),
    budget(m),
    cpu(m),
    adjusted === undefined ? '' : `${adjusted.cpuMsPerLine} (${adjusted.adjustedCpuMsPerLine})`,
  ];
}

/** The highest 1-minute load average seen at the start of any measurement. */
function highestLoad(results: BenchResults): number | undefined {
  const runs: Measurement[] = [
    ...(results.throughput ?? []).flatMap((t) => [
      t.reference,
      t.housekeeper,
      ...(t.ruleFloor === undefined ? [] : [t.ruleFloor.measurement]),
    ]),
    ...(results.baseline ?? []).map((b) => b.baseline),
    ...(results.memory ?? []).map((r) => r.housekeeper),
    ...(results.listScale ?? []).map((r) => r.housekeeper),
    ...(results.concurrency ?? []).map((r) => r.housekeeper),
  ];
  return runs.length === 0 ? undefined : Math.max(...runs.map((run) => run.load1));
}

/**
 * Where a bench run writes its JSON and chart: `--out DIR` (as latest.json, chart.svg), else
 * test/bench/results/ of the project, as latest.* for a complete full-size run and as quick.*
 * (ignored by git) for `--quick` and `--only`. Absolute paths, so the run can say where.
 */
export function resultFiles(
  projectRoot: string,
  options: { readonly quick: boolean; readonly partial: boolean; readonly out?: string | undefined },
): { dir: string; json: string; chart: string } {
  const official = !options.quick && !options.partial;
  const dir = resolve(options.out ?? join(projectRoot, 'test/bench/results'));
  const named = official || options.out !== undefined;
  return {
    dir,
    json: join(dir, named ? 'latest.json' : 'quick.json'),
    chart: join(dir, named ? 'chart.svg' : 'quick-chart.svg'),
  };
}
