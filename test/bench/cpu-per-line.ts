/**
 * CPU milliseconds per line of the housekeeper and of the plain parallel copy on small lines
 * (issue 22), without the rest of the bench: `npx tsx test/bench/cpu-per-line.ts [--lines 300]
 * [--repeats 3] [--set examples|small] [--tool all|housekeeper,reference,rule-floor]`. Each run is a fresh
 * local stack and a fresh bundled process started as Lambda starts the function (child.ts); the
 * CPU counted is the child's, from the start of its work to its end (start-up left out). Prints
 * every run and the median per tool, with the load average, since the machine may be shared.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { LineSpec } from '../local/tokens-service.ts';
import { bundle } from './bundles.ts';
import { type Measurement, measure, type Tool } from './measure.ts';

/** The API examples' sizes, half the lines analysed (4 files): the bench's `examples` set. */
const EXAMPLES: readonly Readonly<Record<string, number>>[] = [
  { data: 124_415, score: 37_769, analysis: 2_067, delta: 40_658 },
  { data: 35_151 },
  { data: 124_415, score: 37_769, analysis: 2_067, delta: 40_658 },
  { data: 124_415 },
];

function linesOf(set: string, count: number): LineSpec[] {
  return Array.from({ length: count }, (_, i): LineSpec => {
    const fileSizes = set === 'small' ? { data: 256 * 1024 } : (EXAMPLES[i % EXAMPLES.length] ?? {});
    const analysis = Object.keys(fileSizes).length > 1 ? 'metrics' : 'none';
    return { status: 'finished', analysis, fileSizes };
  });
}

const { values } = parseArgs({
  options: {
    lines: { type: 'string', default: '300' },
    repeats: { type: 'string', default: '3' },
    set: { type: 'string', default: 'examples' },
    tool: { type: 'string', default: 'all' },
  },
});
const lines = Number(values.lines);
const repeats = Number(values.repeats);
const tools: Tool[] =
  values.tool === 'all' ? ['reference', 'rule-floor', 'housekeeper'] : (values.tool.split(',') as Tool[]);

const dir = await mkdtemp(join(tmpdir(), 'cpu-per-line-'));
try {
  const worker = await bundle('test/bench/worker.ts', dir, 'worker');
  const runs = new Map<Tool, Measurement[]>(tools.map((tool) => [tool, []]));
  for (let i = 0; i < repeats; i++) {
    for (const tool of tools) {
      const m = await measure(
        worker.file,
        { lines: linesOf(values.set, lines), env: { LINE_CONCURRENCY: '4' } },
        tool,
      );
      runs.get(tool)?.push(m);
      process.stderr.write(
        `${tool} run ${i + 1}: ${(m.cpuMs / m.lines).toFixed(2)} ms CPU/line, ${m.wallMs} ms wall, ` +
          `load ${m.load1}, ${m.ok ? 'ok' : `NOT OK: ${m.check}`}\n`,
      );
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
  const perLine = new Map(
    [...runs].map(([tool, ms]) => [tool, median(ms.map((m) => m.cpuMs / Math.max(1, m.lines)))]),
  );
  for (const [tool, value] of perLine)
    process.stdout.write(`${tool}: median ${value.toFixed(2)} ms CPU/line\n`);
  const ours = perLine.get('housekeeper');
  const copy = perLine.get('reference');
  const floor = perLine.get('rule-floor');
  if (ours !== undefined && copy !== undefined) {
    process.stdout.write(`housekeeper / copy: ${(ours / copy).toFixed(2)}\n`);
  }
  if (floor !== undefined && copy !== undefined) {
    process.stdout.write(`rule floor / copy: ${(floor / copy).toFixed(2)}\n`);
  }
  if (ours !== undefined && floor !== undefined) {
    process.stdout.write(`housekeeper / rule floor: ${(ours / floor).toFixed(2)}\n`);
  }
  process.stdout.write(
    `load average now: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
