/**
 * How Lambda starts a function's Node.js process, emulated for the benchmark and the exec wrapper
 * tests: `AWS_LAMBDA_EXEC_WRAPPER <node> <runtime flags> <entry>`.
 */
import { fileURLToPath } from 'node:url';
import { DEFAULT_MEMORY_SIZE, EXEC_WRAPPER_FILE } from '../../infra/function-runtime.ts';

/** The wrapper as committed (the stack copies it into every function's code). */
export const EXEC_WRAPPER_SOURCE = fileURLToPath(
  new URL(`../../lambda/${EXEC_WRAPPER_FILE}`, import.meta.url),
);

/**
 * `deployed`: the stack's NODE_OPTIONS through its exec wrapper. `runtime`: the runtime's own
 * flags and the stack's NODE_OPTIONS, no wrapper (what the function got before the wrapper).
 */
export type Launch = 'deployed' | 'runtime';

/**
 * The flags the Lambda Node.js runtime puts before its entry for a function of `memoryMB`: a
 * tenth of the memory for the young generation (half of it per semi-space), the rest for the old
 * one. From the runtime's public bootstrap scripts; AWS may change it, which the exec wrapper
 * does not depend on.
 */
export function lambdaRuntimeFlags(memoryMB: number): string[] {
  const newSpace = Math.floor(memoryMB / 10);
  return [
    '--expose-gc',
    '--max-http-header-size',
    '81920',
    `--max-semi-space-size=${Math.floor(newSpace / 2)}`,
    `--max-old-space-size=${memoryMB - newSpace}`,
  ];
}

/**
 * The command that starts `entryArgs` (Node flags and the entry, the entry last) the way Lambda
 * starts the function for the default memory size (see {@link Launch}). The caller sets
 * NODE_OPTIONS to the stack's. Lambda runs the wrapper itself, by its path: so does this.
 */
export function lambdaCommand(launch: Launch, entryArgs: readonly string[]): [string, string[]] {
  const node = [...lambdaRuntimeFlags(DEFAULT_MEMORY_SIZE), ...entryArgs];
  return launch === 'deployed'
    ? [EXEC_WRAPPER_SOURCE, [process.execPath, ...node]]
    : [process.execPath, node];
}
