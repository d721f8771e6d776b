import { parseArgs } from 'node:util';
import { createHandler } from '../app/invoke.ts';
import { serviceLogger } from '../app/logging.ts';
import type { PlannedLine } from '../core/types.ts';
import { MAX_BYTES_PER_SECOND_RANGE } from '../shared/contract.ts';
import { parseDuration } from '../shared/duration.ts';
import { VARIABLES } from '../shared/environment.ts';
import { describeError } from '../shared/errors.ts';
import {
  stderrConsole as err,
  idsFlag,
  LOG_USAGE,
  positiveIntegerFlag,
  printJson,
  progressLine,
  shareFlag,
  terminalCommand,
  textTable,
  wholeNumberFlag,
} from './terminal.ts';

const USAGE = `usage: npm run housekeep -- [--dry-run] [--ids ID,ID...] [--archive-only] [--max-lines N] [--json-logs]
                              [--max-duration 30s|10m|1h] [--min-age 30m|24h|7d]
                              [--ids ID,... --on-conflict keep-both] [--max-bytes-per-second BYTES]
                              [--max-dismantles N] [--max-dismantle-share 0.5]

Runs one housekeeping pass with the configuration in the environment (see docs/configuration.md).
--max-duration: a hard deadline; in-flight lines are stopped and reported failed.
--min-age: a grace period: lines finished more recently wait for a later run (overrides MIN_AGE).
--on-conflict keep-both: resolve conflicts of the named lines by archiving the new version of a
file beside the old one (never over it), recording both, and only then dismantling.
--max-dismantles: dismantle at most N lines in this run; the rest are archived and held
(overrides MAX_DISMANTLES_PER_RUN; 0 holds every line).
--max-dismantle-share: dismantle nothing when the listing shows more than this share of
finished lines (overrides MAX_DISMANTLE_SHARE; 1 turns the check off for this run).
--max-bytes-per-second: a cap on the bytes read from the tokens service, every file and line
together, over any one second (sets MAX_BYTES_PER_SECOND for this run; 8388608 is 8 MiB/s).
Prints the summary JSON on stdout, logs on stderr. Exit 0: nothing failed; 1: some line
failed; 2: the run itself failed (configuration, secret, listing, bad flags).
${LOG_USAGE}`;

/** What the flags of `housekeep` stand for. */
export interface HousekeepArgs {
  /** The manual payload; validated by the same parser as a Lambda event. */
  readonly payload: Record<string, unknown>;
  /**
   * Configuration variables set for this run over the environment's: the process-wide ones, which
   * no payload carries (`--max-bytes-per-second` is `MAX_BYTES_PER_SECOND`).
   */
  readonly settings: Record<string, string>;
}

/** The manual payload the flags stand for; validated by the same parser as a Lambda event. */
export function payloadFromArgs(args: readonly string[]): Record<string, unknown> {
  return housekeepArgs(args).payload;
}

