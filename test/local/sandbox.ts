/**
 * `npm run local`: a sandbox for the operator commands. Starts the tokens-service simulator (the
 * same realistic mix as `npm start`), a local S3 server and a local Secrets Manager, prints the
 * environment the commands need as `export NAME=value` lines on stdout, and keeps them up until
 * Ctrl-C (SIGINT) or SIGTERM, then stops everything it started.
 */
import { terminalCommand } from '../../lambda/entries/terminal.ts';
import { simulatorFlags, startLocalStack } from './stack.ts';
import { mixedLines } from './tokens-service.ts';

const USAGE = `usage: npm run -s local -- [--lines N] [--file-size BYTES]

Starts a local tokens service, S3 and Secrets Manager for the operator commands, prints the
environment to use as export lines on stdout (eval them in another terminal), and stays up until
Ctrl-C. --lines: lines in the simulator (default 12); --file-size: bytes of each file (default 262144).`;

/** A value as one shell word. */
function shellWord(value: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

process.exitCode = await terminalCommand(
  { name: 'local', usage: USAGE, args: process.argv.slice(2), logs: false },
  (args) => simulatorFlags(args),
  async (options, stdout) => {
    const local = await startLocalStack({ lines: mixedLines(options.lines, { fileSize: options.fileSize }) });
    for (const [name, value] of Object.entries(local.env))
      stdout.write(`export ${name}=${shellWord(value)}\n`);
    process.stderr.write(
      `local: tokens service ${local.tokens.url}, S3 ${local.s3.address} (bucket ${local.bucket}), ` +
        `Secrets Manager ${local.secrets.url}; ${options.lines} lines. Ctrl-C stops them.\n`,
    );
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    await local.close();
    process.stderr.write('local: stopped\n');
    return 0;
  },
);
