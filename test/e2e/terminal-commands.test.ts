import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { closeAfterEach, localStack } from '../reliability/harness.ts';
import { childEnv, ROOT, runCli, TSX } from '../support/run-cli.ts';

const track = closeAfterEach();
const COMMANDS = [
  ['housekeep', 'lambda/entries/cli.ts'],
  ['audit', 'lambda/entries/audit-cli.ts'],
  ['restore', 'lambda/entries/restore-cli.ts'],
] as const;

describe('the terminal commands', () => {
  it.each(COMMANDS)(
    '%s --help prints the usage on stdout and exits 0, reading no configuration',
    async (_name, script) => {
      const result = await runCli(['--help'], {}, script);

      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^usage: npm run /);
      expect(result.stderr).toBe('');
    },
  );

  it.each(COMMANDS)(
    '%s refuses an unknown flag with its usage and exit 2, without a stack trace',
    async (name, script) => {
      const result = await runCli(['--force'], {}, script);

      expect(result.code).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(new RegExp(`^${name}: Unknown option '--force'`));
      expect(result.stderr).toContain('usage: npm run ');
      expect(result.stderr).not.toMatch(/\n\s+at /);
    },
  );

  it('npm start refuses --lines abc and --file-size 0 by the flag, and prints its usage on --help', async () => {
    const lines = await runCli(['--lines', 'abc'], {}, 'test/local/start.ts');
    const size = await runCli(['--file-size', '0'], {}, 'test/local/start.ts');
    const help = await runCli(['--help'], {}, 'test/local/start.ts');

    expect(lines.code).toBe(2);
    expect(lines.stderr).toMatch(/^start: --lines: expected a positive integer, got "abc"/);
    expect(size.code).toBe(2);
    expect(size.stderr).toMatch(/^start: --file-size: expected a positive integer/);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: npm start -- \[--lines N\] \[--file-size BYTES\]/);
  });

  it('refuses a bad flag value by the flag before any configuration is read', async () => {
    // No environment at all: were the configuration read first, it would complain about it.
    const result = await runCli(['--max-lines', 'abc'], {});

    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^housekeep: --max-lines: expected a positive integer, got "abc"/);
  });

  it('names every missing configuration variable in one run, not one per run', async () => {
    const result = await runCli([], { LINE_CONCURRENCY: 'lots' });

    expect(result.code).toBe(2);
    for (const name of ['TOKENS_API_URL', 'SESSION_KEY_SECRET_ID', 'ARCHIVE_BUCKET', 'LINE_CONCURRENCY']) {
      expect(result.stderr).toContain(`${name}: `);
    }
  });

  it('says why the secret could not be read, and where it was asked for', async () => {
    const local = await localStack(track, { lines: [] });

    const result = await runCli([], { ...local.env, SESSION_KEY_SECRET_ID: 'tokens/nowhere' });

    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      `secret tokens/nowhere: GetSecretValue failed at ${local.env.AWS_ENDPOINT_URL_SECRETS_MANAGER} (ResourceNotFoundException: `,
    );
  });

  it('ends quietly when the reader of its stdout goes away (a pipe to head)', async () => {
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 1000 }] });
    const child = spawn(TSX, ['lambda/entries/cli.ts', '--dry-run'], {
      cwd: ROOT,
      env: childEnv(local.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // The reader quits before the summary is written.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });

    const code = await new Promise<number | null>((resolve) => child.on('close', (exit) => resolve(exit)));

    expect(stderr).not.toContain('EPIPE');
    expect(code).toBe(0);
  });
});
