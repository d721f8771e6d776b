/**
 * The deployed form of a function, rehearsed: the stack synthesized with its bundle, the
 * function's asset copied alone into a fresh folder, and started as Lambda starts it, under the
 * real Runtime Interface Client with the template's environment (its references resolved to the
 * local servers), the variables Lambda sets, and the Node flags the Node.js runtime passes for the
 * template's memory size.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { HousekeepingStack, type HousekeepingStackProps } from '../../infra/housekeeping-stack.ts';
import { CDK_CONTEXT } from '../infra/offline.ts';
import { type InvocationResult, RuntimeApi } from './runtime-api.ts';

/** One function of a synthesized template, as Lambda would run it. */
export interface DeployedFunction {
  /** Its logical id in the template. */
  readonly logicalId: string;
  /** Its `Description`: which function it is (`Fan-out worker…`). */
  readonly description: string;
  /** The logical id of its role (`Role` is the role's `Fn::GetAtt … Arn`). */
  readonly roleLogicalId: string;
  readonly handler: string;
  readonly memorySize: number;
  readonly timeoutSeconds: number;
  /** `Environment.Variables` as written: strings, or CloudFormation references. */
  readonly environment: Readonly<Record<string, unknown>>;
  /** The asset folder in the cloud assembly. */
  readonly assetDir: string;
  /** The `Input` of the EventBridge Scheduler schedule whose target it is, parsed; none: no schedule. */
  readonly scheduleInput?: unknown;
}

export interface Synthesized {
  readonly outdir: string;
  readonly template: Record<string, unknown>;
  /** Every function of the template with a bundle of ours. */
  readonly functions: readonly DeployedFunction[];
  /** The EventBridge Scheduler target's `Input`, parsed. */
  readonly scheduleInput: unknown;
  close(): Promise<void>;
}

type Resource = { Type: string; Properties?: Record<string, unknown>; Metadata?: Record<string, unknown> };

/** The one function of `synthesized` that `is` picks; the set-up fails naming `what` if there is not one. */
export function onlyFunction(
  synthesized: Synthesized,
  is: (fn: DeployedFunction) => boolean,
  what: string,
): DeployedFunction {
  const found = synthesized.functions.filter(is);
  const [only, ...others] = found;
  if (only === undefined || others.length > 0) throw new Error(`expected one ${what}, found ${found.length}`);
  return only;
}

/** Synthesizes the stack with its bundles into a fresh cloud assembly. */
export async function synthesize(props: Partial<HousekeepingStackProps> = {}): Promise<Synthesized> {
  const outdir = await mkdtemp(join(tmpdir(), 'rehearsal-cdk.out-'));
  // The asset metadata `cdk synth` adds: where each function's bundle is in the assembly.
  const app = new App({ outdir, context: { ...CDK_CONTEXT, 'aws:cdk:enable-asset-metadata': true } });
  const stack = new HousekeepingStack(app, 'TokensHousekeeper', {
    env: { account: '123456789012', region: 'eu-west-1' },
    tokensApiUrl: 'https://tokens.example.com',
    sessionKeySecret: 'tokens/session-key',
    ...props,
  });
  const template = Template.fromStack(stack).toJSON() as { Resources: Record<string, Resource> };
  const functions: DeployedFunction[] = [];
  let scheduleInput: unknown;
  // Each schedule's Input, by the logical id of the function its target invokes.
  const scheduled = new Map<string, unknown>();
  for (const resource of Object.values(template.Resources)) {
    if (resource.Type !== 'AWS::Scheduler::Schedule') continue;
    const properties = resource.Properties ?? {};
    const target = properties.Target as { Arn?: { 'Fn::GetAtt'?: unknown[] }; Input?: string } | undefined;
    const input = target?.Input === undefined ? undefined : JSON.parse(target.Input);
    scheduled.set(String(target?.Arn?.['Fn::GetAtt']?.[0]), input);
    // The pass's (or planner's) schedule; the restore drill's has its own target.
    if (!String(properties.Description).startsWith('Restore drill')) scheduleInput = input;
  }
  for (const [logicalId, resource] of Object.entries(template.Resources)) {
    const properties = resource.Properties ?? {};
    const assetPath = resource.Metadata?.['aws:asset:path'];
    if (resource.Type !== 'AWS::Lambda::Function' || typeof assetPath !== 'string') continue;
    functions.push({
      logicalId,
      description: String(properties.Description ?? ''),
      roleLogicalId: String(
        (properties.Role as { 'Fn::GetAtt'?: unknown[] } | undefined)?.['Fn::GetAtt']?.[0],
      ),
      handler: String(properties.Handler),
      memorySize: Number(properties.MemorySize),
      timeoutSeconds: Number(properties.Timeout),
      environment:
        (properties.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {},
      assetDir: join(outdir, assetPath),
      ...(scheduled.has(logicalId) ? { scheduleInput: scheduled.get(logicalId) } : {}),
    });
  }
  return {
    outdir,
    template,
    functions,
    scheduleInput,
    close: () => rm(outdir, { recursive: true, force: true }),
  };
}

/**
 * The function's environment as Lambda would give it: every variable of the template, with a
 * reference (`{"Ref": …}`, `Fn::GetAtt`…) or a value named in `resolved` replaced by the local
 * one. A reference left unresolved is an error that names it: the rehearsal must not guess.
 */
export function resolvedEnvironment(
  fn: DeployedFunction,
  resolved: Readonly<Record<string, string>>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(fn.environment)) {
    const local = resolved[name];
    if (local !== undefined) env[name] = local;
    else if (typeof value === 'string') env[name] = value;
    else
      throw new Error(`${fn.logicalId}: variable ${name} is ${JSON.stringify(value)}; name its local value`);
  }
  return env;
}

