import { randomBytes, randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { archiveAccess, readKeptReply } from '../app/deps.ts';
import { serviceLogger } from '../app/logging.ts';
import { auditArchive, auditFindings } from '../core/audit.ts';
import { runRestoreDrill } from '../core/drill.ts';
import type { DrillSettings } from '../core/types.ts';
import { DEFAULT_DRILL_MAX_LINES, DRILL_MAX_LINES_RANGE } from '../shared/contract.ts';
import { describeError } from '../shared/errors.ts';
import {
  stderrConsole as err,
  idsFlag,
  LOG_USAGE,
  positiveIntegerFlag,
  printJson,
  progressLine,
  terminalCommand,
} from './terminal.ts';

const USAGE = `usage: npm run audit -- [--ids ID,ID...] [--json-logs]
       npm run audit -- --sample N [--since-last-drill] [--max-lines M] [--seed HEX] [--write-report] [--json-logs]

Re-reads the archived objects (all lines under ARCHIVE_PREFIX, or the given ids) and
recomputes their SHA-256 against each manifest, and reads each dismantled line's receipt
against its manifest. Prints the report JSON on stdout.

A restore drill by hand, as the scheduled one does (see docs/operations.md, "Restore drills"):
  --sample N          audit N archived lines drawn at random (crypto; the seed is in the report)
  --since-last-drill  also every line archived since the last drill report under
                      ARCHIVE_PREFIX_drills/, oldest first (the scheduled drill does both)
  --max-lines M       at most M lines in all, recent ones first (default: N alone; with
                      --since-last-drill ${DEFAULT_DRILL_MAX_LINES}, or N if larger); recent lines over it are
                      named in the report and left to the next drill
  --seed HEX          draw with this seed (64 hex digits, from an earlier report's "seed"): the
                      same sample again while the archive holds the same lines
  --write-report      write the report to ARCHIVE_PREFIX_drills/{date}/{id}.json (needs
                      s3:PutObject there): it then counts as the last drill. Without it,
                      nothing is written.
Prints the drill report JSON on stdout.

Exit 0: every file intact, every receipt in agreement; 1: any finding (missing or damaged
files, lines without a manifest, unsafe manifest entries, receipts recording a discrepancy
or disagreeing with their manifest; in a drill also lines that could not be read back);
2: the audit could not run.
${LOG_USAGE}`;

/** What the flags ask for: an audit (of all lines, or of some), or a drill. */
export type AuditCommand =
  | { readonly kind: 'audit'; readonly ids: readonly string[] | undefined }
  | {
      readonly kind: 'drill';
      readonly settings: DrillSettings;
      readonly seed: Buffer | undefined;
      readonly writeReport: boolean;
    };

const DRILL_ONLY_FLAGS = ['max-lines', 'seed', 'write-report'] as const;

/** The flags, as a command; a flag that cannot be read is refused by its name. */
export function parseAuditFlags(flags: readonly string[]): AuditCommand {
  const { values } = parseArgs({
    args: [...flags],
    strict: true,
    allowPositionals: false,
    options: {
      ids: { type: 'string' },
      sample: { type: 'string' },
      'since-last-drill': { type: 'boolean', default: false },
      'max-lines': { type: 'string' },
      seed: { type: 'string' },
      'write-report': { type: 'boolean', default: false },
    },
  });
  const recentLines = values['since-last-drill'];
  const drill = values.sample !== undefined || recentLines;
  if (!drill) {
    const stray = DRILL_ONLY_FLAGS.find((flag) => values[flag] !== undefined && values[flag] !== false);
    if (stray !== undefined) throw new Error(`--${stray}: goes with --sample or --since-last-drill`);
    return { kind: 'audit', ids: values.ids === undefined ? undefined : idsFlag(values.ids) };
  }
  if (values.ids !== undefined) {
    throw new Error('--ids: audits the lines named; a drill (--sample, --since-last-drill) chooses its own');
  }
  const sampleSize = values.sample === undefined ? 0 : positiveIntegerFlag('--sample', values.sample);
  const maxLines =
    values['max-lines'] === undefined
      ? recentLines
        ? Math.max(DEFAULT_DRILL_MAX_LINES, sampleSize)
        : sampleSize
      : positiveIntegerFlag('--max-lines', values['max-lines']);
  if (maxLines > DRILL_MAX_LINES_RANGE.max) {
    throw new Error(`--max-lines: at most ${DRILL_MAX_LINES_RANGE.max}, got ${maxLines}`);
  }
  if (sampleSize > maxLines) {
    throw new Error(`--sample: ${sampleSize} lines do not fit in --max-lines ${maxLines}`);
  }
  const seedText = values.seed;
  if (seedText !== undefined && !/^[0-9a-f]{64}$/i.test(seedText)) {
    throw new Error(
      `--seed: expected 64 hex digits (a drill report's "seed"), got ${JSON.stringify(seedText)}`,
    );
  }
  return {
    kind: 'drill',
    settings: { sampleSize, maxLines, recentLines },
    seed: seedText === undefined ? undefined : Buffer.from(seedText, 'hex'),
    writeReport: values['write-report'],
  };
}

/** `npm run audit`: resolves to the process exit code. */
export function main(args: readonly string[]): Promise<number> {
  return terminalCommand({ name: 'audit', usage: USAGE, args }, parseAuditFlags, async (command, stdout) => {
    try {
      const archive = archiveAccess(process.env);
      const progress = progressLine(command.kind === 'drill' ? 'drill' : 'audit');
      let done = 0;
      let bytes = 0;
      const onFile = (file: { readonly bytes: number }) => {
        done += 1;
        bytes += file.bytes;
        progress.update({ done, total: done, bytes });
      };
      if (command.kind === 'drill') {
        const { report, key } = await runRestoreDrill({
          archive,
          readKeptReply,
          drillId: randomUUID(),
          settings: command.settings,
          seed: command.seed ?? randomBytes(32),
          now: Date.now,
          logger: serviceLogger(),
          writeReport: command.writeReport,
          onFile,
        });
        progress.finish();
        printJson(stdout, report);
        if (key !== undefined) err.log(`audit: drill report written to ${key}`);
        return report.counts.findings === 0 ? 0 : 1;
      }
      const report = await auditArchive({
        archive,
        readKeptReply,
        ...(command.ids === undefined ? {} : { ids: command.ids }),
        now: Date.now,
        onFile,
      });
      progress.finish();
      printJson(stdout, report);
      return auditFindings(report) === 0 ? 0 : 1;
    } catch (error) {
      err.log(`audit: failed: ${describeError(error)}`);
      return 2;
    }
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}
