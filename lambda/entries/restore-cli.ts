import { parseArgs } from 'node:util';
import { archiveAccess } from '../app/deps.ts';
import { restoreLine } from '../core/restore.ts';
import { describeError, IntegrityError, UnsafeReferenceError } from '../shared/errors.ts';
import { isLineId } from '../shared/ids.ts';
import { stderrConsole as err, LOG_USAGE, printJson, progressLine, terminalCommand } from './terminal.ts';

const USAGE = `usage: npm run restore -- --id LINE_ID --out DIR [--json-logs]

Downloads a line's files and manifest from the archive into DIR and verifies each file
against the manifest (size and SHA-256). Every manifest entry is checked first: one whose
name, hash or key is not this line's (a tampered manifest) is refused by name, and nothing
is written. Prints the restored files as JSON on stdout.
Exit 0: restored and verified; 1: a file did not verify (nothing left for it in DIR), or the
manifest names an unsafe entry (nothing written); 2: the restore could not run.
${LOG_USAGE}`;

/** `npm run restore`: resolves to the process exit code. */
export function main(args: readonly string[]): Promise<number> {
  return terminalCommand(
    { name: 'restore', usage: USAGE, args },
    (flags) => {
      const { values } = parseArgs({
        args: [...flags],
        strict: true,
        allowPositionals: false,
        options: { id: { type: 'string' }, out: { type: 'string' } },
      });
      if (!isLineId(values.id)) throw new Error('--id: a line id (UUID) is required');
      if (values.out === undefined || values.out === '') throw new Error('--out: a directory is required');
      return { id: values.id.toLowerCase(), outDir: values.out };
    },
    async ({ id, outDir }, stdout) => {
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
        // The archive is at fault (damaged bytes, a tampered manifest), not the run.
        return error instanceof IntegrityError || error instanceof UnsafeReferenceError ? 1 : 2;
      }
    },
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}
