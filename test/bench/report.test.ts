import { isAbsolute, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resultFiles } from './report.ts';

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
