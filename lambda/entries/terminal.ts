import { clearLine, cursorTo } from 'node:readline';
import { format } from 'node:util';
import { type LogFormat, logToTerminal } from '../app/logging.ts';
import { VARIABLES } from '../shared/environment.ts';
import { isLineId } from '../shared/ids.ts';
import { redactedJson, redactText } from '../shared/redact.ts';

/** The flag every terminal command takes for Powertools' raw JSON logs. */
export const JSON_LOGS_FLAG = '--json-logs';

/** What every command's usage ends with: where the logs go and how to get them raw. */
export const LOG_USAGE = `${JSON_LOGS_FLAG}: logs as Powertools JSON lines (also LOG_FORMAT=json); on a terminal they
are short lines (LOG_FORMAT=text forces those), otherwise JSON. Logs and progress go to stderr.`;

/**
 * A terminal command's frame: `--help`/`-h` prints `usage` on stdout and exits 0 (so `parse` never sees it); a flag that
 * `parse` refuses is reported on stderr as `name: problem`, with the usage, and exits 2 (before
 * any configuration is read); the logs are set up (see {@link chooseLogFormat}); then `run` gets
 * the parsed options and the stdout kept for its result, which ends quietly when the reader goes
 * away (`... | head`).
 */
export async function terminalCommand<T>(
  command: {
    readonly name: string;
    readonly usage: string;
    readonly args: readonly string[];
    /** Whether the command logs (and so takes `--json-logs` and reads LOG_FORMAT); default true. */
    readonly logs?: boolean;
  },
  parse: (args: readonly string[]) => T,
  run: (options: T, stdout: NodeJS.WriteStream) => Promise<number>,
): Promise<number> {
  const { name, usage, args, logs = true } = command;
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  // The flag counts only among the options (before a `--`), like every other flag.
  const end = args.indexOf('--');
  const flags = end === -1 ? args : args.slice(0, end);
  const jsonLogs = logs && flags.includes(JSON_LOGS_FLAG);
  let options: T;
  let logFormat: LogFormat | undefined;
  try {
    options = parse(
      jsonLogs ? args.filter((arg, at) => arg !== JSON_LOGS_FLAG || (end !== -1 && at > end)) : args,
    );
    if (logs)
      logFormat = chooseLogFormat(jsonLogs, process.env[VARIABLES.LOG_FORMAT.name], screen.isTerminal);
  } catch (error) {
    // A flag's problem, in its own words (no error class name: it is not a crash).
    stderrConsole.log(`${name}: ${error instanceof Error ? error.message : String(error)}\n\n${usage}`);
    return 2;
  }
  if (logFormat !== undefined) {
    logToTerminal({ format: logFormat, write: (line) => screen.print(line), color: screen.hasColors });
  }
  const stdout = reserveStdout();
  stdout.on('error', (error: NodeJS.ErrnoException) => {
    // The reader is gone (a pipe to head, jq that quit): nothing more to say to it.
    if (error.code !== 'EPIPE') throw error;
  });
  try {
    return await run(options, stdout);
  } finally {
    screen.endStatus();
  }
}

/**
 * How a terminal command logs: `--json-logs` or `LOG_FORMAT=json` ask for Powertools' JSON,
 * `LOG_FORMAT=text` for short lines (in any case); otherwise short lines on a terminal and JSON
 * elsewhere (a file, a pipe, a log collector). Any other `LOG_FORMAT` is refused, naming it.
 */
export function chooseLogFormat(
  jsonLogs: boolean,
  variable: string | undefined,
  isTerminal: boolean,
): LogFormat {
  if (jsonLogs) return 'json';
  const asked = variable?.trim().toLowerCase();
  if (asked === undefined || asked === '') return isTerminal ? 'text' : 'json';
  if (asked === 'json' || asked === 'text') return asked;
  throw new Error(`LOG_FORMAT: expected json or text, got ${JSON.stringify(variable)}`);
}

/**
 * Keeps the real stdout for the command's result alone. Powertools builds a Console over
 * whatever `process.stdout` is when each (child) logger is made, so pointing it at stderr sends
 * any log line that does not go through the terminal's output there too.
 */
