/**
 * How the functions' Node.js process starts in Lambda. The benchmark starts the process it
 * measures the same way (test/support/lambda-launch.ts), so its memory figures are the deployed
 * ones.
 */

/**
 * Function memory in MB. From the benchmark (README, Benchmarks): peaks of 125-210 MB (up to 8
 * large files in flight at LINE_CONCURRENCY 8) fit 1024 MB with room to spare; a pass is bounded
 * by time, not memory.
 */
export const DEFAULT_MEMORY_SIZE = 1024;

/**
 * `--enable-source-maps`: stack traces in the logs point into the TypeScript sources.
 * `--max-semi-space-size=4`: a 4 MB semi-space, so a 12 MB young generation. Streaming allocates
 * a chunk object and buffer for every 64 KiB that passes; a small young generation collects them
 * soon, and one 1 GiB file peaks at about 160 MB instead of 185-235 MB, at the same speed
 * (README, Benchmarks, Memory). Lambda's own command-line value would win over this one; the
 * exec wrapper removes it.
 */
export const FUNCTION_NODE_OPTIONS = '--enable-source-maps --max-semi-space-size=4';

/** The wrapper script (lambda/exec-wrapper.sh), copied to the root of every function's code. */
export const EXEC_WRAPPER_FILE = 'exec-wrapper.sh';

/** Where Lambda finds it: the function's code is unpacked at /var/task. */
export const EXEC_WRAPPER_PATH = `/var/task/${EXEC_WRAPPER_FILE}`;
