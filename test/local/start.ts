/**
 * `npm start`: the embedded default. Starts the tokens-service simulator (a realistic mix of
 * requested, started and finished lines, a few transient faults included), a local S3 server
 * and a local Secrets Manager endpoint, runs one pass, and prints the summary and where the
 * archive landed. No AWS account needed.
 */
import { createHandler } from '../../lambda/app/invoke.ts';
import { LOG_USAGE, printJson, terminalCommand } from '../../lambda/entries/terminal.ts';
import { listKeys } from '../support/archive-inspect.ts';
import { simulatorFlags, startLocalStack } from './stack.ts';
import { mixedLines } from './tokens-service.ts';

const USAGE = `usage: npm start -- [--lines N] [--file-size BYTES] [--corrupt] [--json-logs]

Starts the tokens-service simulator, a local S3 server and a local Secrets Manager, runs one
housekeeping pass against them and prints its summary and the archive on stdout.
--lines: lines in the simulator (default 12: requested, started and finished ones);
--file-size: bytes of each file (default 262144); --corrupt: one line whose bytes never match.
${LOG_USAGE}`;

process.exitCode = await terminalCommand(
  { name: 'start', usage: USAGE, args: process.argv.slice(2) },
  (args) => simulatorFlags(args, { corrupt: true }),
  async (options, stdout) => {
    const local = await startLocalStack({ lines: mixedLines(options.lines, { fileSize: options.fileSize }) });
    try {
      const finished = [...local.tokens.lines.values()].filter((line) => line.status === 'finished');
      // Transient faults a real service shows now and then; the pass retries through them.
      local.tokens.inject({ target: 'list', fault: { kind: 'status', status: 503 } });
      if (finished[0] !== undefined) {
        local.tokens.inject({ target: 'file', id: finished[0].id, fault: { kind: 'truncate' } });
      }
      if (finished[1] !== undefined) {
        local.tokens.inject({
          target: 'get',
          id: finished[1].id,
          fault: { kind: 'status', status: 429, retryAfterSeconds: 1 },
        });
      }
      if (options.corrupt && finished[2] !== undefined) {
        // A line whose bytes never match its stated hash: it must be reported and never deleted.
        local.tokens.inject({
          target: 'file',
          id: finished[2].id,
          fault: { kind: 'corrupt' },
          times: Infinity,
        });
      }
      process.stderr.write(
        `tokens service ${local.tokens.url}, S3 ${local.s3.address} (bucket ${local.bucket}), ` +
          `Secrets Manager ${local.secrets.url}\n` +
          'The demo injects faults on purpose: a 503 on the list, a truncated download and a 429 ' +
          `with Retry-After${options.corrupt ? ', and one line corrupted on every download' : ''}; ` +
          'the "retrying" warnings below are those.\n',
      );
      // The AWS SDK reads region and credentials from the process environment, like in Lambda.
      Object.assign(process.env, local.env);
      const summary = await createHandler(process.env)({});
      const keys = await listKeys(local.s3Client, local.bucket);
      printJson(stdout, summary);
      stdout.write(
        `\nArchive: s3://${local.bucket}/ (local S3 at ${local.s3.address}), ${keys.length} objects:\n`,
      );
      for (const key of keys) stdout.write(`  ${key}\n`);
      const left = [...local.tokens.lines.values()].filter((line) => line.status !== 'deleted');
      stdout.write(
        `\nService now holds ${left.length} lines: ${left.map((line) => `${line.id} (${line.status})`).join(', ')}\n`,
      );
      return summary.failed.length > 0 ? 1 : 0;
    } finally {
      await local.close();
    }
  },
);
