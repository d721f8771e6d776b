import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type ChildResult, childEnded } from './child-output.ts';

/** The project's root, where the terminal entries run from. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The project's tsx, which runs a TypeScript entry directly. */
export const TSX = fileURLToPath(new URL('../../node_modules/.bin/tsx', import.meta.url));

/** A child's environment: exactly `env`, plus PATH and HOME (nothing else of this process leaks in). */
export function childEnv(env: Record<string, string>): Record<string, string> {
  return { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env };
}

export type CliResult = ChildResult;

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
  return childEnded(child);
}
