import { getHeapStatistics } from 'node:v8';

/** How this Node.js process was started, as the functions log it once per cold start. */
export interface NodeRuntimeFacts {
  readonly node: string;
  /** Node and V8 flags from the command line (NODE_OPTIONS not included). */
  readonly execArgv: readonly string[];
  /** V8's heap limit, old and young generation together, in MiB. */
  readonly heapLimitMiB: number;
}

/**
 * The facts that show the exec wrapper took effect in Lambda: the runtime's
 * `--max-semi-space-size` is gone from `execArgv`, and the heap limit is the old generation plus
 * 12 MiB (three 4 MiB semi-spaces), not plus 192 MiB as with the runtime's flag at 1024 MB
 * (test/lambda/exec-wrapper.test.ts starts Node both ways).
 */
export function nodeRuntimeFacts(): NodeRuntimeFacts {
  return {
    node: process.version,
    execArgv: [...process.execArgv],
    heapLimitMiB: getHeapStatistics().heap_size_limit / 2 ** 20,
  };
}
