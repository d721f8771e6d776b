import { isAbsolute, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Measurement } from './measure.ts';
import { renderTables, resultFiles } from './report.ts';
import type { ThroughputResult } from './sections.ts';

const ROOT = '/work/repo';

describe('resultFiles (where npm run bench writes, as docs/benchmarks.md says)', () => {
  it('writes a quick run inside the project, under the names git ignores, as absolute paths', () => {
    const files = resultFiles(ROOT, { quick: true, partial: false });

    expect(files).toEqual({
      dir: join(ROOT, 'test/bench/results'),
      json: join(ROOT, 'test/bench/results/quick.json'),
      chart: join(ROOT, 'test/bench/results/quick-chart.svg'),
    });
  });

  it('writes a complete full-size run as the committed latest.json and chart.svg', () => {
    expect(resultFiles(ROOT, { quick: false, partial: false }).json).toBe(
      join(ROOT, 'test/bench/results/latest.json'),
    );
    expect(resultFiles(ROOT, { quick: false, partial: true }).json).toBe(
      join(ROOT, 'test/bench/results/quick.json'),
    );
  });

  it('writes where --out says, and names it absolutely even when it was given relative', () => {
    const files = resultFiles(ROOT, { quick: true, partial: false, out: 'bench-out' });

    expect(isAbsolute(files.json)).toBe(true);
    expect(files.json.endsWith(join('bench-out', 'latest.json'))).toBe(true);
  });
});

function measurement(tool: Measurement['tool'], over: Partial<Measurement>): Measurement {
  return {
    tool,
    wallMs: 1000,
    lines: 100,
    files: 100,
    bytes: 1e6,
    mbPerSec: 1,
    linesPerSec: 100,
    requests: 0,
    requestsBy: {},
    requestsPerLine: 0,
    filesInFlight: 4,
    uploadBufferBytes: null,
    startRssMB: 90,
    peakRssMB: 120,
    heapTotalPeakMB: 30,
    arrayBuffersPeakMB: 10,
    cpuMs: 500,
    serverCpuMs: 300,
    load1: 0,
    ok: true,
    check: 'ok',
    ...over,
  };
}

describe('renderTables (issue 22: start-adjusted ratios and CPU per line beside the wall-clock ones)', () => {
  const examplesSet = (): ThroughputResult => ({
    key: 'examples',
    label: '300 lines of the API examples sizes',
    fileBytes: 124_415,
    mixed: true,
    totalBytes: 1e6,
    lines: 100,
    readback: 'head',
    reference: measurement('reference', { requestsBy: { 'tokens GET': 100, 's3 PUT': 100 } }),
    housekeeper: measurement('housekeeper', {
      wallMs: 2000,
      cpuMs: 1200,
      requestsBy: { 'tokens GET': 300, 'tokens DELETE': 100, 's3 PUT': 400, 's3 GET': 101 },
    }),
    ratio: 0.5,
    fixed: {
      reference: { wallMs: 0, cpuMs: 0, runsMs: [0] },
      housekeeper: { wallMs: 200, cpuMs: 200, runsMs: [200] },
    },
    adjusted: {
      reference: { wallMs: 1000, cpuMsPerLine: 5, adjustedCpuMsPerLine: 5 },
      housekeeper: { wallMs: 1800, cpuMsPerLine: 12, adjustedCpuMsPerLine: 10 },
    },
    adjustedRatio: 0.56,
    cpuRatio: 2,
    adjustedGoal: 0.95,
    adjustedMet: false,
    repeatsMs: { housekeeper: [2000], reference: [1000] },
  });
  const rendered = (set: ThroughputResult) =>
    renderTables({
      schemaVersion: 2,
      generatedAt: '2026-12-07T00:00:00Z',
      commit: undefined,
      uncommittedProductFiles: [],
      quick: true,
      durationS: 1,
      machine: { nproc: 2, cpuModel: 'test', memoryGiB: 1, node: 'v24', platform: 'linux x64' },
      notes: [],
      throughput: [set],
    });

  it('shows each tool its requests per line to each service, the ratio less fixed costs, and CPU per line against the copy', () => {
    const text = rendered(examplesSet());

    const housekeeperRow = text.split('\n').find((line) => line.includes('| housekeeper'));
    expect(housekeeperRow).toContain('| 4 + 5.01 ');
    expect(housekeeperRow).toContain('| 12 (10) ');
    expect(housekeeperRow).toContain('| 0.56 ');
    expect(housekeeperRow).toContain('| x2.00 ');
    expect(housekeeperRow).toContain('adj. >= 0.95: missed by 0.39');
    expect(text).toMatch(
      /CPU per line against the plain copy: \(examples\).*\| <= 1\.5 .*\| missed by 0\.50/,
    );
  });

  it("shows the rule's requests done plainly beside them, as a figure without a target, and ours against it", () => {
    const floor = measurement('rule-floor', {
      wallMs: 1500,
      linesPerSec: 60,
      cpuMs: 900,
      requestsBy: { 'tokens GET': 300, 'tokens DELETE': 100, 's3 PUT': 300 },
    });
    const text = rendered({
      ...examplesSet(),
      ruleFloor: {
        measurement: floor,
        fixed: { wallMs: 100, cpuMs: 100, runsMs: [100] },
        adjusted: { wallMs: 1400, cpuMsPerLine: 9, adjustedCpuMsPerLine: 8 },
        adjustedRatio: 0.71,
        cpuRatio: 1.6,
      },
    });

    const floorRow = text.split('\n').find((line) => line.includes('| rule-floor'));
    expect(floorRow).toContain('| 4 + 3 ');
    expect(floorRow).toContain('| 9 (8) ');
    expect(floorRow).toContain('| 0.71 ');
    expect(floorRow).toContain('| x1.60 ');
    expect(text).toMatch(
      /rule floor\) against the plain copy: \(examples\).*start-adjusted 0\.71, CPU per line x1\.60, lines\/s 0\.60 \(60 \/ 100\); the housekeeper's CPU per line x1\.25 the floor's \| reported/,
    );
  });
});
