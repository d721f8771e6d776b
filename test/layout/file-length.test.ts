import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/** The most lines a source file of the function or the stack holds (docs/architecture.md). */
const MAX_LINES = 400;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Every `.ts` file under `folder`, relative to the repository root. */
function sources(folder: string): string[] {
  return readdirSync(join(ROOT, folder), { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.ts'))
    .map((name) => join(folder, name));
}

/** Lines as `wc -l` counts them: the newlines in the file. */
function lineCount(path: string): number {
  return readFileSync(join(ROOT, path), 'utf8').split('\n').length - 1;
}

describe('the layout', () => {
  it(`keeps every file under lambda/ and infra/ within ${MAX_LINES} lines`, () => {
    const files = [...sources('lambda'), ...sources('infra')].sort();
    const tooLong = files
      .map((path) => ({ path, lines: lineCount(path) }))
      .filter(({ lines }) => lines > MAX_LINES)
      .map(({ path, lines }) => `${path}: ${lines} lines`);

    expect(files.length).toBeGreaterThan(0);
    expect(tooLong, `files over ${MAX_LINES} lines; split them where a name explains a step`).toEqual([]);
  });
});
