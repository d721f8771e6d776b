import { parseArgs } from 'node:util';
import { archiveAccess } from '../app/deps.ts';
import { auditArchive, auditFindings } from '../core/audit.ts';
import { describeError } from '../shared/errors.ts';
import {
  stderrConsole as err,
  idsFlag,
  LOG_USAGE,
  printJson,
  progressLine,
  terminalCommand,
} from './terminal.ts';

const USAGE = `usage: npm run audit -- [--ids ID,ID...] [--json-logs]

Re-reads the archived objects (all lines under ARCHIVE_PREFIX, or the given ids) and
recomputes their SHA-256 against each manifest, and reads each dismantled line's receipt
against its manifest. Prints the report JSON on stdout.
Exit 0: every file intact, every receipt in agreement; 1: any finding (missing or damaged
files, lines without a manifest, unsafe manifest entries, receipts recording a discrepancy
or disagreeing with their manifest); 2: the audit could not run.
${LOG_USAGE}`;

/** `npm run audit`: resolves to the process exit code. */
export function main(args: readonly string[]): Promise<number> {
  return terminalCommand(
    { name: 'audit', usage: USAGE, args },
    (flags) => {
      const { values } = parseArgs({
        args: [...flags],
        strict: true,
        allowPositionals: false,
        options: { ids: { type: 'string' } },
      });
      return values.ids === undefined ? undefined : idsFlag(values.ids);
    },
    async (ids, stdout) => {
      try {
        const archive = archiveAccess(process.env);
        const progress = progressLine('audit');
        let done = 0;
        let bytes = 0;
        const report = await auditArchive({
          archive,
          ...(ids === undefined ? {} : { ids }),
          now: Date.now,
          onFile: (file) => {
            done += 1;
            bytes += file.bytes;
            progress.update({ done, total: done, bytes });
          },
        });
        progress.finish();
        printJson(stdout, report);
        return auditFindings(report) === 0 ? 0 : 1;
      } catch (error) {
        err.log(`audit: failed: ${describeError(error)}`);
        return 2;
      }
    },
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}
