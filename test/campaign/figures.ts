/** The campaign's figures: what it ran, injected and found, summed over schedules, as tables. */
import type { ScheduleResult } from './run-schedule.ts';

export interface Violating {
  readonly seed: number;
  readonly violations: readonly string[];
  readonly description: string;
}

/** What schedules ran and injected, counted alike for one schedule and for the campaign. */
export interface RunCounts {
  runs: number;
  cliRuns: number;
  crashes: number;
  deletes: number;
  /** DELETEs at whose arrival the line had just changed (a file added, restated or dropped). */
  races: number;
  /** Lines the service lost to a DELETE (each checked archived). */
  dismantled: number;
  readonly serviceFaults: Record<string, number>;
  readonly storeFaults: Record<string, number>;
  readonly changes: Record<string, number>;
}

/** Counts of nothing run yet. */
export function noRunCounts(): RunCounts {
  return {
    runs: 0,
    cliRuns: 0,
    crashes: 0,
    deletes: 0,
    races: 0,
    dismantled: 0,
    serviceFaults: {},
    storeFaults: {},
    changes: {},
  };
}

export interface Figures extends RunCounts {
  schedules: number;
  readonly tampers: Record<string, number>;
  readonly violating: Violating[];
}

export function emptyFigures(): Figures {
  return { schedules: 0, ...noRunCounts(), tampers: {}, violating: [] };
}

function addCounts(into: Record<string, number>, from: Readonly<Record<string, number>>): void {
  for (const [key, n] of Object.entries(from)) into[key] = (into[key] ?? 0) + n;
}

export function addResult(figures: Figures, result: ScheduleResult): void {
  figures.schedules += 1;
  figures.runs += result.runs;
  figures.cliRuns += result.cliRuns;
  figures.crashes += result.crashes;
  figures.deletes += result.deletes;
  figures.races += result.races;
  figures.dismantled += result.dismantled;
  addCounts(figures.serviceFaults, result.serviceFaults);
  addCounts(figures.storeFaults, result.storeFaults);
  addCounts(figures.changes, result.changes);
  if (result.tamper !== undefined) addCounts(figures.tampers, { [result.tamper]: 1 });
  if (result.violations.length > 0) {
    figures.violating.push({
      seed: result.seed,
      violations: result.violations,
      description: result.description,
    });
  }
}

function total(counts: Readonly<Record<string, number>>): number {
  return Object.values(counts).reduce((sum, n) => sum + n, 0);
}

function countTable(title: string, counts: Readonly<Record<string, number>>): string[] {
  const rows = Object.entries(counts).sort(([a, x], [b, y]) => y - x || a.localeCompare(b));
  return [`| ${title} | count |`, '| --- | ---: |', ...rows.map(([kind, n]) => `| ${kind} | ${n} |`), ''];
}

/** The figures as Markdown: the totals, then faults and changes by kind. */
export function figuresTable(figures: Figures, wallMs: number): string {
  const seconds = wallMs / 1000;
  const rate = seconds > 0 ? (figures.schedules / seconds).toFixed(2) : '-';
  const totals: [string, string | number][] = [
    ['schedules', figures.schedules],
    ['schedules per second', rate],
    ['runs (handler and CLI)', figures.runs],
    ['CLI runs', figures.cliRuns],
    ['SIGKILL crashes', figures.crashes],
    ['DELETEs checked at arrival', figures.deletes],
    ['of which the line changed at the DELETE', figures.races],
    ['lines dismantled (each checked archived)', figures.dismantled],
    ['service faults injected', total(figures.serviceFaults)],
    ['store faults injected', total(figures.storeFaults)],
    ['service changes made', total(figures.changes)],
    ['archives tampered with', total(figures.tampers)],
    ['schedules with a violation', figures.violating.length],
  ];
  return [
    '| figure | value |',
    '| --- | ---: |',
    ...totals.map(([name, value]) => `| ${name} | ${value} |`),
    '',
    ...countTable('service fault (target, kind)', figures.serviceFaults),
    ...countTable('store fault', figures.storeFaults),
    ...countTable('service change', figures.changes),
    ...countTable('tampering', figures.tampers),
  ].join('\n');
}

/** Each violating schedule: its seed, what broke, and the schedule. */
export function violationsText(figures: Figures, limit = 20): string {
  return figures.violating
    .slice(0, limit)
    .map((v) =>
      [
        `seed ${v.seed}: ${v.violations.length} violation(s)`,
        ...v.violations.map((x) => `  - ${x}`),
        v.description,
      ].join('\n'),
    )
    .join('\n\n');
}
