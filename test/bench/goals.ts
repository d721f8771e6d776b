import type { Measurement } from './measure.ts';
import { MEMORY_ALLOWANCE_MB, type MemoryResult, type MemorySweep, type SectionResults } from './sections.ts';
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

/** Every goal the results can speak to, in the issue's order: throughput, small lines with latency, memory. */
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
