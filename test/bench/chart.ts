import type { Measurement } from './measure.ts';
import type { BenchResults } from './report.ts';
import { formatBytes } from './sets.ts';

/** One series of a panel: a value per category, or none where it was not measured. */
interface Series {
  readonly name: string;
  readonly color: string;
  readonly values: readonly (number | undefined)[];
}

interface Panel {
  readonly title: string;
  readonly unit: string;
  readonly categories: readonly string[];
  readonly xLabel: string;
  readonly series: readonly Series[];
  readonly kind: 'bars' | 'lines';
  readonly log?: boolean;
  /** A horizontal goal line. */
  readonly goal?: { readonly value: number; readonly label: string };
}

const WIDTH = 420;
const HEIGHT = 330;
const MARGIN = { top: 40, right: 16, bottom: 70, left: 56 };
const COLORS = { housekeeper: '#1f77b4', reference: '#7f7f7f', baseline: '#d62728', latency: '#ff7f0e' };

const xml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The size sweep (throughput and peak RSS by file size) and the concurrency sweep, as one SVG. */
export function renderChart(results: BenchResults): string {
  const panels = [sizeThroughput(results), sizeMemory(results), concurrency(results)].filter(
    (panel): panel is Panel => panel !== undefined,
  );
  const width = WIDTH * Math.max(1, panels.length);
  const height = HEIGHT + 30;
  const m = results.machine;
  const caption = `tokens-housekeeper bench ${results.generatedAt.slice(0, 10)}${results.commit ? ` @ ${results.commit}` : ''}${results.quick ? ' (quick)' : ''}: ${m.nproc} CPUs ${m.cpuModel}, Node ${m.node}, loopback`;
  const body = panels.map((panel, i) => `<g transform="translate(${i * WIDTH},0)">${renderPanel(panel)}</g>`);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    ...body,
    `<text x="8" y="${height - 8}" fill="#555">${xml(caption)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}

function sizeCategories(results: BenchResults): number[] {
  const sizes = new Set<number>();
  // A mixed set (the API examples' sizes) has no one file size.
  for (const set of results.throughput ?? []) if (!set.mixed) sizes.add(set.fileBytes);
  for (const point of results.memory ?? []) sizes.add(point.fileBytes);
  return [...sizes].sort((a, b) => a - b);
}

/** Per file size, the figure of each tool (first measurement of that size wins). */
function bySize(
  results: BenchResults,
  value: (m: Measurement) => number,
): Record<'housekeeper' | 'reference' | 'baseline', Map<number, number>> {
  const out = {
    housekeeper: new Map<number, number>(),
    reference: new Map<number, number>(),
    baseline: new Map<number, number>(),
  };
  const put = (map: Map<number, number>, size: number, m: Measurement | undefined) => {
    if (m?.ok && !map.has(size)) map.set(size, value(m));
  };
  for (const set of results.throughput ?? []) {
    if (set.mixed) continue;
    put(out.housekeeper, set.fileBytes, set.housekeeper);
    put(out.reference, set.fileBytes, set.reference);
  }
  for (const point of results.memory ?? []) put(out.housekeeper, point.fileBytes, point.housekeeper);
  const sizeOf = new Map((results.throughput ?? []).map((set) => [set.key, set.fileBytes]));
  for (const entry of results.baseline ?? []) {
    const size = sizeOf.get(entry.key);
    if (size !== undefined) put(out.baseline, size, entry.baseline);
  }
  return out;
}

function sizeThroughput(results: BenchResults): Panel | undefined {
  const sizes = sizeCategories(results);
  if (sizes.length === 0) return undefined;
  const figures = bySize(results, (m) => m.mbPerSec);
  return {
    title: 'Size sweep: throughput',
    unit: 'MB/s',
    xLabel: 'file size',
    categories: sizes.map(formatBytes),
    kind: 'bars',
    series: (['reference', 'housekeeper', 'baseline'] as const).map((tool) => ({
      name: tool,
      color: COLORS[tool],
      values: sizes.map((size) => figures[tool].get(size)),
    })),
  };
}

function sizeMemory(results: BenchResults): Panel | undefined {
  const sizes = sizeCategories(results);
  if (sizes.length === 0) return undefined;
  const figures = bySize(results, (m) => m.peakRssMB);
  // Each run's bound is its own RSS at start + the budget + 64 MB: the line shows the lowest.
  const bounds = (results.memory ?? []).map((row) => row.boundMB);
  const bound = bounds.length === 0 ? undefined : Math.min(...bounds);
  return {
    title: 'Size sweep: peak RSS of the process',
    unit: 'MB (log)',
    xLabel: 'file size',
    categories: sizes.map(formatBytes),
    kind: 'bars',
    log: true,
    ...(bound === undefined ? {} : { goal: { value: bound, label: `goal ${bound} MB (lowest bound)` } }),
    series: (['reference', 'housekeeper', 'baseline'] as const).map((tool) => ({
      name: tool,
      color: COLORS[tool],
      values: sizes.map((size) => figures[tool].get(size)),
    })),
  };
}

function concurrency(results: BenchResults): Panel | undefined {
  const sweep = results.concurrency ?? [];
  if (sweep.length === 0) return undefined;
  const levels = [...new Set(sweep.map((r) => r.lineConcurrency))].sort((a, b) => a - b);
  const latencies = [...new Set(sweep.map((r) => r.oneWayLatencyMs))].sort((a, b) => a - b);
  return {
    title: 'Concurrency sweep: 256 KiB lines',
    unit: 'lines/s',
    xLabel: 'LINE_CONCURRENCY',
    categories: levels.map(String),
    kind: 'lines',
    series: latencies.map((latency) => ({
      name: latency === 0 ? 'loopback' : `+${2 * latency} ms round trip`,
      color: latency === 0 ? COLORS.housekeeper : COLORS.latency,
      values: levels.map((level) => {
        const hit = sweep.find((r) => r.lineConcurrency === level && r.oneWayLatencyMs === latency);
        return hit?.housekeeper.ok ? hit.housekeeper.linesPerSec : undefined;
      }),
    })),
  };
}

function niceMax(value: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * magnitude) return step * magnitude;
  return 10 * magnitude;
}

function renderPanel(panel: Panel): string {
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const values = panel.series.flatMap((s) => s.values.filter((v): v is number => v !== undefined));
  if (panel.goal !== undefined) values.push(panel.goal.value);
  const top = niceMax(Math.max(1, ...values) * 1.05);
  const bottom = panel.log ? 10 ** Math.floor(Math.log10(Math.max(1, Math.min(...values)))) : 0;
  const y = (v: number) =>
    panel.log
      ? MARGIN.top +
        plotH * (1 - (Math.log10(v) - Math.log10(bottom)) / (Math.log10(top) - Math.log10(bottom)))
      : MARGIN.top + plotH * (1 - v / top);
  const ticks = panel.log
    ? [1, 2, 5]
        .flatMap((m) => [1, 10, 100, 1000, 10_000].map((p) => m * p))
        .filter((t) => t >= bottom && t <= top)
    : [0, 0.25, 0.5, 0.75, 1].map((f) => f * top);
  const parts: string[] = [];
  parts.push(`<text x="${MARGIN.left}" y="18" font-size="13" font-weight="bold">${xml(panel.title)}</text>`);
  parts.push(`<text x="${MARGIN.left}" y="32" fill="#555">${xml(panel.unit)}</text>`);
  for (const tick of ticks.sort((a, b) => a - b)) {
    parts.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${y(tick).toFixed(1)}" y2="${y(tick).toFixed(1)}" stroke="#e5e5e5"/>`,
      `<text x="${MARGIN.left - 4}" y="${(y(tick) + 4).toFixed(1)}" text-anchor="end" fill="#555">${Number(tick.toPrecision(3))}</text>`,
    );
  }
  const band = plotW / panel.categories.length;
  panel.categories.forEach((category, i) => {
    parts.push(
      `<text x="${(MARGIN.left + band * (i + 0.5)).toFixed(1)}" y="${MARGIN.top + plotH + 14}" text-anchor="middle">${xml(category)}</text>`,
    );
  });
  parts.push(
    `<text x="${MARGIN.left + plotW / 2}" y="${MARGIN.top + plotH + 30}" text-anchor="middle" fill="#555">${xml(panel.xLabel)}</text>`,
  );
  if (panel.kind === 'bars') {
    const barW = (band * 0.8) / panel.series.length;
    panel.series.forEach((series, s) => {
      series.values.forEach((value, i) => {
        if (value === undefined) return;
        const x = MARGIN.left + band * i + band * 0.1 + barW * s;
        const yTop = y(value);
        parts.push(
          `<rect x="${x.toFixed(1)}" y="${yTop.toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${(MARGIN.top + plotH - yTop).toFixed(1)}" fill="${series.color}"><title>${xml(`${series.name}: ${value} ${panel.unit}`)}</title></rect>`,
          `<text x="${(x + barW / 2).toFixed(1)}" y="${(yTop - 3).toFixed(1)}" text-anchor="middle" font-size="9">${Math.round(value)}</text>`,
        );
      });
    });
  } else {
    for (const series of panel.series) {
      const points = series.values
        .map((value, i) =>
          value === undefined ? undefined : ([MARGIN.left + band * (i + 0.5), y(value), value] as const),
        )
        .filter((p) => p !== undefined);
      parts.push(
        `<polyline fill="none" stroke="${series.color}" stroke-width="2" points="${points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(' ')}"/>`,
      );
      for (const [px, py, value] of points) {
        parts.push(
          `<circle cx="${px.toFixed(1)}" cy="${py.toFixed(1)}" r="3" fill="${series.color}"/>`,
          `<text x="${px.toFixed(1)}" y="${(py - 6).toFixed(1)}" text-anchor="middle" font-size="9">${value}</text>`,
        );
      }
    }
  }
  if (panel.goal !== undefined) {
    const gy = y(panel.goal.value).toFixed(1);
    parts.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${gy}" y2="${gy}" stroke="#2ca02c" stroke-dasharray="5,3"/>`,
      `<text x="${MARGIN.left + plotW}" y="${Number(gy) - 3}" text-anchor="end" fill="#2ca02c">${xml(panel.goal.label)}</text>`,
    );
  }
  parts.push(
    `<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}" stroke="#333"/>`,
    `<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${MARGIN.top + plotH}" y2="${MARGIN.top + plotH}" stroke="#333"/>`,
  );
  const legendY = HEIGHT - 18;
  panel.series.forEach((series, i) => {
    const x = MARGIN.left + i * 120;
    parts.push(
      `<rect x="${x}" y="${legendY - 9}" width="10" height="10" fill="${series.color}"/>`,
      `<text x="${x + 14}" y="${legendY}">${xml(series.name)}</text>`,
    );
  });
  return parts.join('\n');
}
