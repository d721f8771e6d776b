import { styleText } from 'node:util';
import { LogFormatter, Logger, LogItem } from '@aws-lambda-powertools/logger';
import type { LogAttributes, UnformattedAttributes } from '@aws-lambda-powertools/logger/types';
import { SERVICE_NAME } from '../shared/contract.ts';
import { redactingReplacer, redactText } from '../shared/redact.ts';

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
  // Powertools' extension point for serialization: every string and property name of a log item
  // is cleaned of the session key (a reason can quote what the service sent); children inherit it.
  const jsonReplacerFn = redactingReplacer;
  if (output === undefined) return new Logger({ serviceName: SERVICE_NAME, jsonReplacerFn });
  return terminalLogger(
    {
      serviceName: SERVICE_NAME,
      jsonReplacerFn,
      ...(output.format === 'text' ? { logFormatter: new TextLogFormatter() } : {}),
    },
    output,
  );
}

type LoggerOptions = ConstructorParameters<typeof Logger>[0];

/**
 * Powertools' Logger, printing through a terminal's output: its extension points are
 * `printLog` (how one item is printed) and `createLogger` (what `createChild` builds). The class
 * closes over `output` because the base constructor may already print (the sampling-rate notice)
 * before a field of the subclass would be set.
 */
function terminalLogger(options: LoggerOptions, output: TerminalLogOutput): Logger {
  class TerminalLogger extends Logger {
    protected override createLogger(childOptions?: LoggerOptions): Logger {
      return new TerminalLogger(childOptions);
    }

    protected override printLog(_logLevel: number, log: LogItem): void {
      log.prepareForPrint();
      const attributes = log.getAttributes();
      // The text line is not JSON, so the replacer never sees it: the line itself is cleaned.
      output.write(
        redactText(
          output.format === 'json'
            ? JSON.stringify(attributes, this.getJsonReplacer())
            : textLogLine(attributes, output.color),
        ),
      );
    }
  }
  return new TerminalLogger(options);
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
 * Control characters from anywhere (a file name the service sent) are escaped, never sent to the
 * terminal as they are.
 */
export function textLogLine(attributes: LogAttributes, color = false): string {
  const { time, level, message, lineId, ...details } = attributes;
  const levelName = String(level ?? 'INFO');
  const padded = safe(levelName).padEnd(5);
  const shownLevel = color
    ? styleText(LEVEL_STYLE[levelName] ?? 'reset', padded, { validateStream: false })
    : padded;
  const subject = typeof lineId === 'string' ? `line ${safe(lineId)}: ` : '';
  const fields = flatten(details, '', new Set()).map(([key, value]) => `${safe(key)}=${value}`);
  return [
    `${safe(String(time ?? ''))} ${shownLevel} ${subject}${safe(String(message ?? ''))}`,
    ...fields,
  ].join('  ');
}

/**
 * `{ request: { dryRun: false } }` as `[['request.dryRun', 'false']]`; an error as `Name: message`;
 * a value with `toJSON` (a Date, a URL) as what it gives; an object met again (a cycle) as `[circular]`.
 */
function flatten(value: Record<string, unknown>, prefix: string, seen: Set<object>): [string, string][] {
  const out: [string, string][] = [];
  seen.add(value);
  for (const [key, raw] of Object.entries(value)) {
    const name = `${prefix}${key}`;
    const item = hasToJson(raw) ? raw.toJSON() : raw;
    if (item === undefined || item === null || item === false || item === 0) continue;
    if (Array.isArray(item) && item.length === 0) continue;
    if (item instanceof Error) out.push([name, shown(`${item.name}: ${item.message}`)]);
    else if (typeof item === 'object' && seen.has(item)) out.push([name, '[circular]']);
    else if (typeof item === 'object' && !Array.isArray(item)) {
      out.push(...flatten(item as Record<string, unknown>, `${name}.`, seen));
    } else out.push([name, shown(item)]);
  }
  return out;
}

function hasToJson(value: unknown): value is { toJSON: () => unknown } {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as { toJSON?: unknown }).toJSON === 'function'
  );
}

/** A string with its control characters (C0, DEL, C1) escaped as `\u001b` is, never sent raw to the terminal. */
function safe(text: string): string {
  return text.replace(/\p{Cc}/gu, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function shown(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=\p{Cc}]+$/u.test(value) ? value : safe(JSON.stringify(value));
  if (typeof value === 'bigint') return value.toString();
  try {
    return safe(JSON.stringify(value) ?? String(value));
  } catch {
    // A list holding a cycle: its name is enough at a terminal (the JSON logs handle cycles).
    return '[unprintable]';
  }
}
