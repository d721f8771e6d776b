import { DeadlineError } from '../shared/errors.ts';
import type { Config, RunContext, RunRequest } from './types.ts';
/** Whether too little of the invocation is left to start another line (or batch); never outside Lambda. */
export function outOfTime(
  context: Pick<RunContext, 'remainingMs'>,
  config: Pick<Config, 'timeReserveMs'>,
): boolean {
  const remaining = context.remainingMs?.();
  return remaining !== undefined && remaining < config.timeReserveMs;
}

/** What the core needs of a Lambda invocation's context: the time left (a Lambda `Context` fits). */
export interface InvocationClock {
  getRemainingTimeInMillis(): number;
}

/** The {@link RunContext} time source of a Lambda context; none outside Lambda. */
export function remainingOf(context: InvocationClock | undefined): Pick<RunContext, 'remainingMs'> {
  return context === undefined ? {} : { remainingMs: () => context.getRemainingTimeInMillis() };
}

/**
 * The run's hard deadline: in Lambda, the time left minus `DEADLINE_RESERVE_MS` (time to write
 * the run report and metrics); at the terminal, `--max-duration`. When it fires, in-flight
 * downloads and uploads are aborted (a multipart upload is aborted, nothing half-written counts)
 * and the lines in flight are reported failed with the reason.
 */
export function runDeadline(
  context: Pick<RunContext, 'remainingMs'>,
  config: Pick<Config, 'deadlineReserveMs'>,
  request: Pick<RunRequest, 'maxDurationSeconds'>,
): { readonly signal: AbortSignal; clear(): void } {
  const limits: { ms: number; why: string }[] = [];
  const remaining = context.remainingMs?.();
  if (remaining !== undefined) {
    limits.push({
      ms: Math.max(0, remaining - config.deadlineReserveMs),
      why: `the Lambda invocation has ${remaining} ms left, less a reserve of ${config.deadlineReserveMs} ms (DEADLINE_RESERVE_MS)`,
    });
  }
  if (request.maxDurationSeconds !== undefined) {
    limits.push({
      ms: request.maxDurationSeconds * 1000,
      why: `max duration ${request.maxDurationSeconds} s`,
    });
  }
  const controller = new AbortController();
  const first = limits.sort((a, b) => a.ms - b.ms)[0];
  if (first === undefined) return { signal: controller.signal, clear: () => undefined };
  const timer = setTimeout(
    () => controller.abort(new DeadlineError(`run deadline reached after ${first.ms} ms (${first.why})`)),
    first.ms,
  );
  timer.unref();
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}
