import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runtimeClient } from './ric.ts';

let dir: string | undefined;
afterEach(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('the runtime client cache', () => {
  it('is built once when two callers ask for it at once: the second waits for the lock and finds it built', async () => {
    dir = await mkdtemp(join(tmpdir(), 'ric-lock-'));
    const installs: string[] = [];
    const install = async (home: string, addon: string) => {
      installs.push(home);
      await mkdir(dirname(addon), { recursive: true });
      await writeFile(join(dirname(addon), 'index.mjs'), '');
      await writeFile(addon, '');
    };

    const entries = await Promise.all([runtimeClient(dir, install), runtimeClient(dir, install)]);

    expect(installs).toHaveLength(1);
    expect(entries[0]).toBe(entries[1]);
    expect(entries[0]).toMatch(/node_modules\/aws-lambda-ric\/index\.mjs$/);
  });
});
