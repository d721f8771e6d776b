import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../lambda/app/config.ts';
import type { Summary } from '../../lambda/core/types.ts';
import { type LocalStack, startLocalStack } from '../local/stack.ts';
import type { LineSpec } from '../local/tokens-service.ts';
import { type ChildRun, runChild } from './child.ts';
import { type DelayProxy, startDelayProxy } from './delay-proxy.ts';
import type { PlanLine } from './plan.ts';
import type { TracedRequest } from './request-counter.ts';
import { round } from './stats.ts';

/** Who does the work: the product (CLI), the plain parallel copy it is measured against, the rule's requests done plainly, or the obvious way. */
export type Tool = 'housekeeper' | 'reference' | 'rule-floor' | 'baseline';

/** A service to archive, served by a fresh local stack for every measurement. */
export interface Workload {
  readonly lines: readonly LineSpec[];
  /** Local S3 keeps objects on disk (a temporary directory) instead of in the parent's memory. */
  readonly diskStorage?: boolean;
  readonly pageSize?: number;
  /** Housekeeper settings on top of the bench defaults. */
  readonly env?: Readonly<Record<string, string>>;
  /** Added to each direction of every tokens-service and S3 connection. */
  readonly oneWayLatencyMs?: number;
}

/** One measured process. Sizes are bytes, rates are per second of `wallMs`, MB = 10^6 bytes. */
export interface Measurement {
  readonly tool: Tool;
  readonly wallMs: number;
  readonly lines: number;
  readonly files: number;
  readonly bytes: number;
  readonly mbPerSec: number;
  readonly linesPerSec: number;
  readonly requests: number;
  readonly requestsBy: Readonly<Record<string, number>>;
  /** Requests to the tokens service and S3 over lines done (the secret read is left out). */
  readonly requestsPerLine: number;
  /** Files the tool had in flight at most: the housekeeper's LINE_CONCURRENCY x FILE_CONCURRENCY, the reference's p-limit. */
  readonly filesInFlight: number;
  /** The housekeeper's budget for part buffers, `UPLOAD_BUFFER_BYTES` as the product reads it; null for the other tools. */
  readonly uploadBufferBytes: number | null;
  readonly startRssMB: number;
  readonly peakRssMB: number;
  /** Peaks of the V8 heap (reserved) and of ArrayBuffers outside it: where the RSS above start goes. */
  readonly heapTotalPeakMB: number;
  readonly arrayBuffersPeakMB: number;
  /** CPU seconds of the measured process, and of the parent (simulator + local S3) meanwhile. */
  readonly cpuMs: number;
  readonly serverCpuMs: number;
  /** Load average (1 min) when the run started: the machine is shared. */
  readonly load1: number;
  /** Whether the run did all it had to (housekeeper: archived and dismantled every finished line). */
  readonly ok: boolean;
  readonly check: string;
  readonly retries?: number;
  /** Every request in order, when the run was traced. */
  readonly trace?: readonly TracedRequest[];
}

/** How to run the measured process, beyond the workload. */
export interface RunOptions {
  /** Record every request in order. */
  readonly trace?: boolean;
  /** Write a V8 CPU profile of the work (from its start to its end, start-up left out) to this file. */
  readonly cpuProfile?: string;
}

/**
 * Settings for the housekeeper under measurement: the production defaults, where the local
 * stack shortens them for the test suite (a 2 s body timeout would turn a local server that is
 * busy writing a 1 GiB object to disk into retries).
 */
const BENCH_ENV = {
  // As on AWS S3; with an endpoint override the product defaults to re-reading every object.
  VERIFY_READBACK: 'head',
  // As on AWS S3. The bench's store (fauxqs) ignores conditions, but each measured run starts on
  // an empty bucket, where a store that enforces them refuses nothing: the requests are the same.
  S3_CONDITIONAL_WRITES: 'enforced',
  RETRY_BASE_DELAY_MS: '500',
  RETRY_MAX_DELAY_MS: '20000',
  HTTP_BODY_TIMEOUT_MS: '30000',
} as const;

/**
 * Starts a fresh local stack for `workload`, runs `tool` against it in its own process, and tears
 * it down. The reference copies as many files at once as the housekeeper would with the same
 * workload (its LINE_CONCURRENCY x FILE_CONCURRENCY), so the two are compared at equal concurrency.
 */
