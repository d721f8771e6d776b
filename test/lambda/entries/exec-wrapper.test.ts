import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MEMORY_SIZE, FUNCTION_NODE_OPTIONS } from '../../../infra/function-runtime.ts';
import type { NodeRuntimeFacts } from '../../../lambda/entries/node-runtime.ts';
import { EXEC_WRAPPER_SOURCE, lambdaCommand, lambdaRuntimeFlags } from '../../support/lambda-launch.ts';

const run = promisify(execFile);
const NODE_RUNTIME_MODULE = fileURLToPath(
  new URL('../../../lambda/entries/node-runtime.ts', import.meta.url),
);

/** What the started process reports of itself: what the functions log at cold start, and its arguments. */
interface Seen extends NodeRuntimeFacts {
  readonly argv: string[];
}

/**
 * The real lambda/exec-wrapper.sh, run by its path as Lambda runs it, in front of a real Node
 * process with the runtime's flags for the default memory size and the stack's NODE_OPTIONS.
 */
describe('exec wrapper (lambda/exec-wrapper.sh)', () => {
  let dir: string;
  let entry: string;

  beforeAll(async () => {
    // A space in the path: the entry must reach Node as one argument.
    dir = await mkdtemp(join(tmpdir(), 'exec wrapper-'));
    entry = join(dir, 'entry.mjs');
    await writeFile(
      entry,
      [
        // Node 24 runs the TypeScript module as it is (type stripping).
        `import { nodeRuntimeFacts } from ${JSON.stringify(pathToFileURL(NODE_RUNTIME_MODULE).href)};`,
        'process.stdout.write(JSON.stringify({ ...nodeRuntimeFacts(), argv: process.argv.slice(2) }));',
        'process.exitCode = Number(process.env.EXIT_CODE ?? 0);',
      ].join('\n'),
    );
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function start(command: [string, string[]], env: Record<string, string> = {}): Promise<Seen> {
    const [file, args] = command;
    const { stdout } = await run(file, args, {
      env: { PATH: process.env.PATH ?? '', NODE_OPTIONS: FUNCTION_NODE_OPTIONS, ...env },
    });
    return JSON.parse(stdout) as Seen;
  }

  it('is committed executable: Lambda runs it by its path', () => {
    expect(statSync(EXEC_WRAPPER_SOURCE).mode & 0o111).toBe(0o111);
  });

  it("drops the runtime's semi-space flag so NODE_OPTIONS sizes the young generation", async () => {
    const oldSpace = lambdaRuntimeFlags(DEFAULT_MEMORY_SIZE).find((f) =>
      f.startsWith('--max-old-space-size='),
    );
    const runtimeSemiSpace = lambdaRuntimeFlags(DEFAULT_MEMORY_SIZE).find((f) =>
      f.startsWith('--max-semi-space-size='),
    );
    expect(oldSpace).toBeDefined();
    expect(runtimeSemiSpace).toBe('--max-semi-space-size=51');

    const wrapped = await start(lambdaCommand('deployed', [entry]));
    const unwrapped = await start(lambdaCommand('runtime', [entry]));
    // The reference: the same old generation, the semi-space from NODE_OPTIONS alone.
    const reference = await start([process.execPath, [String(oldSpace), entry]]);

    expect(wrapped.heapLimitMiB).toBe(reference.heapLimitMiB);
    // Without the wrapper the runtime's 51 MB semi-spaces win over NODE_OPTIONS.
    expect(unwrapped.heapLimitMiB).toBeGreaterThan(wrapped.heapLimitMiB + 100);
    expect(unwrapped.execArgv).toContain(runtimeSemiSpace);
  });

  it("keeps the runtime's other flags, in order, with their separate values", async () => {
    const seen = await start(lambdaCommand('deployed', [entry]));

    expect(seen.execArgv).toEqual(
      lambdaRuntimeFlags(DEFAULT_MEMORY_SIZE).filter((f) => !f.startsWith('--max-semi-space-size=')),
    );
  });

  it('drops the flag in either spelling and passes other arguments through intact', async () => {
    const seen = await start([
      EXEC_WRAPPER_SOURCE,
      [
        process.execPath,
        '--max_semi_space_size=64',
        '--title=house keeper',
        '--max-semi-space-size=32',
        entry,
      ],
    ]);
    const reference = await start([process.execPath, [entry]]);

    expect(seen.execArgv).toEqual(['--title=house keeper']);
    expect(seen.heapLimitMiB).toBe(reference.heapLimitMiB);
  });

  it("exits with the runtime's exit code", async () => {
    const [file, args] = lambdaCommand('deployed', [entry]);
    const failure = await run(file, args, { env: { PATH: process.env.PATH ?? '', EXIT_CODE: '3' } }).then(
      () => undefined,
      (error: unknown) => error as { code?: number },
    );

    expect(failure?.code).toBe(3);
  });
});
