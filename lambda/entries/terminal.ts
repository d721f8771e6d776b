import { Console } from 'node:console';
import { isLineId } from '../shared/ids.ts';

/**
 * A terminal command's frame: `--help`/`-h` prints `usage` on stdout and exits 0; a flag that
 * `parse` refuses is reported on stderr as `name: problem`, with the usage, and exits 2 (before
 * any configuration is read); then `run` gets the parsed options and the stdout kept for its
 * result, which ends quietly when the reader goes away (`... | head`).
 */
export async function terminalCommand<T>(
  command: { readonly name: string; readonly usage: string; readonly args: readonly string[] },
  parse: (args: readonly string[]) => T,
  run: (options: T, stdout: NodeJS.WriteStream) => Promise<number>,
): Promise<number> {
  const { name, usage, args } = command;
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  let options: T;
  try {
    options = parse(args);
  } catch (error) {
    // A flag's problem, in its own words (no error class name: it is not a crash).
    stderrConsole.log(`${name}: ${error instanceof Error ? error.message : String(error)}\n\n${usage}`);
    return 2;
  }
  const stdout = reserveStdout();
  stdout.on('error', (error: NodeJS.ErrnoException) => {
    // The reader is gone (a pipe to head, jq that quit): nothing more to say to it.
    if (error.code !== 'EPIPE') throw error;
  });
  return run(options, stdout);
}

/**
 * Keeps the real stdout for the command's result alone. Powertools builds a Console over
 * whatever `process.stdout` is when each (child) logger is made, so pointing it at stderr sends
 * every log line there.
 */
export function reserveStdout(): NodeJS.WriteStream {
  const stdout = process.stdout;
  Object.defineProperty(process, 'stdout', { value: process.stderr, configurable: true, writable: true });
  return stdout;
}

/** Messages for the operator, on stderr. */
export const stderrConsole = new Console({ stdout: process.stderr, stderr: process.stderr });

/** What a progress display shows. */
export interface ProgressState {
  readonly done: number;
  readonly total: number;
  readonly bytes: number;
}

/**
 * A one-line progress display on stderr when it is a terminal (items done / total, bytes,
 * rate); silent otherwise, so logs stay plain JSON.
 */
export function progressLine(label: string, stream: NodeJS.WriteStream = process.stderr) {
  const started = Date.now();
  let last = 0;
  const enabled = stream.isTTY === true;
  return {
    update(state: ProgressState, force = false) {
      if (!enabled) return;
      const now = Date.now();
      if (!force && now - last < 200) return;
      last = now;
      const seconds = Math.max((now - started) / 1000, 0.001);
      const mb = state.bytes / 1e6;
      stream.write(
        `\r${label}: ${state.done}/${state.total} · ${mb.toFixed(1)} MB · ${(mb / seconds).toFixed(1)} MB/s   `,
      );
    },
    finish() {
      if (enabled) stream.write('\n');
    },
  };
}

/** A plain text table: a header row, a rule, then the rows, columns padded to their widest cell. */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

/** A comma-separated flag value (`--ids a,b`) as its non-empty, trimmed items. */
export function listFlag(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** Writes a result as pretty JSON on the reserved stdout. */
export function printJson(stdout: NodeJS.WriteStream, value: unknown): void {
  stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** `--ids a,b`: each a line id (UUID), named by the flag when it is not. */
export function idsFlag(value: string): string[] {
  const ids = listFlag(value);
  const bad = ids.find((id) => !isLineId(id));
  if (bad !== undefined) throw new Error(`--ids: ${JSON.stringify(bad)} is not a line id (a UUID)`);
  if (ids.length === 0) throw new Error('--ids: expected at least one line id');
  return ids;
}

/** A flag's positive whole number (digits only: not "0x10", "1e3" or "1.5"), refused by the flag's name. */
export function positiveIntegerFlag(flag: string, text: string): number {
  if (!/^\d{1,9}$/.test(text) || Number(text) < 1) {
    throw new Error(`${flag}: expected a positive integer, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}
