import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { childEnded } from '../support/child-output.ts';
import { LAMBDA_NODE_OPTIONS, lambdaNodeCommand } from './lambda-start.ts';
import type { PlanLine } from './plan.ts';
import type { WorkerMode, WorkerReport } from './worker.ts';

/** What one measured process did, as seen from both sides. */
export interface ChildRun extends WorkerReport {
  /** What the child printed on stdout (the CLI's summary JSON). */
  readonly stdout: string;
  /** CPU time of this process, which runs the local servers, while the child ran. */
  readonly serverCpuMs: number;
}

export interface ChildOptions {
  readonly mode: WorkerMode;
  /** The housekeeper's environment, from the local stack. */
  readonly env: Readonly<Record<string, string>>;
  /** CLI flags (`housekeep`). */
  readonly args?: readonly string[];
  /** Files to copy (`reference`). */
  readonly plan?: readonly PlanLine[];
  /** The simulator's key (`reference`, which reads no secret). */
  readonly sessionKey?: string;
  /** Files the reference copies at once. */
  readonly filesInFlight?: number;
  /** Record every request in order (the report's `requests.trace`). */
  readonly trace?: boolean;
  /** Write a V8 CPU profile of the work (not the start-up) to this file. */
  readonly cpuProfile?: string;
}

/** The last bytes of the child's stderr (its logs) kept to explain a failure. */
const STDERR_TAIL = 16 * 1024;

/**
 * Runs the bundled worker in a fresh Node process, started the way Lambda starts the function
 * (lambda-start.ts): the runtime's flags for the default memory size and the stack's
 * NODE_OPTIONS. Every mode starts alike, so the reference and the housekeeper share the same
 * start-up conditions.
 */
export async function runChild(workerFile: string, options: ChildOptions): Promise<ChildRun> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-run-'));
  try {
    const reportFile = join(dir, 'report.json');
    const planFile = join(dir, 'plan.json');
    if (options.plan !== undefined) await writeFile(planFile, JSON.stringify(options.plan));
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      TMPDIR: tmpdir(),
      POWERTOOLS_LOG_LEVEL: 'INFO',
      POWERTOOLS_METRICS_DISABLED: 'true',
      ...options.env,
      BENCH_MODE: options.mode,
      BENCH_ARGS: JSON.stringify(options.args ?? []),
      BENCH_PLAN: planFile,
      BENCH_SESSION_KEY: options.sessionKey ?? '',
      BENCH_FILES_IN_FLIGHT: String(options.filesInFlight ?? ''),
      BENCH_REPORT: reportFile,
      BENCH_TRACE: options.trace ? '1' : '',
      BENCH_CPU_PROFILE: options.cpuProfile ?? '',
      NODE_OPTIONS: LAMBDA_NODE_OPTIONS,
    };
    // Loaded from --eval rather than as the main module: lambda/entries/cli.ts runs itself when its
    // import.meta.url is the main module's, which inside a bundle it would be.
    const loader = `await import(${JSON.stringify(pathToFileURL(workerFile).href)});`;
    const cpuBefore = process.cpuUsage();
    const [command, args] = lambdaNodeCommand(['--input-type=module', '--eval', loader]);
    const child = spawn(command, args, {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const { code, stdout, stderr } = await childEnded(child, { stderrTail: STDERR_TAIL });
    const cpu = process.cpuUsage(cpuBefore);
    let report: WorkerReport;
    try {
      report = JSON.parse(await readFile(reportFile, 'utf8')) as WorkerReport;
    } catch {
      throw new Error(`${options.mode} worker exited with ${code} and no report; stderr ends:\n${stderr}`);
    }
    if (options.mode !== 'housekeep' && code !== 0) {
      throw new Error(`${options.mode} worker exited with ${code}; stderr ends:\n${stderr}`);
    }
    return { ...report, stdout, serverCpuMs: (cpu.user + cpu.system) / 1000 };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
