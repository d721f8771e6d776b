/**
 * How Lambda starts a function's Node.js process, emulated for the benchmark:
 * `<node> <runtime flags> <entry>`, with the stack's NODE_OPTIONS set by the caller.
 */
import { DEFAULT_MEMORY_SIZE } from '../../infra/function-runtime.ts';

/**
 * The flags the Lambda Node.js runtime puts before its entry for a function of `memoryMB`: a
 * tenth of the memory for the young generation (half of it per semi-space), the rest for the old
 * one. From the runtime's public bootstrap scripts; AWS may change it.
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
 * starts the function for the default memory size. The caller sets NODE_OPTIONS to the stack's.
 */
export function lambdaCommand(entryArgs: readonly string[]): [string, string[]] {
  return [process.execPath, [...lambdaRuntimeFlags(DEFAULT_MEMORY_SIZE), ...entryArgs]];
}