export function reserveStdout(): NodeJS.WriteStream {
  const stdout = process.stdout;
  Object.defineProperty(process, 'stdout', { value: process.stderr, configurable: true, writable: true });
  return stdout;
}

/**
 * The operator's stderr: whole lines (logs, messages) and, on a terminal, one progress line kept
 * below them. A line printed while the progress line shows clears it first and draws it again
 * underneath, so the two never share a line.
 */
export class StderrScreen {
  #status: string | undefined;

  constructor(readonly stream: NodeJS.WriteStream = process.stderr) {}

  get isTerminal(): boolean {
    return this.stream.isTTY === true;
  }

  /** Whether colour may be used (a terminal, and NO_COLOR / FORCE_COLOR say so). */
  get hasColors(): boolean {
    return this.isTerminal && typeof this.stream.hasColors === 'function' && this.stream.hasColors();
  }

  /** Prints one whole line above the progress line, cleaned of the session key (it may quote the service). */
  print(text: string): void {
    const status = this.#status;
    if (status !== undefined) this.#clear();
    this.stream.write(`${redactText(text)}\n`);
    if (status !== undefined) this.stream.write(status);
  }

  /** Shows, or redraws, the progress line (nothing off a terminal). */
  status(text: string): void {
    if (!this.isTerminal) return;
    if (this.#status !== undefined) this.#clear();
    this.stream.write(text);
    this.#status = text;
  }

  /** Leaves the progress line as last drawn; what is printed next starts below it. */
  endStatus(): void {
    if (this.#status === undefined) return;
    this.stream.write('\n');
    this.#status = undefined;
  }

  #clear(): void {
    clearLine(this.stream, 0);
    cursorTo(this.stream, 0);
  }
}

/** The process's stderr, shared by the logs, the messages and the progress line. */
export const screen = new StderrScreen();

/** Messages for the operator, on stderr (never on the progress line). */
export const stderrConsole = {
  log: (...args: unknown[]): void => screen.print(format(...args)),
};

/** What a progress display shows. */
export interface ProgressState {
  readonly done: number;
  readonly total: number;
  readonly bytes: number;
}

/**
 * A one-line progress display on stderr when it is a terminal (items done / total, bytes,
 * rate), kept apart from the log lines; silent otherwise.
 */
export function progressLine(label: string, on: StderrScreen = screen) {
  const started = Date.now();
  let last = 0;
  let latest: ProgressState | undefined;
  let drawn: ProgressState | undefined;
  const draw = (state: ProgressState, now: number) => {
    last = now;
    drawn = state;
    const seconds = Math.max((now - started) / 1000, 0.001);
    const mb = state.bytes / 1e6;
    on.status(
      `${label}: ${state.done}/${state.total} · ${mb.toFixed(1)} MB · ${(mb / seconds).toFixed(1)} MB/s`,
    );
  };
  return {
    update(state: ProgressState, force = false) {
      if (!on.isTerminal) return;
      latest = state;
      const now = Date.now();
      if (force || now - last >= 200) draw(state, now);
    },
    /** Draws the last state if a redraw was skipped, and leaves the line as the final figures. */
    finish() {
      if (latest !== undefined && latest !== drawn) draw(latest, Date.now());
      on.endStatus();
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

/** Writes a result as pretty JSON on the reserved stdout, cleaned of the session key. */
export function printJson(stdout: NodeJS.WriteStream, value: unknown): void {
  stdout.write(`${redactedJson(value, 2)}\n`);
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

/** A flag's whole number, 0 included; anything else is refused naming the flag. */
export function wholeNumberFlag(flag: string, text: string): number {
  if (!/^\d{1,9}$/.test(text)) {
    throw new Error(`${flag}: expected a whole number (0 or more), got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/** A flag's share of a whole, above 0 and at most 1 (`0.5`); anything else is refused naming the flag. */
export function shareFlag(flag: string, text: string): number {
  // As MAX_DISMANTLE_SHARE reads it: `01` is no share (read as 1 it would turn the check off).
  const value = /^(0|1)?(\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
  if (!(value > 0 && value <= 1)) {
    throw new Error(
      `${flag}: expected a share above 0 and at most 1, such as 0.5, got ${JSON.stringify(text)}`,
    );
  }
  return value;
}
