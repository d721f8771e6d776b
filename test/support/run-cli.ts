import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The project's root, where the terminal entries run from. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The project's tsx, which runs a TypeScript entry directly. */
export const TSX = fileURLToPath(new URL('../../node_modules/.bin/tsx', import.meta.url));

/** A child's environment: exactly `env`, plus PATH and HOME (nothing else of this process leaks in). */
export function childEnv(env: Record<string, string>): Record<string, string> {
  return { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env };
}

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a terminal entry (`lambda/entries/cli.ts` by default) in a child process with exactly `env` (plus PATH). Asynchronous on
 * purpose: the local servers live in this process and must keep answering.
 */
export function runCli(
  args: readonly string[],
  env: Record<string, string>,
  script = 'lambda/entries/cli.ts',
): Promise<CliResult> {
  const child = spawn(TSX, [script, ...args], {
    cwd: ROOT,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}
