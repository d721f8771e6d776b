import type { Measurement } from './measure.ts';
import {
  MEMORY_ALLOWANCE_MB,
  type MemoryResult,
  type MemorySweep,
  type RuleFloorResult,
  type SectionResults,
  type ThroughputResult,
} from './sections.ts';
import { formatBytes } from './sets.ts';

/** One goal of issue 13 as the bench states it: what was wanted, what was measured, met or missed by how much. */
export interface GoalVerdict {
  readonly goal: string;
  readonly target: string;
  readonly measured: string;
  /** `met (...)`, `missed by ...`, `failed: ...` or `reported` (a figure without a target). */
  readonly verdict: string;
  /** true met, false missed or failed, null for a figure without a target. */
  readonly met: boolean | null;
}

/** Issue 22: at most this many S3 requests per one-file line (the file, the record, the receipt). */
const S3_REQUESTS_PER_LINE = 3;
/** Issue 22: tokens-service requests per line (read, file, re-read, DELETE). */
const TOKENS_REQUESTS_PER_LINE = 4;
/** Issue 22: lines/s at +20 ms round trips, as a share of the plain copy's at equal concurrency. */
const RTT_SHARE = 0.6;
/** Issue 22: CPU seconds per line, at most this many times the plain copy's. */
const CPU_PER_LINE_TIMES = 1.5;

/** Requests per line to `service` (`tokens`, `s3`), from a measurement's counts by method. */
function perLine(m: Measurement, service: string): number {
  const count = Object.entries(m.requestsBy)
    .filter(([key]) => key.startsWith(`${service} `))
    .reduce((sum, [, n]) => sum + n, 0);
  return Math.round((count / Math.max(1, m.lines)) * 100) / 100;
}

function atMost(
  goal: string,
  target: number,
  value: number,
  measured: string,
  m: Measurement[],
): GoalVerdict {
  const failed = m.map(failure).find((reason) => reason !== undefined);
  return {
    goal,
    target: `<= ${target}`,
    measured,
    ...(failed !== undefined
      ? { verdict: failed, met: false }
      : value <= target
        ? { verdict: 'met', met: true }
        : { verdict: `missed by ${(value - target).toFixed(2)}`, met: false }),
  };
}

/** The goals of issue 22 the throughput sets speak to: requests, start-adjusted ratios, latency, CPU. */
function judgeSmallLines(results: SectionResults): GoalVerdict[] {
  const verdicts: GoalVerdict[] = [];
  const sets = results.throughput ?? [];
  const small = sets.find((set) => set.key === 'small');
  if (small !== undefined) {
    const s3 = perLine(small.housekeeper, 's3');
    const tokens = perLine(small.housekeeper, 'tokens');
    verdicts.push(
      atMost(
        `S3 requests per one-file line, first run, head: (${small.key}) ${small.label}`,
        S3_REQUESTS_PER_LINE,
        s3,
        `${s3} (per-run requests shared over ${small.housekeeper.lines} lines)`,
        [small.housekeeper],
      ),
      atMost(
        `Tokens-service requests per line: (${small.key}) ${small.label}`,
        TOKENS_REQUESTS_PER_LINE + 0.05,
        tokens,
        `${tokens} (the list shared over ${small.housekeeper.lines} lines)`,
        [small.housekeeper],
      ),
    );
  }
  for (const set of sets) {
    const failed = failure(set.housekeeper) ?? failure(set.reference);
    if (set.adjustedGoal !== undefined && set.adjustedRatio !== undefined) {
      const goal = set.adjustedGoal;
      verdicts.push({
        goal: `Start-adjusted ratio: (${set.key}) ${set.label}`,
        target: `>= ${goal}`,
        measured: `${set.adjustedRatio.toFixed(2)} (wall less fixed cost: reference ${set.adjusted.reference.wallMs} ms, housekeeper ${set.adjusted.housekeeper.wallMs} ms)`,
        ...(failed !== undefined
          ? { verdict: failed, met: false }
          : set.adjustedRatio >= goal
            ? { verdict: `met (+${(set.adjustedRatio - goal).toFixed(2)})`, met: true }
            : { verdict: `missed by ${(goal - set.adjustedRatio).toFixed(2)}`, met: false }),
      });
    }
    if ((set.key === 'small' || set.key === 'examples') && set.cpuRatio !== undefined) {
      verdicts.push(
        atMost(
          `CPU per line against the plain copy: (${set.key}) ${set.label}`,
          CPU_PER_LINE_TIMES,
          set.cpuRatio,
          `x${set.cpuRatio.toFixed(2)} (${set.adjusted.housekeeper.adjustedCpuMsPerLine} / ${set.adjusted.reference.adjustedCpuMsPerLine} ms a line, fixed CPU left out)`,
          [set.housekeeper, set.reference],
        ),
      );
    }
    if (set.ruleFloor !== undefined) verdicts.push(floorVerdict(set, set.ruleFloor));
    if (set.oneWayLatencyMs !== undefined) {
      const share = set.housekeeper.linesPerSec / set.reference.linesPerSec;
      verdicts.push({
        goal: `Lines/s at +${2 * set.oneWayLatencyMs} ms round trips against the plain copy at equal concurrency: (${set.key})`,
        target: `>= ${RTT_SHARE}`,
        measured: `${share.toFixed(2)} (${set.housekeeper.linesPerSec} / ${set.reference.linesPerSec} lines/s, ${set.housekeeper.filesInFlight} files in flight)`,
        ...(failed !== undefined
          ? { verdict: failed, met: false }
          : share >= RTT_SHARE
            ? { verdict: `met (+${(share - RTT_SHARE).toFixed(2)})`, met: true }
            : { verdict: `missed by ${(RTT_SHARE - share).toFixed(2)}`, met: false }),
      });
    }
  }
  return verdicts;
}

