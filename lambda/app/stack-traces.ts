/** The code of undici's notices (`InformationalError`): a connection it closed itself, not a failure. */
const UNDICI_NOTICE = 'UND_ERR_INFO';

/** Marks the formatter installed here, so a second install (another createDeps) does not wrap it again. */
const INSTALLED = Symbol.for('tokens-housekeeper.plain-notice-stacks');

type PrepareStackTrace = NonNullable<typeof Error.prepareStackTrace>;

/**
 * Formats the stack of an undici notice as V8 does, without the source map; every other stack is
 * formatted as before (through the source map under `--enable-source-maps`). Node reads the stack
 * of every error a stream is destroyed with, and undici destroys a kept-alive connection that
 * idled with a notice (`socket idle timeout`, `reset`): in the happy path the first such stack of
 * a process would parse the bundle's whole source map (0.3 to 0.4 s of CPU, issue 22) for a stack
 * nobody logs. Installed once per process; a no-op where Node exposes no default formatter.
 */
export function formatUndiciNoticesPlainly(): void {
  const previous = Error.prepareStackTrace;
  if (previous === undefined || INSTALLED in previous) return;
  const prepare: PrepareStackTrace = (error, frames) =>
    isUndiciNotice(error) ? plainStack(error, frames) : previous(error, frames);
  Error.prepareStackTrace = Object.assign(prepare, { [INSTALLED]: true });
}

function isUndiciNotice(error: unknown): boolean {
  return error instanceof Error && (error as { code?: unknown }).code === UNDICI_NOTICE;
}

/** V8's own format: the error's name and message, then one `at` line per frame. */
function plainStack(error: Error, frames: readonly NodeJS.CallSite[]): string {
  return [Error.prototype.toString.call(error), ...frames.map((frame) => `    at ${frame.toString()}`)].join(
    '\n',
  );
}
