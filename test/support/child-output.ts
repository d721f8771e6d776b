import type { ChildProcess } from 'node:child_process';
import type { Summary } from '../../lambda/core/types.ts';

/** What a child process wrote so far, collected as it comes. */
export interface ChildOutput {
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Collects a child's stdout and stderr (spawned with both piped) as UTF-8 text; of stderr, only
 * the last `stderrTail` characters when given (a long run's logs).
 */
export function collectOutput(
  child: ChildProcess,
  { stderrTail }: { stderrTail?: number } = {},
): ChildOutput {
  const output = { stdout: '', stderr: '' };
  child.stdout?.setEncoding('utf8').on('data', (text: string) => {
    output.stdout += text;
  });
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    output.stderr =
      stderrTail === undefined ? output.stderr + text : (output.stderr + text).slice(-stderrTail);
  });
  return output;
}

/** How a child process ended, and what it wrote. */
export interface ChildResult extends ChildOutput {
  /** Exit status, or null when killed by a signal. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Resolves when the child has exited and its output is closed; rejects when it could not start. */
export function childEnded(child: ChildProcess, options: { stderrTail?: number } = {}): Promise<ChildResult> {
  const output = collectOutput(child, options);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) =>
      resolve({ code, signal, stdout: output.stdout, stderr: output.stderr }),
    );
  });
}

/** The summary a CLI run printed on stdout, or undefined when it printed none (or not JSON). */
export function summaryOf(stdout: string): Summary | undefined {
  try {
    return stdout.trim() === '' ? undefined : (JSON.parse(stdout) as Summary);
  } catch {
    return undefined;
  }
}
