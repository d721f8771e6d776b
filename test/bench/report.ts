import type { Machine } from './machine.ts';
import type { Measurement } from './measure.ts';
import { formatBytes, type SectionResults } from './sections.ts';

/** What `npm run bench` writes to results/latest.json. */
export interface BenchResults extends SectionResults {
  readonly schemaVersion: 1;
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

/** A Markdown table, columns padded so it also reads well in a terminal. */
export function table(headers: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [headers, ...rows.map((row) => row.map(String))];
  const widths = headers.map((_, i) => Math.max(3, ...cells.map((row) => (row[i] ?? '').length)));
  const line = (row: readonly string[]) =>
    `| ${row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.slice(1).map(line)].join('\n');
}

const seconds = (ms: number) => (ms / 1000).toFixed(ms < 10_000 ? 2 : 1);
const cpu = (m: Measurement) => `${seconds(m.cpuMs)} / ${seconds(m.serverCpuMs)}`;
const mark = (met: boolean) => (met ? 'yes' : 'NO');

/** Every section present in `results`, as Markdown. */
export function renderTables(results: BenchResults): string {
  const out: string[] = [];
  const m = results.machine;
  out.push(
    `Machine: ${m.nproc} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, Node ${m.node}, ${m.platform}` +
      `${results.commit === undefined ? '' : `, commit ${results.commit}`}` +
      `${results.uncommittedProductFiles.length > 0 ? ` + uncommitted ${results.uncommittedProductFiles.join(', ')}` : ''}` +
      `${results.quick ? ' (QUICK run)' : ''}`,
  );

  if (results.throughput !== undefined || results.baseline !== undefined) {
    const rows: (string | number)[][] = [];
    for (const set of results.throughput ?? []) {
      rows.push(measurementRow(`(${set.key}) ${set.label}`, set.raw, '1.00 (limit)', ''));
      rows.push(
        measurementRow('', set.housekeeper, set.ratio.toFixed(2), `>= ${set.goal}: ${mark(set.met)}`),
      );
    }
    for (const entry of results.baseline ?? []) {
      const hk = entry.housekeeper;
      const versus =
        hk === undefined ? '' : `housekeeper x${(hk.mbPerSec / entry.baseline.mbPerSec).toFixed(2)}`;
      rows.push(measurementRow(`(${entry.key}) ${entry.label}`, entry.baseline, versus, ''));
    }
    out.push(
      '### Throughput (1) and baseline (2)',
      table(
        [
          'Set',
          'Tool',
          'Wall s',
          'MB/s',
          'Lines/s',
          'Requests',
          'Peak RSS MB',
          'CPU s proc/servers',
          'Ratio',
          'Goal',
          'Check',
        ],
        rows,
      ),
    );
  }

  if (results.memory !== undefined) {
    out.push(
      '### Memory (3): peak RSS of the housekeeper process',
      table(
        [
          'File size',
          'Lines',
          'LINE_CONCURRENCY',
          'Wall s',
          'MB/s',
          'RSS at start MB',
          'Peak RSS MB',
          'Heap peak MB',
          'ArrayBuffers peak MB',
          'Goal < 200 MB',
          'From',
          'Check',
        ],
        results.memory.map((r) => [
          formatBytes(r.fileBytes),
          r.lines,
          r.lineConcurrency,
          seconds(r.housekeeper.wallMs),
          r.housekeeper.mbPerSec,
          r.housekeeper.startRssMB,
          r.housekeeper.peakRssMB,
          r.housekeeper.heapTotalPeakMB,
          r.housekeeper.arrayBuffersPeakMB,
          mark(r.met),
          r.source,
          r.housekeeper.check,
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
      '### Cold start (5)',
      table(
        [
          'Bundle bytes',
          'Source map bytes',
          'Goal < 1 MB',
          'Node flags',
          'Import median ms',
          'Runs ms',
          'Process median ms',
          'RSS after import MB',
          'Goal < 150 ms',
        ],
        cold.imports.map((timing) => [
          cold.bundleBytes,
          cold.sourceMapBytes,
          mark(cold.bundleMet),
          timing.nodeOptions,
          timing.importMedianMs,
          timing.importMs.join(', '),
          timing.processMedianMs,
          timing.rssAfterImportMB,
          mark(timing.importMedianMs < cold.goalMs),
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
      results.concurrency?.find((r) => r.lineConcurrency === level && r.oneWayLatencyMs === latency)
        ?.housekeeper;
    out.push(
      '### Concurrency sweep (6): 256 KiB lines',
      table(
        [
          'LINE_CONCURRENCY',
          ...latencies.flatMap((latency) => {
            const where = latency === 0 ? 'loopback' : `+${2 * latency} ms RTT`;
            return [`Lines/s ${where}`, `Peak RSS MB ${where}`, `CPU s ${where}`];
          }),
        ],
        levels.map((level) => [
          level,
          ...latencies.flatMap((latency) => {
            const r = find(level, latency);
            return r === undefined
              ? ['', '', '']
              : [`${r.linesPerSec}${r.ok ? '' : ' (NOT OK)'}`, r.peakRssMB, seconds(r.cpuMs)];
          }),
        ]),
      ),
    );
  }
  return `${out.join('\n\n')}\n`;
}

function measurementRow(set: string, m: Measurement, ratio: string, goal: string): (string | number)[] {
  return [
    set,
    m.tool,
    seconds(m.wallMs),
    m.mbPerSec,
    m.linesPerSec,
    m.requests,
    m.peakRssMB,
    cpu(m),
    ratio,
    goal,
    m.ok ? `ok${m.retries ? `, ${m.retries} retries` : ''}` : `FAILED: ${m.check}`,
  ];
}