export async function measure(
  workerFile: string,
  workload: Workload,
  tool: Tool,
  args: readonly string[] = [],
  runOptions: RunOptions = {},
): Promise<Measurement> {
  const storage = workload.diskStorage ? await mkdtemp(join(tmpdir(), 'bench-s3-')) : undefined;
  let stack: LocalStack | undefined;
  const proxies: DelayProxy[] = [];
  try {
    stack = await startLocalStack({
      lines: [...workload.lines],
      env: { ...BENCH_ENV, ...workload.env },
      ...(workload.pageSize === undefined ? {} : { pageSize: workload.pageSize }),
      ...(storage === undefined ? {} : { s3StorageDir: storage }),
    });
    const env = { ...stack.env };
    if (workload.oneWayLatencyMs !== undefined) {
      for (const name of ['TOKENS_API_URL', 'AWS_ENDPOINT_URL_S3'] as const) {
        const proxy = await startDelayProxy(stack.env[name] ?? '', workload.oneWayLatencyMs);
        proxies.push(proxy);
        env[name] = proxy.url;
      }
    }
    const finished = [...stack.tokens.lines.values()].filter((line) => line.status === 'finished');
    const plan: PlanLine[] = finished.map((line) => ({
      id: line.id,
      files: [...line.files].map(([name, file]) => ({ name, size: file.size })),
    }));
    const expectedBytes = plan.reduce((sum, line) => sum + line.files.reduce((s, f) => s + f.size, 0), 0);
    const config = loadConfig(env);
    // The obvious way does one file at a time.
    const filesInFlight = tool === 'baseline' ? 1 : config.lineConcurrency * config.fileConcurrency;
    const load1 = loadavg()[0] ?? 0;
    const run = await runChild(workerFile, {
      mode: tool === 'housekeeper' ? 'housekeep' : tool,
      env,
      args,
      plan,
      sessionKey: stack.sessionKey,
      filesInFlight,
      ...runOptions,
    });
    const dryRun = args.includes('--dry-run');
    const outcome =
      tool === 'housekeeper'
        ? judgeSummary(run, plan.length, dryRun)
        : {
            ok: run.moved?.bytes === expectedBytes,
            check: `${run.moved?.lines} lines, ${run.moved?.files} files, ${run.moved?.bytes} of ${expectedBytes} bytes`,
            lines: run.moved?.lines ?? 0,
            files: run.moved?.files ?? 0,
            bytes: run.moved?.bytes ?? 0,
          };
    const seconds = run.wallMs / 1000;
    return {
      tool,
      wallMs: Math.round(run.wallMs),
      lines: outcome.lines,
      files: outcome.files,
      bytes: outcome.bytes,
      mbPerSec: round(outcome.bytes / 1e6 / seconds, 1),
      linesPerSec: round(outcome.lines / seconds, 1),
      requests: run.requests.total,
      requestsBy: run.requests.byMethod,
      requestsPerLine:
        outcome.lines === 0
          ? 0
          : round(
              ((run.requests.byService.tokens ?? 0) + (run.requests.byService.s3 ?? 0)) / outcome.lines,
              2,
            ),
      filesInFlight,
      uploadBufferBytes: tool === 'housekeeper' ? config.upload.uploadBufferBytes : null,
      startRssMB: round(run.startRssBytes / 1e6, 0),
      peakRssMB: round(run.peakRssBytes / 1e6, 0),
      heapTotalPeakMB: round(run.heapPeaks.heapTotal / 1e6, 0),
      arrayBuffersPeakMB: round(run.heapPeaks.arrayBuffers / 1e6, 0),
      cpuMs: Math.round(run.cpuMs),
      serverCpuMs: Math.round(run.serverCpuMs),
      load1: round(load1, 2),
      ok: outcome.ok,
      check: outcome.check,
      ...('retries' in outcome ? { retries: outcome.retries } : {}),
      ...(run.requests.trace === undefined ? {} : { trace: run.requests.trace }),
    };
  } finally {
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await stack?.close();
    if (storage !== undefined) await rm(storage, { recursive: true, force: true });
  }
}

function judgeSummary(run: ChildRun, finished: number, dryRun: boolean) {
  let summary: Summary;
  try {
    summary = JSON.parse(run.stdout) as Summary;
  } catch {
    return {
      ok: false,
      check: `no summary (exit ${run.exitCode})`,
      lines: 0,
      files: 0,
      bytes: 0,
      retries: 0,
    };
  }
  if (dryRun) {
    const planned = summary.plan?.length ?? 0;
    return {
      ok: run.exitCode === 0 && planned === finished && summary.archived === 0,
      check: `listed ${summary.listed}, planned ${planned}/${finished}`,
      lines: planned,
      files: summary.plan?.reduce((sum, line) => sum + line.files, 0) ?? 0,
      bytes: 0,
      retries: summary.retries,
    };
  }
  return {
    ok:
      run.exitCode === 0 &&
      summary.archived === finished &&
      summary.dismantled === finished &&
      summary.failed.length === 0,
    check: [
      `archived ${summary.archived}/${finished}, dismantled ${summary.dismantled}/${finished}, failed ${summary.failed.length}`,
      ...keptLines(summary),
    ].join(', '),
    lines: summary.archived,
    files: summary.filesUploaded,
    bytes: summary.bytes,
    retries: summary.retries,
  };
}

/** Where the lines that were neither dismantled nor failed went, with the first reason of each kind. */
function keptLines(summary: Summary): string[] {
  const kinds = [
    ['skipped', summary.skipped],
    ['pending', summary.pending],
    ['held', summary.held],
  ] as const;
  const counts = kinds
    .filter(([, lines]) => lines.length > 0)
    .map(([kind, lines]) => `${kind} ${lines.length} (${JSON.stringify(lines[0])})`);
  if (summary.deferred > 0) counts.push(`deferred ${summary.deferred}`);
  if (summary.waiting > 0) counts.push(`waiting ${summary.waiting}`);
  return counts;
}
