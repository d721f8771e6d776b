/**
 * The process a benchmark measures. The parent bundles this file the way the CDK stack bundles
 * the function (so the housekeeper runs as minified production code, not through tsx) and starts
 * it in its own process (child.ts): the local servers stay in the parent, and their memory and CPU
 * are not counted here. What to run comes from the environment (`BENCH_*`); the figures go to the
 * file named by `BENCH_REPORT` as one JSON {@link WorkerReport}. Each mode imports only its own
 * code (the bundle evaluates a dynamically imported module when it is imported), so the reference
 * copy does not carry the housekeeper's modules in its RSS, nor the other way round.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Moved, PlanLine } from './plan.ts';
import { countRequests, type RequestCounts } from './request-counter.ts';

/** `housekeep`: the CLI's `main()`; `reference`: the plain parallel copy; `rule-floor`: the rule's requests done plainly; `baseline`: the obvious way. */
export type WorkerMode = 'housekeep' | 'reference' | 'rule-floor' | 'baseline';

export interface WorkerReport {
  readonly mode: WorkerMode;
  /** From the start of the work to its end; process start-up and module loading are not in it. */
  readonly wallMs: number;
  /** CPU time of this process (user + system) during the work. */
  readonly cpuMs: number;
  /** Resident set size once the mode's code is loaded, before the work starts. */
  readonly startRssBytes: number;
  /** Peak resident set size of this process (VmHWM). */
  readonly peakRssBytes: number;
  /** The largest V8 heap and ArrayBuffer figures seen, sampled every 10 ms (the true peaks may be a little higher). */
  readonly heapPeaks: HeapPeaks;
  readonly requests: RequestCounts;
  readonly exitCode: number;
  /** For `reference` and `baseline`; the housekeeper's summary goes to stdout as the CLI prints it. */
  readonly moved?: Moved;
}

/** Bytes, from `process.memoryUsage()`. */
export interface HeapPeaks {
  /** The V8 heap as reserved: live objects plus the room garbage waits in until it is collected. */
  readonly heapTotal: number;
  /** Buffers and other ArrayBuffers outside the V8 heap (chunks in flight and not yet collected). */
  readonly arrayBuffers: number;
}

/** How often the heap figures are sampled. */
const HEAP_SAMPLE_MS = 10;

/** Samples the heap figures until the returned function is called, which returns their peaks. */
function sampleHeap(): () => HeapPeaks {
  const peaks = { heapTotal: 0, arrayBuffers: 0 };
  const sample = () => {
    const usage = process.memoryUsage();
    peaks.heapTotal = Math.max(peaks.heapTotal, usage.heapTotal);
    peaks.arrayBuffers = Math.max(peaks.arrayBuffers, usage.arrayBuffers);
  };
  const timer = setInterval(sample, HEAP_SAMPLE_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    sample();
    return peaks;
  };
}

/**
 * The peak RSS of this process. Not `process.resourceUsage().maxRSS`: on Linux a spawned child's
 * ru_maxrss starts from its parent's RSS at fork time (a parent holding the local S3's objects
 * would be counted), while VmHWM belongs to the process image after exec.
 */
function peakRss(): number {
  try {
    const match = /^VmHWM:\s*(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (match?.[1] !== undefined) return Number(match[1]) * 1024;
  } catch {
    // No procfs: fall back to getrusage, with the caveat above.
  }
  return process.resourceUsage().maxRSS * 1024;
}

/**
 * Starts V8's sampling profiler in this process (the inspector protocol, as `--cpu-prof` does, but
 * around the work only: start-up and module loading are left out). The returned function stops it
 * and gives the profile.
 */
async function startProfiler(): Promise<() => Promise<object>> {
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    return profile;
  };
}

/** The work of one mode, its modules loaded and ready to start. */
type Work = () => Promise<{ exitCode: number; moved?: Moved }>;

async function load(mode: WorkerMode, env: NodeJS.ProcessEnv): Promise<Work> {
  switch (mode) {
    case 'housekeep': {
      const { main } = await import('../../lambda/entries/cli.ts');
      const args = JSON.parse(env.BENCH_ARGS ?? '[]') as string[];
      return async () => ({ exitCode: await main(args) });
    }
    case 'reference':
    case 'rule-floor': {
      const { referenceCopy } = await import('./reference-copy.ts');
      const { ruleFloor } = await import('./rule-floor.ts');
      const lines = JSON.parse(readFileSync(env.BENCH_PLAN ?? '', 'utf8')) as PlanLine[];
      const target = {
        tokensApiUrl: env.TOKENS_API_URL ?? '',
        sessionKey: env.BENCH_SESSION_KEY ?? '',
        bucket: env.ARCHIVE_BUCKET ?? '',
        s3Endpoint: env.AWS_ENDPOINT_URL_S3,
        filesInFlight: Number(env.BENCH_FILES_IN_FLIGHT),
      };
      const copy = mode === 'reference' ? referenceCopy : ruleFloor;
      return async () => ({ exitCode: 0, moved: await copy(target, lines) });
    }
    case 'baseline': {
      const [{ naiveArchive }, { loadConfig }] = await Promise.all([
        import('./baseline.ts'),
        import('../../lambda/app/config.ts'),
      ]);
      const config = loadConfig(env);
      return async () => ({ exitCode: 0, moved: await naiveArchive(config) });
    }
    default:
      throw new Error(`BENCH_MODE must be housekeep, reference, rule-floor or baseline, got ${String(mode)}`);
  }
}

const env = process.env;
const mode = env.BENCH_MODE as WorkerMode;
const requests = countRequests(
  {
    tokens: env.TOKENS_API_URL,
    s3: env.AWS_ENDPOINT_URL_S3,
    secrets: env.AWS_ENDPOINT_URL_SECRETS_MANAGER,
  },
  { trace: env.BENCH_TRACE === '1' },
);

const work = await load(mode, env);
const profiler = env.BENCH_CPU_PROFILE ? await startProfiler() : undefined;
const startRssBytes = process.memoryUsage().rss;
const heapPeaks = sampleHeap();
const cpuBefore = process.cpuUsage();
const started = performance.now();
const { exitCode, moved } = await work();
const wallMs = performance.now() - started;
const cpu = process.cpuUsage(cpuBefore);
if (profiler !== undefined) writeFileSync(env.BENCH_CPU_PROFILE ?? '', JSON.stringify(await profiler()));
const report: WorkerReport = {
  mode,
  wallMs,
  cpuMs: (cpu.user + cpu.system) / 1000,
  startRssBytes,
  peakRssBytes: peakRss(),
  heapPeaks: heapPeaks(),
  requests,
  exitCode,
  ...(moved === undefined ? {} : { moved }),
};
writeFileSync(env.BENCH_REPORT ?? '', JSON.stringify(report));
// Idle keep-alive sockets would hold the process open a while longer; the work is done.
process.exit(exitCode);