/** The payload and the settings the flags stand for; a bad flag is refused by its name. */
export function housekeepArgs(args: readonly string[]): HousekeepArgs {
  const { values } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: false,
    options: {
      'dry-run': { type: 'boolean' },
      ids: { type: 'string' },
      'archive-only': { type: 'boolean' },
      'max-lines': { type: 'string' },
      'max-duration': { type: 'string' },
      'on-conflict': { type: 'string' },
      'min-age': { type: 'string' },
      'max-dismantles': { type: 'string' },
      'max-dismantle-share': { type: 'string' },
      'max-bytes-per-second': { type: 'string' },
    },
  });
  const settings: Record<string, string> = {};
  const maxBytes = values['max-bytes-per-second'];
  if (maxBytes !== undefined)
    settings[VARIABLES.MAX_BYTES_PER_SECOND.name] = String(bytesPerSecondFlag(maxBytes));
  const payload: Record<string, unknown> = {};
  if (values['dry-run']) payload.dryRun = true;
  if (values['archive-only']) payload.archiveOnly = true;
  if (values.ids !== undefined) payload.ids = idsFlag(values.ids);
  const maxLines = values['max-lines'];
  if (maxLines !== undefined) payload.maxLines = positiveIntegerFlag('--max-lines', maxLines);
  const maxDuration = values['max-duration'];
  if (maxDuration !== undefined) payload.maxDurationSeconds = durationFlag('--max-duration', maxDuration);
  const minAge = values['min-age'];
  if (minAge !== undefined) payload.minAge = durationFlag('--min-age', minAge);
  const maxDismantles = values['max-dismantles'];
  if (maxDismantles !== undefined) payload.maxDismantles = wholeNumberFlag('--max-dismantles', maxDismantles);
  const maxShare = values['max-dismantle-share'];
  if (maxShare !== undefined) payload.maxDismantleShare = shareFlag('--max-dismantle-share', maxShare);
  const onConflict = values['on-conflict'];
  if (onConflict !== undefined) {
    if (onConflict !== 'keep-both' && onConflict !== 'fail') {
      throw new Error(`--on-conflict: expected keep-both or fail, got ${JSON.stringify(onConflict)}`);
    }
    if (onConflict === 'keep-both' && values.ids === undefined) {
      throw new Error('--on-conflict keep-both: resolves the conflicts of named lines only: give --ids');
    }
    payload.onConflict = onConflict;
  }
  return { payload, settings };
}

/** `--max-bytes-per-second`: whole bytes, in the range `MAX_BYTES_PER_SECOND` accepts. */
function bytesPerSecondFlag(text: string): number {
  const { min, max } = MAX_BYTES_PER_SECOND_RANGE;
  const value = /^\d{1,15}$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= min && value <= max)) {
    throw new Error(
      `--max-bytes-per-second: expected a whole number of bytes between ${min} and ${max}, got ${JSON.stringify(text)}`,
    );
  }
  return value;
}

/** A duration flag as whole seconds; anything else is refused naming the flag. */
function durationFlag(flag: string, text: string): number {
  const seconds = parseDuration(text);
  if (seconds === undefined) {
    throw new Error(`${flag}: expected a duration such as 30s, 10m, 1h or 7d, got ${JSON.stringify(text)}`);
  }
  return seconds;
}

/** The dry run's plan for a person: one row per line, totals last. */
export function planTable(plan: readonly PlannedLine[]): string {
  const rows = plan.map((line) => [
    line.id,
    line.alphabet ?? '-',
    line.digits ?? '-',
    String(line.files),
    String(line.bytes),
    line.action,
  ]);
  const files = plan.reduce((sum, line) => sum + line.files, 0);
  const bytes = plan.reduce((sum, line) => sum + line.bytes, 0);
  rows.push([`${plan.length} lines`, '', '', String(files), String(bytes), '']);
  return textTable(['line id', 'alphabet', 'digits', 'files', 'bytes', 'action'], rows);
}

/** Runs one pass from the terminal; resolves to the process exit code. */
export function main(args: readonly string[]): Promise<number> {
  return terminalCommand(
    { name: 'housekeep', usage: USAGE, args },
    housekeepArgs,
    async ({ payload, settings }, stdout) => {
      try {
        const progress = progressLine('housekeep');
        const handler = createHandler(
          { ...process.env, ...settings },
          {
            logger: serviceLogger(),
            onProgress: (state) => progress.update(state),
          },
        );
        const summary = await handler(payload);
        progress.finish();
        if (summary.plan !== undefined) err.log(planTable(summary.plan));
        printJson(stdout, summary);
        return summary.failed.length > 0 ? 1 : 0;
      } catch (error) {
        err.log(
          `housekeep: run failed: ${error instanceof Error ? `${error.name}: ` : ''}${describeError(error)}`,
        );
        return 2;
      }
    },
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}
