import { spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { childEnded } from '../support/child-output.ts';
import { LAMBDA_NODE_OPTIONS, lambdaNodeCommand } from './lambda-start.ts';
import { median, round } from './stats.ts';

/**
 * `plain`: `node` with no flags. `node-options`: the stack's NODE_OPTIONS alone. `lambda`: as
 * Lambda starts the function (lambda-start.ts): the runtime's own flags, among them
 * `--expose-gc`, and NODE_OPTIONS.
 */
export type ImportStart = 'plain' | 'node-options' | 'lambda';

const START_LABELS: Record<ImportStart, string> = {
  plain: '(none)',
  'node-options': LAMBDA_NODE_OPTIONS,
  lambda: `${LAMBDA_NODE_OPTIONS}, started as Lambda does (runtime flags)`,
};

/** What the function's bundle costs a fresh process. */
export interface ImportTiming {
  readonly nodeOptions: string;
  readonly runs: number;
  /** `await import(bundle)` inside the process, median and all runs (ms). */
  readonly importMedianMs: number;
  readonly importMs: readonly number[];
  /** Spawn to exit, Node's own start-up included (ms). */
  readonly processMedianMs: number;
  /** RSS once the handler module is loaded. */
  readonly rssAfterImportMB: number;
}

/**
 * The environment the handler needs at import (it reads its configuration at cold start).
 * ARCHIVE_BUCKET must be a valid bucket name, 3 characters at least: `b` fails at import.
 */
export const COLD_START_ENV = {
  TOKENS_API_URL: 'https://tokens.example.com',
  SESSION_KEY_SECRET_ID: 'x',
  ARCHIVE_BUCKET: 'bench-archive',
  AWS_REGION: 'us-east-1',
  POWERTOOLS_METRICS_NAMESPACE: 'TokensHousekeeper',
} as const;

/** Imports the bundle `runs` times, each in a fresh Node process started as `start` says. */
export async function timeImport(
  bundleFile: string,
  start: ImportStart,
  runs: number,
): Promise<ImportTiming> {
  const importMs: number[] = [];
  const processMs: number[] = [];
  const rss: number[] = [];
  const code = [
    'const started = performance.now();',
    `const module = await import(${JSON.stringify(pathToFileURL(bundleFile).href)});`,
    'const ms = performance.now() - started;',
    "if (typeof module.handler !== 'function') throw new Error('no handler export');",
    // On a line of its own: the handler logs its Node flags to stdout at import.
    "process.stdout.write('\\n' + JSON.stringify({ ms, rss: process.memoryUsage().rss }));",
  ].join('\n');
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const entry = ['--input-type=module', '--eval', code];
    const [command, args] = start === 'lambda' ? lambdaNodeCommand(entry) : [process.execPath, entry];
    const child = spawn(command, args, {
      env: {
        PATH: process.env.PATH ?? '',
        ...COLD_START_ENV,
        ...(start === 'plain' ? {} : { NODE_OPTIONS: LAMBDA_NODE_OPTIONS }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const ended = await childEnded(child);
    if (ended.code !== 0) throw new Error(`import failed (${ended.code}): ${ended.stderr}`);
    const output = ended.stdout;
    processMs.push(performance.now() - started);
    const { ms, rss: bytes } = JSON.parse(output.slice(output.lastIndexOf('\n') + 1)) as {
      ms: number;
      rss: number;
    };
    importMs.push(round(ms, 1));
    rss.push(bytes);
  }
  return {
    nodeOptions: START_LABELS[start],
    runs,
    importMedianMs: round(median(importMs), 1),
    importMs,
    processMedianMs: round(median(processMs), 1),
    rssAfterImportMB: round(median(rss) / 1e6, 0),
  };
}
