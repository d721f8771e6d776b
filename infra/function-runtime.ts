/** How the functions' Node.js process starts in Lambda. */

/**
 * Function memory in MB. Memory is governed by the upload buffer budget (`UPLOAD_BUFFER_BYTES`,
 * see docs/benchmarks.md for the measured peaks), which leaves ample room in 1024 MB; a pass
 * is bounded by time, not memory.
 */
export const DEFAULT_MEMORY_SIZE = 1024;

/**
 * `--enable-source-maps`: stack traces in the logs point into the TypeScript sources. Nothing
 * else: the runtime's own flags stand (no exec wrapper), so the `AWS_LAMBDA_EXEC_WRAPPER` slot
 * stays free for observability layers.
 */
export const FUNCTION_NODE_OPTIONS = '--enable-source-maps';
