import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { closeAfterEach, localStack } from '../reliability/harness.ts';
import { childEnv, ROOT, runCli, TSX } from '../support/run-cli.ts';

const track = closeAfterEach();
/** util-linux `script` gives the command a real terminal (a pty) for its stderr. */
const HAS_SCRIPT = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;
const TEXT_LINE = /^\d\d:\d\d:\d\d (DEBUG|INFO |WARN |ERROR) /;

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** Non-empty lines of a stream. */
function linesOf(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

/**
 * Runs `housekeep` with its stderr on a pseudo-terminal and its stdout in a file, as an operator
 * running `npm run -s housekeep > result.json` at a terminal. Returns what the terminal showed.
 */
async function housekeepOnATerminal(args: string[], env: Record<string, string>) {
  const dir = await mkdtemp(join(tmpdir(), 'terminal-logs-'));
  dirs.push(dir);
  const out = join(dir, 'result.json');
  const command = [TSX, 'lambda/entries/cli.ts', ...args].map((word) => `'${word}'`).join(' ');
  const child = spawn('script', ['-qec', `${command} > '${out}'`, '/dev/null'], {
    cwd: ROOT,
    env: childEnv({ TERM: 'xterm-256color', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let terminal = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    terminal += chunk;
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, terminal: terminal.replaceAll('\r\n', '\n'), stdout: await readFile(out, 'utf8') };
}

/**
 * The rows a terminal shows: what is left on each after the last "erase line" and "column 1",
 * colours removed.
 */
function rows(terminal: string): string[] {
  return terminal.split('\n').map((row) => stripVTControlCharacters(row.split('\u001b[2K').at(-1) ?? ''));
}

describe('the logs of a terminal command', () => {
  it('LOG_FORMAT=text: short lines on stderr (level, line, what happened), the result alone on stdout, a failed download named as the download', async () => {
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 5000 }] });
    const [id] = [...local.tokens.lines.keys()] as [string];
    // The service closes the connection half way through the file, once.
    local.tokens.inject({ target: 'file', id, fault: { kind: 'truncate' } });

    const result = await runCli([], { ...local.env, LOG_FORMAT: 'text' });

    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ dismantled: 1 });
    const lines = linesOf(result.stderr);
    expect(lines.length).toBeGreaterThan(2);
    for (const line of lines) expect(line).toMatch(TEXT_LINE);
    expect(result.stderr).toMatch(
      new RegExp(
        `WARN {2}retrying {2}attempt=2 {2}error="GET http://[^ ]+/api/tokens/${id}/data: body broke off after \\d+ bytes: `,
      ),
    );
    expect(result.stderr).toMatch(new RegExp(`INFO  line ${id}: line dismantled`));
    // The socket the tokens service closed is not blamed on S3.
    expect(result.stderr).not.toMatch(/PutObject|upload failed/);
  });

  it('--json-logs gives Powertools JSON even when LOG_FORMAT asks for text', async () => {
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 1000 }] });

    const result = await runCli(['--json-logs'], { ...local.env, LOG_FORMAT: 'text' });

    expect(result.code).toBe(0);
    const logs = linesOf(result.stderr).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(logs.map((log) => log.message)).toContain('line dismantled');
    expect(logs.every((log) => log.service === 'tokens-housekeeper')).toBe(true);
  });

  it('refuses a LOG_FORMAT it does not know, naming it, before reading any configuration', async () => {
    const result = await runCli([], { LOG_FORMAT: 'yaml' });

    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^housekeep: LOG_FORMAT: expected json or text, got "yaml"/);
    expect(result.stderr).not.toContain('TOKENS_API_URL');
  });

  it('takes --json-logs only among the options: after "--" it is an argument like any other', async () => {
    const after = await runCli(['--', '--json-logs'], {});

    expect(after.code).toBe(2);
    expect(after.stderr).toMatch(/^housekeep: Unexpected argument '--json-logs'/);
  });

  it('runs with debug sampling on (POWERTOOLS_LOGGER_SAMPLE_RATE=1), its DEBUG lines as short lines', async () => {
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 1000 }] });

    const result = await runCli([], { ...local.env, LOG_FORMAT: 'text', POWERTOOLS_LOGGER_SAMPLE_RATE: '1' });

    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/^\d\d:\d\d:\d\d DEBUG /m);
    for (const line of linesOf(result.stderr)) expect(line).toMatch(TEXT_LINE);
  });

  it.skipIf(!HAS_SCRIPT)(
    'on a terminal: coloured short lines, a progress line that never shares a row with them, the result on stdout',
    async () => {
      const local = await localStack(track, {
        lines: Array.from({ length: 6 }, () => ({ status: 'finished' as const, fileSize: 2000 })),
      });

      const result = await housekeepOnATerminal([], { ...local.env, POWERTOOLS_LOG_LEVEL: 'INFO' });

      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ dismantled: 6 });
      // Colour on a terminal: the level in green.
      expect(result.terminal).toContain('\u001b[32mINFO \u001b[39m');
      const shown = rows(result.terminal).filter((row) => row !== '');
      const progress = shown.filter((row) => /^housekeep: \d+\/\d+ · /.test(row));
      const logs = shown.filter((row) => TEXT_LINE.test(row));
      expect(progress.length).toBeGreaterThan(0);
      expect(logs.filter((row) => row.includes('line dismantled'))).toHaveLength(6);
      // Every row is one or the other, never both.
      expect(progress.length + logs.length).toBe(shown.length);
      for (const row of progress) expect(row).not.toMatch(/\d\d:\d\d:\d\d (INFO|WARN)/);
      expect(result.terminal).not.toContain('{"level"');
    },
  );

  it.skipIf(!HAS_SCRIPT)('on a terminal, --json-logs keeps the JSON', async () => {
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 1000 }] });

    const result = await housekeepOnATerminal(['--json-logs'], {
      ...local.env,
      POWERTOOLS_LOG_LEVEL: 'INFO',
    });

    expect(result.code).toBe(0);
    const logs = rows(result.terminal).filter((row) => row.startsWith('{'));
    expect(logs.map((row) => (JSON.parse(row) as { message: string }).message)).toContain('line dismantled');
  });
});
