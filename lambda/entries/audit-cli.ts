import { parseArgs } from 'node:util';
import { archiveAccess } from '../app/deps.ts';
import { auditArchive } from '../core/audit.ts';
import { describeError } from '../shared/errors.ts';
import { isLineId } from '../shared/ids.ts';
import { stderrConsole as err, listFlag, printJson, progressLine, reserveStdout } from './terminal.ts';

const USAGE = `usage: npm run audit -- [--ids ID,ID...]

Re-reads the archived objects (all lines under ARCHIVE_PREFIX, or the given ids) and
recomputes their SHA-256 against each manifest. Prints the report JSON on stdout.
Exit 0: every file intact; 1: missing or damaged files, or lines without a manifest;
2: the audit could not run.`;

/** `npm run audit`: resolves to the process exit code. */
export async function main(args: readonly string[]): Promise<number> {
  let ids: string[] | undefined;
  try {
    const { values } = parseArgs({
      args: [...args],
      options: { ids: { type: 'string' }, help: { type: 'boolean' } },
    });
    if (values.help) {
      err.log(USAGE);
      return 0;
    }
    ids = values.ids === undefined ? undefined : listFlag(values.ids);
    const bad = ids?.find((id) => !isLineId(id));
    if (bad !== undefined) throw new Error(`--ids: ${JSON.stringify(bad)} is not a UUID`);
  } catch (error) {
    err.log(`audit: ${describeError(error)}\n\n${USAGE}`);
    return 2;
  }
  const stdout = reserveStdout();
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
    const clean =
      report.missing.length === 0 && report.damaged.length === 0 && report.withoutManifest.length === 0;
    return clean ? 0 : 1;
  } catch (error) {
    err.log(`audit: failed: ${describeError(error)}`);
    return 2;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}
