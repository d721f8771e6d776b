import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { within } from '../support/fake-s3.ts';
import { runtimeClient } from './ric.ts';

let dir: string | undefined;
afterEach(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** Writes what `npm ci` leaves first: the entry (extracted), then the addon (copied by postinstall). */
async function writeClient(addon: string): Promise<void> {
  await mkdir(dirname(addon), { recursive: true });
  await writeFile(join(dirname(addon), 'index.mjs'), '');
  await writeFile(addon, '');
}

describe('the runtime client cache', () => {
  it('is built once when two callers ask for it at once: the second waits for the lock and finds it built', async () => {
    dir = await mkdtemp(join(tmpdir(), 'ric-lock-'));
    const installs: string[] = [];
    const install = async (home: string, addon: string) => {
      installs.push(home);
      await writeClient(addon);
    };

    const entries = await Promise.all([runtimeClient(dir, install), runtimeClient(dir, install)]);

    expect(installs).toHaveLength(1);
    expect(entries[0]).toBe(entries[1]);
    expect(entries[0]).toMatch(/node_modules\/aws-lambda-ric\/index\.mjs$/);
  });

  it('is not taken for built while its build still runs: a caller that comes once the addon appears waits for the build to end', async () => {
    dir = await mkdtemp(join(tmpdir(), 'ric-lock-'));
    const cache = dir;
    let written: () => void = () => undefined;
    const addonWritten = new Promise<void>((resolve) => {
      written = resolve;
    });
    let finish: () => void = () => undefined;
    const finished = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const building = runtimeClient(cache, async (_home, addon) => {
      // postinstall copies the addon with cp (not atomic), and npm ci goes on after it.
      await writeClient(addon);
      written();
      await finished;
    });
    await addonWritten;

    const second = runtimeClient(cache, async () => {
      throw new Error('built twice');
    });

    // Still building: the second caller has no client to run yet.
    const early = await within(second, 300);
    finish();
    const [first, then] = await Promise.all([building, second]);

    expect(early).toBe('timed out');
    expect(then).toBe(first);
  });

  it('builds again after a build that broke off once its addon appeared (npm ci failed, or the run was killed)', async () => {
    dir = await mkdtemp(join(tmpdir(), 'ric-lock-'));
    const installs: string[] = [];
    await expect(
      runtimeClient(dir, async (home, addon) => {
        installs.push(home);
        await writeClient(addon);
        throw new Error('npm ci exited 1');
      }),
    ).rejects.toThrow('npm ci exited 1');

    await runtimeClient(dir, async (home, addon) => {
      installs.push(home);
      await writeClient(addon);
    });

    expect(installs).toHaveLength(2);
  });

  it('takes over the lock a killed run left behind, and builds', async () => {
    dir = await mkdtemp(join(tmpdir(), 'ric-lock-'));
    let home = '';
    await expect(
      runtimeClient(dir, async (at) => {
        home = at;
        throw new Error('npm ci exited 1');
      }),
    ).rejects.toThrow('npm ci exited 1');
    // The lock a run killed while building leaves: a folder its holder no longer refreshes.
    await mkdir(`${home}.lock`);
    const minuteAgo = new Date(Date.now() - 60_000);
    await utimes(`${home}.lock`, minuteAgo, minuteAgo);
    const installs: string[] = [];

    const entry = await within(
      runtimeClient(dir, async (at, addon) => {
        installs.push(at);
        await writeClient(addon);
      }),
      5_000,
    );

    expect(entry).toMatchObject({ value: expect.stringMatching(/index\.mjs$/) });
    expect(installs).toEqual([home]);
  });
});
