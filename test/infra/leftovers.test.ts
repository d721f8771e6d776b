import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stripVTControlCharacters } from 'node:util';
import { expect, it } from 'vitest';
import { run } from './offline.ts';

const VITEST = fileURLToPath(new URL('../../node_modules/.bin/vitest', import.meta.url));

it('the stack tests leave nothing in the temp dir: every synthesized app is removed', async () => {
  // A temp dir of their own, so other tests running beside this one do not count.
  const tmp = await mkdtemp(join(tmpdir(), 'stack-tests-tmp-'));
  try {
    const { code, output } = await run(
      VITEST,
      [
        'run',
        'test/infra/housekeeping-stack.test.ts',
        'test/infra/fanout-stack.test.ts',
        '-t',
        'uses the given schedule expression|lets the planner only send to the work queue',
      ],
      { ...process.env, TMPDIR: tmp },
    );

    expect(code, output).toBe(0);
    expect(stripVTControlCharacters(output)).toMatch(/Tests +2 passed/);
    // Node's own module compile cache (enabled by the test runner) is not ours.
    const left = (await readdir(tmp)).filter((name) => name !== 'node-compile-cache');
    expect(left).toEqual([]);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});