/**
 * The Node flags the Lambda Node.js runtime's bootstrap passes for a memory size: a tenth of it as
 * the new space (half of that per semi-space), the rest as the old space.
 */
export function runtimeNodeFlags(memorySize: number): string[] {
  const newSpace = Math.floor(memorySize / 10);
  return [
    '--expose-gc',
    '--max-http-header-size=81920',
    `--max-semi-space-size=${Math.floor(newSpace / 2)}`,
    `--max-old-space-size=${memorySize - newSpace}`,
  ];
}

/** A function process started under the runtime client, and every line it wrote. */
export interface RunningFunction {
  readonly taskRoot: string;
  readonly process: ChildProcess;
  /** stdout and stderr, one entry per line, in arrival order. */
  readonly lines: string[];
  /** Resolves with the exit code (or signal) once the process ended. */
  readonly exited: Promise<number | NodeJS.Signals | null>;
  kill(): void;
  close(): Promise<void>;
}

/**
 * Copies `fn`'s asset alone into a fresh folder (nothing resolvable above it but the system's
 * own) and starts it under the runtime client at `ric`, as Lambda does.
 */
export async function startFunction(
  fn: DeployedFunction,
  options: {
    readonly ric: string;
    readonly runtimeApi: string;
    readonly environment: Readonly<Record<string, string>>;
    readonly functionName?: string;
  },
): Promise<RunningFunction> {
  const home = await mkdtemp(join(tmpdir(), 'rehearsal-task-'));
  const taskRoot = join(home, 'var', 'task');
  await cp(fn.assetDir, taskRoot, { recursive: true });
  const functionName = options.functionName ?? `TokensHousekeeper-${fn.logicalId}`;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    LANG: 'en_US.UTF-8',
    TZ: ':UTC',
    _HANDLER: fn.handler,
    LAMBDA_TASK_ROOT: taskRoot,
    LAMBDA_RUNTIME_DIR: join(home, 'var', 'runtime'),
    AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x',
    AWS_LAMBDA_FUNCTION_NAME: functionName,
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.memorySize),
    AWS_LAMBDA_LOG_FORMAT: 'JSON',
    AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${functionName}`,
    AWS_LAMBDA_LOG_STREAM_NAME: '2026/12/06/[$LATEST]rehearsal',
    AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
    AWS_LAMBDA_RUNTIME_API: options.runtimeApi,
    AWS_REGION: 'eu-west-1',
    AWS_DEFAULT_REGION: 'eu-west-1',
    AWS_ACCESS_KEY_ID: 'rehearsal',
    AWS_SECRET_ACCESS_KEY: 'rehearsal',
    AWS_SESSION_TOKEN: 'rehearsal',
    ...options.environment,
  };
  const child = spawn(process.execPath, [...runtimeNodeFlags(fn.memorySize), options.ric, fn.handler], {
    cwd: taskRoot,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream.on('data', (chunk: Buffer) => {
      const parts = (rest + chunk.toString('utf8')).split('\n');
      rest = parts.pop() ?? '';
      lines.push(...parts.filter((line) => line !== ''));
    });
    stream.on('end', () => {
      if (rest !== '') lines.push(rest);
    });
  }
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) =>
    child.on('close', (code, signal) => resolve(code ?? signal)),
  );
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  return {
    taskRoot,
    process: child,
    lines,
    exited,
    kill,
    async close() {
      kill();
      await exited;
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** A function started under the runtime client, with an emulator of its own to invoke it. */
export interface InvocableFunction {
  readonly api: RuntimeApi;
  readonly fn: RunningFunction;
  /** Invokes it with the template's timeout as the deadline; past it, the process is killed. */
  invoke(event: unknown): Promise<InvocationResult>;
  close(): Promise<void>;
}

/** A function of a synthesized template, started under the client against its own emulator. */
export async function startInvocable(
  fn: DeployedFunction,
  options: { readonly ric: string; readonly environment: Readonly<Record<string, string>> },
): Promise<InvocableFunction> {
  const api = await RuntimeApi.start();
  const running = await startFunction(fn, { ...options, runtimeApi: api.address });
  return {
    api,
    fn: running,
    invoke: (event) =>
      api.invoke(event, { timeoutMs: fn.timeoutSeconds * 1000, onTimeout: () => running.kill() }),
    async close() {
      await running.close();
      await api.close().catch(() => undefined);
    },
  };
}

/** Every line the process wrote, parsed: each must be JSON. */
export function jsonLines(fn: RunningFunction): Record<string, unknown>[] {
  return fn.lines.map((line) => {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new Error(`a log line that is not JSON: ${line.slice(0, 300)}`);
    }
  });
}

/** The request id a log line carries: ours (`function_request_id`) or the runtime's (`requestId`). */
export function requestIdOf(line: Record<string, unknown>): unknown {
  return line.function_request_id ?? line.requestId;
}
