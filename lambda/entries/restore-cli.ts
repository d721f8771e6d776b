import { parseArgs } from 'node:util';
import { archiveAccess } from '../app/deps.ts';
import { restoreLine } from '../core/restore.ts';
import { describeError, IntegrityError } from '../shared/errors.ts';
import { isLineId } from '../shared/ids.ts';
import { stderrConsole as err, printJson, progressLine, reserveStdout } from './terminal.ts';

const USAGE = `usage: npm run restore -- --id LINE_ID --out DIR

Downloads a line's files and manifest from the archive into DIR and verifies each file
against the manifest (size and SHA-256). Prints the restored files as JSON on stdout.
Exit 0: restored and verified; 1: a file did not verify (nothing left for it in DIR);
2: the restore could not run.`;

/** `npm run restore`: resolves to the process exit code. */
export async function main(args: readonly string[]): Promise<number> {
  let id: string;
  let outDir: string;
  try {
    const { values } = parseArgs({
      args: [...args],
      options: { id: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean' } },
    });
    if (values.help) {
      err.log(USAGE);
      return 0;
    }
    if (!isLineId(values.id)) throw new Error('--id: a line id (UUID) is required');
    if (values.out === undefined || values.out === '') throw new Error('--out: a directory is required');
    id = values.id;
    outDir = values.out;
  } catch (error) {
    err.log(`restore: ${describeError(error)}\n\n${USAGE}`);
    return 2;
  }
  const stdout = reserveStdout();
  try {
    const archive = archiveAccess(process.env);
    const progress = progressLine(`restore ${id}`);
    let bytes = 0;
    const files = await restoreLine({
      archive,
      id,
      outDir,
      onBytes: (n) => {
        bytes += n;
        progress.update({ done: 0, total: 1, bytes });
      },
    });
    progress.finish();
    printJson(stdout, { id, outDir, files });
    return 0;
  } catch (error) {
    err.log(`restore: failed: ${describeError(error)}`);
    return error instanceof IntegrityError ? 1 : 2;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}
