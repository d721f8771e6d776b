import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/run-cli.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSX = fileURLToPath(new URL('../../node_modules/.bin/tsx', import.meta.url));

/** The `export NAME=value` lines of the sandbox, as an environment (values are single words here). */
function exportsOf(stdout: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const match = /^export ([A-Z0-9_]+)=(.*)$/.exec(line);
    if (match?.[1] !== undefined) env[match[1]] = (match[2] ?? '').replace(/^'(.*)'$/, '$1');
  }
  return env;
}

describe('npm run local (the operator sandbox)', () => {
  it('prints the environment as export lines, serves a dry run, an archive-only pass and an audit, and stops on Ctrl-C', async () => {
    const child = spawn(TSX, ['test/local/sandbox.ts', '--lines', '4'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    let stdout = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    // Ready when it says so on stderr (after the exports are written): an event, not a sleep.
    const ready = new Promise<void>((resolve) => {
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk;
      });
      child.stderr.on('data', () => {
        if (stderr.includes('Ctrl-C stops them')) resolve();
      });
    });
    try {
      await ready;
      const env = exportsOf(stdout);
      expect(Object.keys(env)).toEqual(
        expect.arrayContaining([
          'TOKENS_API_URL',
          'SESSION_KEY_SECRET_ID',
          'ARCHIVE_BUCKET',
          'AWS_ENDPOINT_URL_S3',
        ]),
      );

      const plan = await runCli(['--dry-run'], env);
      const pass = await runCli(['--archive-only'], env);
      const audit = await runCli([], env, 'lambda/entries/audit-cli.ts');

      expect(plan.code).toBe(0);
      expect(JSON.parse(plan.stdout)).toMatchObject({ dryRun: true, finished: 2 });
      expect(pass.code).toBe(0);
      expect(JSON.parse(pass.stdout)).toMatchObject({ archived: 2, dismantled: 0 });
      expect(audit.code).toBe(0);
      expect(JSON.parse(audit.stdout)).toMatchObject({ lines: 2, damaged: [], missing: [] });
    } finally {
      child.kill('SIGINT');
    }
    expect(await closed).toBe(0);
    expect(stderr).toContain('local: stopped');
  });
});
