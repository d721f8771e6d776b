import { describe, expect, it } from 'vitest';
import type { LocalStackOptions } from '../local/stack.ts';
import { closeAfterEach, localStack as trackedStack } from '../reliability/harness.ts';
import { runCli } from '../support/run-cli.ts';

const track = closeAfterEach();
const localStack = (options?: LocalStackOptions) => trackedStack(track, options);

/** Every log line on stderr must be one JSON object. */
function logLines(stderr: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('npm run housekeep (cli)', () => {
  it('prints only the summary on stdout, logs JSON on stderr, exits 0, and never shows the session key', async () => {
    const local = await localStack({
      lines: [{ status: 'finished', analysis: 'metrics' }, { status: 'started' }],
    });
    const [id] = [...local.tokens.lines.keys()] as [string];
    // A rotated key, read fresh from the secret: the key is in play on every request of the run.
    local.tokens.setSessionKey('rotated-key-0000');
    local.secrets.setSecret(local.secretId, JSON.stringify({ sessionKey: 'rotated-key-0000' }));

    const result = await runCli([], { ...local.env, POWERTOOLS_LOG_LEVEL: 'DEBUG' });

    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout) as { dismantled: number; runId: string };
    expect(summary.dismantled).toBe(1);
    const logs = logLines(result.stderr);
    expect(logs.length).toBeGreaterThan(2);
    expect(logs.every((log) => log.runId === summary.runId)).toBe(true);
    expect(logs.some((log) => log.lineId === id)).toBe(true);
    for (const key of [local.sessionKey, 'rotated-key-0000']) {
      expect(result.stdout).not.toContain(key);
      expect(result.stderr).not.toContain(key);
    }
    expect(local.tokens.lines.get(id)?.status).toBe('deleted');
  });

  it('exits 1 when a line fails, and names the line and the file', async () => {
    const local = await localStack({ lines: [{ status: 'finished' }] });
    const [id] = [...local.tokens.lines.keys()] as [string];
    local.tokens.inject({ target: 'file', id, fault: { kind: 'corrupt' }, times: Infinity });

    const result = await runCli([], { ...local.env, RETRY_ATTEMPTS: '2' });

    expect(result.code).toBe(1);
    const summary = JSON.parse(result.stdout) as { failed: { id: string; reason: string }[] };
    expect(summary.failed).toEqual([{ id, reason: expect.stringContaining(`line ${id} file data`) }]);
    expect(local.tokens.deleteCount(id)).toBe(0);
  });

  it('exits 2 on a run-level error and names the missing variable', async () => {
    const local = await localStack({ lines: [{ status: 'finished' }] });
    const { TOKENS_API_URL: _omitted, ...env } = local.env;

    const result = await runCli([], env);

    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('TOKENS_API_URL');
    expect(local.tokens.requests).toEqual([]);
  });

  it('exits 2 on a bad flag value and does nothing', async () => {
    const local = await localStack({ lines: [{ status: 'finished' }] });

    const result = await runCli(['--max-lines', 'many'], local.env);

    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--max-lines: expected a positive integer');
    expect(local.tokens.requests).toEqual([]);
  });

  it('passes --dry-run, --ids, --archive-only and --max-lines through to the pass', async () => {
    const local = await localStack({
      lines: [{ status: 'finished' }, { status: 'finished' }, { status: 'finished' }],
    });
    const [a, b] = [...local.tokens.lines.keys()] as [string, string];

    const result = await runCli(['--ids', `${a},${b}`, '--archive-only', '--max-lines', '1'], local.env);

    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({ listed: 2, archived: 1, dismantled: 0, deferred: 1, archiveOnly: true });
    expect(local.tokens.requests.filter((r) => r.method === 'DELETE')).toEqual([]);
  });

  it("prints the dry run's plan as a table on stderr: id, alphabet, digits, files, bytes, action", async () => {
    const local = await localStack({
      lines: [{ status: 'finished', analysis: 'metrics', fileSize: 1000, alphabet: 'DICE', digits: '5' }],
    });
    const [id] = [...local.tokens.lines.keys()] as [string];

    const result = await runCli(['--dry-run'], { ...local.env, POWERTOOLS_LOG_LEVEL: 'SILENT' });

    expect(result.code).toBe(0);
    const lines = result.stderr.trim().split('\n');
    expect(lines[0]).toMatch(/^line id\s+alphabet\s+digits\s+files\s+bytes\s+action$/);
    expect(lines[2]).toMatch(new RegExp(`^${id}\\s+DICE\\s+5\\s+4\\s+4000\\s+archive-and-dismantle$`));
    expect(lines[3]).toMatch(/^1 lines\s+4\s+4000$/);
    expect(JSON.parse(result.stdout)).toMatchObject({ dryRun: true, plan: [{ id, files: 4 }] });
  });
});
