/**
 * How Lambda starts the function's Node.js process, emulated for every process the bench
 * measures: `node <runtime flags> <entry>` with the stack's NODE_OPTIONS, the runtime's flags as
 * its published bootstrap sets them for the function's memory size. No exec wrapper (issue 13).
 */
import { DEFAULT_MEMORY_SIZE, FUNCTION_NODE_OPTIONS } from '../../infra/function-runtime.ts';

/** The NODE_OPTIONS the stack gives the function. */
export const LAMBDA_NODE_OPTIONS = FUNCTION_NODE_OPTIONS;

/**
 * The flags the Lambda Node.js runtime puts before its entry for a function of `memoryMB`: a
 * tenth of the memory for the young generation (half of it per semi-space), the rest for the old
 * one. On the command line they win over the same flags in NODE_OPTIONS.
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
 * The command that runs `entryArgs` (Node flags and the entry, the entry last) as Lambda starts
 * the function at its default memory size. The caller sets NODE_OPTIONS to {@link LAMBDA_NODE_OPTIONS}.
 */
export function lambdaNodeCommand(entryArgs: readonly string[]): [string, string[]] {
  return [process.execPath, [...lambdaRuntimeFlags(DEFAULT_MEMORY_SIZE), ...entryArgs]];
}
