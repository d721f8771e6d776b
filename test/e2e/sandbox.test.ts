import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { childEnv, ROOT, runCli, TSX } from '../support/run-cli.ts';

/** The `export NAME=value` lines of the sandbox, as an environment (values are single words here). */
function exportsOf(stdout: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const match = /^export ([A-Z0-9_]+)=(.*)$/.exec(line);
    if (match?.[1] !== undefined) env[match[1]] = (match[2] ?? '').replace(/^'(.*)'$/, '$1');
  }
  return env;
}

const SCRIPTS: Record<string, string> = {
  housekeep: 'lambda/entries/cli.ts',
  audit: 'lambda/entries/audit-cli.ts',
  restore: 'lambda/entries/restore-cli.ts',
};

/** The commands of the README's sandbox session ("terminal 2"), as [script, args], comments dropped. */
async function readmeSession(): Promise<{ text: string; script: string; args: string[] }[]> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const block = /# terminal 2[^\n]*\n([\s\S]*?)```/.exec(readme)?.[1];
  if (block === undefined) throw new Error('README.md: no "# terminal 2" block');
  return block
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line !== '')
    .map((text) => {
      const match = /^npm run -s (\w+)(?: -- (.*))?$/.exec(text);
      const script = match?.[1] === undefined ? undefined : SCRIPTS[match[1]];
      if (script === undefined) throw new Error(`README.md session: not a terminal command: ${text}`);
      return { text, script, args: (match?.[2] ?? '').split(/\s+(?![^<]*>)/).filter((arg) => arg !== '') };
    });
}

describe('npm run local (the operator sandbox)', () => {
  it('prints the environment as export lines, serves the README session as written (dry run, archive-only, audit, a drill by hand, restore, full pass), and stops on Ctrl-C', async () => {
    const child = spawn(TSX, ['test/local/sandbox.ts', '--lines', '4'], {
      cwd: ROOT,
      env: childEnv({}),
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
    const outDir = await mkdtemp(join(tmpdir(), 'sandbox-session-'));
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

      // The README's session, command by command, as written (its one placeholder filled in).
      const session = await readmeSession();
      const results: Record<string, unknown>[] = [];
      let archivedId: string | undefined;
      for (const { text, script, args } of session) {
        const filled = args.map((arg) => {
          if (!/^<.*>$/.test(arg)) return arg === './restored' ? join(outDir, 'restored') : arg;
          if (archivedId === undefined) throw new Error(`${text}: no line archived yet`);
          return archivedId;
        });
        const result = await runCli(filled, env, script);
        expect(result.code, `${text}: ${result.stderr}`).toBe(0);
        results.push(JSON.parse(result.stdout) as Record<string, unknown>);
        // Not a terminal here: the logs are JSON, and name the line archived.
        const archivedLog = result.stderr
          .split('\n')
          .filter((line) => line.startsWith('{'))
          .map((line) => JSON.parse(line) as { message?: string; lineId?: string })
          .find((log) => log.message === 'line archived');
        archivedId ??= archivedLog?.lineId;
      }

      expect(session.map(({ text }) => text)).toEqual([
        'npm run -s housekeep -- --dry-run',
        'npm run -s housekeep -- --archive-only --max-lines 1',
        'npm run -s audit',
        'npm run -s audit -- --sample 2',
        'npm run -s restore -- --id <a line archived above> --out ./restored',
        'npm run -s housekeep',
      ]);
      const [plan, archiveOnly, audit, drill, restore, full] = results;
      expect(plan).toMatchObject({ dryRun: true, finished: 2 });
      expect(archiveOnly).toMatchObject({ archived: 1, dismantled: 0 });
      expect(audit).toMatchObject({ lines: 1, damaged: [], missing: [] });
      // A drill by hand over the one archived line: drawn, read back, clean.
      expect(drill).toMatchObject({ sampled: [archivedId], counts: { audited: 1, findings: 0 } });
      expect(restore).toMatchObject({ id: archivedId });
      expect(full).toMatchObject({ archived: 2, dismantled: 2, failed: [] });
    } finally {
      child.kill('SIGINT');
      await rm(outDir, { recursive: true, force: true });
    }
    expect(await closed).toBe(0);
    expect(stderr).toContain('local: stopped');
  });
});