/**
 * What the rule's own requests cost done plainly (`rule-floor.ts`) on the same set: no target, the
 * figure a goal above is judged against (a goal the floor misses is a goal for the libraries).
 */
function floorVerdict(set: ThroughputResult, floor: RuleFloorResult): GoalVerdict {
  const m = floor.measurement;
  const share = m.linesPerSec / set.reference.linesPerSec;
  const failed = failure(m);
  return {
    goal: `The rule's requests done plainly (rule floor) against the plain copy: (${set.key})`,
    target: 'reported',
    measured:
      `start-adjusted ${floor.adjustedRatio.toFixed(2)}, CPU per line x${floor.cpuRatio.toFixed(2)}, ` +
      `lines/s ${share.toFixed(2)} (${m.linesPerSec} / ${set.reference.linesPerSec}); ` +
      `the housekeeper's CPU per line x${(set.adjusted.housekeeper.adjustedCpuMsPerLine / Math.max(0.01, floor.adjusted.adjustedCpuMsPerLine)).toFixed(2)} the floor's`,
    verdict: failed ?? 'reported',
    met: failed === undefined ? null : false,
  };
}

/** Every goal the results can speak to, in the issue's order: throughput, small lines with latency, memory; then issue 22's. */
export function judgeGoals(results: SectionResults): GoalVerdict[] {
  const verdicts: GoalVerdict[] = [];
  for (const set of results.throughput ?? []) {
    const measured = `${set.ratio.toFixed(2)} (${set.housekeeper.mbPerSec} / ${set.reference.mbPerSec} MB/s, ${set.housekeeper.filesInFlight} files in flight)`;
    const failed = failure(set.housekeeper) ?? failure(set.reference);
    if (set.goal !== undefined) {
      const goal = set.goal;
      verdicts.push({
        goal: `Ratio to the reference: (${set.key}) ${set.label}`,
        target: `>= ${goal}`,
        measured,
        ...(failed !== undefined
          ? { verdict: failed, met: false }
          : set.ratio >= goal
            ? { verdict: `met (+${(set.ratio - goal).toFixed(2)})`, met: true }
            : { verdict: `missed by ${(goal - set.ratio).toFixed(2)}`, met: false }),
      });
    } else if (set.oneWayLatencyMs !== undefined) {
      verdicts.push({
        goal: `Lines/s at +${2 * set.oneWayLatencyMs} ms round trips: (${set.key}) ${set.label}`,
        target: 'reported',
        measured: `${set.housekeeper.linesPerSec} lines/s (reference ${set.reference.linesPerSec}), ${set.housekeeper.filesInFlight} files in flight`,
        verdict: failed ?? 'reported',
        met: failed === undefined ? null : false,
      });
    }
  }
  const memory = results.memory ?? [];
  const sweeps: readonly [MemorySweep, string][] = [
    ['size', 'Memory, flat as files grow (1 file in flight)'],
    ['in-flight', 'Memory, flat as large files in flight grow'],
  ];
  for (const [sweep, goal] of sweeps) {
    const rows = memory.filter((row) => row.sweeps.includes(sweep));
    if (rows.length > 0) verdicts.push(judgeMemory(goal, sweep, rows));
  }
  verdicts.push(...judgeSmallLines(results));
  return verdicts;
}

function judgeMemory(goal: string, sweep: MemorySweep, rows: readonly MemoryResult[]): GoalVerdict {
  const name = (row: MemoryResult) =>
    sweep === 'size' ? formatBytes(row.fileBytes) : `${row.lines} x ${formatBytes(row.fileBytes)}`;
  const peaks = rows.map((row) => row.housekeeper.peakRssMB);
  const spread = Math.max(...peaks) - Math.min(...peaks);
  const measured = `peaks ${rows.map((row) => `${row.housekeeper.peakRssMB} (${name(row)})`).join(', ')} MB; spread ${spread} MB`;
  const target = `peak <= RSS at start + UPLOAD_BUFFER_BYTES + ${MEMORY_ALLOWANCE_MB} MB`;
  const failed = rows.map((row) => failure(row.housekeeper)).find((reason) => reason !== undefined);
  if (failed !== undefined) return { goal, target, measured, verdict: failed, met: false };
  const over = (row: MemoryResult) => row.housekeeper.peakRssMB - row.boundMB;
  const worst = rows.reduce((a, b) => (over(a) >= over(b) ? a : b));
  return {
    goal,
    target,
    measured: `${measured}; bounds ${rows.map((row) => row.boundMB).join(', ')} MB`,
    ...(over(worst) <= 0
      ? { verdict: `met (${-over(worst)} MB to spare at ${name(worst)})`, met: true }
      : { verdict: `missed by ${over(worst)} MB (at ${name(worst)})`, met: false }),
  };
}

function failure(m: Measurement): string | undefined {
  return m.ok ? undefined : `failed: ${m.tool} ${m.check}`;
}
