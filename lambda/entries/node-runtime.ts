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
 * The facts of the Node.js process the function runs in: its version, the flags it got (the
 * runtime's and NODE_OPTIONS), and its heap limit; logged once per cold start.
 */
export function nodeRuntimeFacts(): NodeRuntimeFacts {
  return {
    node: process.version,
    execArgv: [...process.execArgv],
    heapLimitMiB: getHeapStatistics().heap_size_limit / 2 ** 20,
  };
}
