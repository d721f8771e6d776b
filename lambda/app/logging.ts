import { styleText } from 'node:util';
import { LogFormatter, Logger, LogItem } from '@aws-lambda-powertools/logger';
import type { LogAttributes, UnformattedAttributes } from '@aws-lambda-powertools/logger/types';
import { SERVICE_NAME } from '../shared/contract.ts';

/** How a terminal command shows its logs: Powertools' JSON, or one short line for a person. */
export type LogFormat = 'json' | 'text';

/** Where a terminal command's log lines go, one at a time (without the newline). */
export interface TerminalLogOutput {
  readonly format: LogFormat;
  /** Writes one log line (the terminal keeps it apart from the progress line). */
  readonly write: (line: string) => void;
  /** Whether `text` lines may be coloured (the stream is a terminal and colour is not turned off). */
  readonly color: boolean;
}

// Set once by a terminal command before it builds anything; a Lambda never sets it (JSON, as is).
let terminalOutput: TerminalLogOutput | undefined;

/** Sends the loggers made from now on to a terminal command's output (see {@link serviceLogger}). */
export function logToTerminal(output: TerminalLogOutput | undefined): void {
  terminalOutput = output;
}

/**
 * A logger of the housekeeper, named as its service. In Lambda (and wherever no terminal output
 * was chosen) it is Powertools' own, printing JSON on stdout; in a terminal command it prints
 * through that command's output, as JSON or as short lines.
 */
export function serviceLogger(): Logger {
  const output = terminalOutput;
  if (output === undefined) return new Logger({ serviceName: SERVICE_NAME });
  return new TerminalLogger(
    {
      serviceName: SERVICE_NAME,
      ...(output.format === 'text' ? { logFormatter: new TextLogFormatter() } : {}),
    },
    output,
  );
}

type LoggerOptions = ConstructorParameters<typeof Logger>[0];

/**
 * Powertools' Logger, printing through a terminal's output: its extension points are
 * `printLog` (how one item is printed) and `createLogger` (what `createChild` builds).
 */
class TerminalLogger extends Logger {
  readonly #output: TerminalLogOutput;

  constructor(options: LoggerOptions, output: TerminalLogOutput) {
    super(options);
    this.#output = output;
  }

  protected override createLogger(options?: LoggerOptions): Logger {
    return new TerminalLogger(options, this.#output);
  }

  protected override printLog(logLevel: number, log: LogItem): void {
    // The base constructor may print (a warning about its options) before #output is set.
    const output = this.#output as TerminalLogOutput | undefined;
    if (output === undefined) {
      super.printLog(logLevel, log);
      return;
    }
    log.prepareForPrint();
    const attributes = log.getAttributes();
    output.write(
      output.format === 'json'
        ? JSON.stringify(attributes, this.getJsonReplacer())
        : textLogLine(attributes, output.color),
    );
  }
}

/**
 * The attributes a person reads at a terminal: the time of day, the level, the line, what
 * happened and its details. The service name, sampling rate and run id (the summary has it) are
 * left out. (An error stays an Error here: {@link textLogLine} shows its name and message, no stack.)
 */
export class TextLogFormatter extends LogFormatter {
  override formatAttributes(attributes: UnformattedAttributes, additional: LogAttributes): LogItem {
    const { runId: _runId, ...details } = additional;
    return new LogItem({
      attributes: {
        time: attributes.timestamp.toTimeString().slice(0, 8),
        level: attributes.logLevel,
        message: attributes.message,
        ...details,
      },
    });
  }
}

const LEVEL_STYLE: Record<string, Parameters<typeof styleText>[0]> = {
  DEBUG: 'gray',
  INFO: 'green',
  WARN: 'yellow',
  ERROR: 'red',
  CRITICAL: 'red',
};

/**
 * One log item as a line: `13:24:08 WARN  line <id>: retrying  attempt=2 error="…"` (the
 * details as `key=value`, strings quoted when they hold spaces, nested objects flattened; what
 * says nothing happened (0, false, null, an empty list) is left out: the JSON logs keep it).
 */
export function textLogLine(attributes: LogAttributes, color = false): string {
  const { time, level, message, lineId, ...details } = attributes;
  const levelName = String(level ?? 'INFO');
  const padded = levelName.padEnd(5);
  const shownLevel = color
    ? styleText(LEVEL_STYLE[levelName] ?? 'reset', padded, { validateStream: false })
    : padded;
  const subject = typeof lineId === 'string' ? `line ${lineId}: ` : '';
  const fields = flatten(details).map(([key, value]) => `${key}=${value}`);
  return [`${String(time ?? '')} ${shownLevel} ${subject}${String(message ?? '')}`, ...fields].join('  ');
}

/** `{ request: { dryRun: false } }` as `[['request.dryRun', 'false']]`; an error as `Name: message`. */
function flatten(value: Record<string, unknown>, prefix = ''): [string, string][] {
  const out: [string, string][] = [];
  for (const [key, item] of Object.entries(value)) {
    const name = `${prefix}${key}`;
    if (item === undefined || item === null || item === false || item === 0) continue;
    if (Array.isArray(item) && item.length === 0) continue;
    if (item instanceof Error) out.push([name, shown(`${item.name}: ${item.message}`)]);
    else if (item !== null && typeof item === 'object' && !Array.isArray(item)) {
      out.push(...flatten(item as Record<string, unknown>, `${name}.`));
    } else out.push([name, shown(item)]);
  }
  return out;
}

function shown(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return typeof value === 'bigint' ? value.toString() : JSON.stringify(value);
}
