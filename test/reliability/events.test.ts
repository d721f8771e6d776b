import { describe, expect, it } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import { payloadFromArgs } from '../../lambda/entries/cli.ts';
import { closeAfterEach, localStack, startCli } from './harness.ts';
import { checkInvariant, cliOutcome, settle, snapshot } from './invariant.ts';
import { scenario } from './ledger.ts';

const track = closeAfterEach();
const UUID = '00000000-0000-4000-8000-000000000001';

/** Payloads that must be refused whole: nothing read, nothing written, nothing deleted. */
const badPayloads: readonly [string, unknown][] = [
  ['dryRun as a string', { dryRun: 'yes' }],
  ['dryRun as a number', { dryRun: 1 }],
  ['archiveOnly as a string', { archiveOnly: 'false' }],
  ['archiveOnly as null', { archiveOnly: null }],
  ['ids as a string', { ids: UUID }],
  ['ids with a number', { ids: [42] }],
  ['ids with a path', { ids: ['../../etc/passwd'] }],
  ['ids with a UUID and a suffix', { ids: [`${UUID}/data`] }],
  ['ids empty', { ids: [] }],
  ['ids over 1000', { ids: Array.from({ length: 1001 }, () => UUID) }],
  ['maxLines as a string', { maxLines: '3' }],
  ['maxLines zero', { maxLines: 0 }],
  ['maxLines negative', { maxLines: -1 }],
  ['maxLines fractional', { maxLines: 1.5 }],
  ['maxLines infinite', { maxLines: Number.POSITIVE_INFINITY }],
  ['an unknown field', { dryrun: true }],
  ['a scheduled-event look-alike without detail-type', { source: 'aws.events' }],
  ['a string', 'run'],
  ['a number', 7],
  ['a boolean', true],
  ['an array', [{ dryRun: true }]],
];

describe('a bad manual payload', () => {
  it('is refused with an EventError naming the field, before any request, for every wrong shape', async ({
    task,
  }) => {
    const s = scenario(task);
    const local = await localStack(track, {
      lines: [{ status: 'finished', fileSize: 1000 }, { status: 'started' }],
    });
    const handler = createHandler(local.env);
    const before = snapshot(local.tokens);

    for (const [what, payload] of badPayloads) {
      s.fault(`event: ${what}`);
      const run = await settle(handler(payload));

      expect(run.error, what).toMatchObject({ name: 'EventError' });
      expect(local.tokens.requests, what).toEqual([]);
      expect(local.secrets.requests, what).toEqual([]);
      await checkInvariant(s, local, { before, runs: [run] });
    }
  });

  it('skips ids that do not exist, and touches no other line', async ({ task }) => {
    const s = scenario(task);
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 1000 }] });
    const unknown = [crypto.randomUUID(), crypto.randomUUID()];
    s.fault('event: ids of lines that do not exist');
    const before = snapshot(local.tokens);

    const run = await settle(createHandler(local.env)({ ids: [...unknown, unknown[0]] }));

    expect(run.summary).toMatchObject({ listed: 2, finished: 0, dismantled: 0, failed: [] });
    expect(run.summary?.skipped.map((line) => line.reason)).toEqual(['not found (404)', 'not found (404)']);
    expect(local.tokens.requests.map((r) => r.path).sort()).toEqual(
      unknown.map((id) => `/api/tokens/${id}`).sort(),
    );
    await checkInvariant(s, local, { before, runs: [run] });
  });
});

describe('bad CLI flags', () => {
  const badFlags: readonly [string, string[]][] = [
    ['--ids not-a-uuid', ['--ids', 'not-a-uuid']],
    ['--ids with a path', ['--ids', `${UUID},../x`]],
    ['--ids empty', ['--ids', ',']],
    ['--max-lines abc', ['--max-lines', 'abc']],
    ['--max-lines 0', ['--max-lines', '0']],
    ['--max-lines 1.5', ['--max-lines', '1.5']],
    ['--max-lines empty', ['--max-lines', '']],
    ['--dry-run=yes', ['--dry-run=yes']],
    ['an unknown flag', ['--force']],
    ['a positional argument', ['everything']],
  ];
  /** Spawned for real: one per way of failing (the flag parser, the payload schema). */
  const spawned = new Set(['--ids with a path', '--max-lines abc', '--ids empty', 'an unknown flag']);

  it('are each refused by the flag parser, naming the flag, before any request', async ({ task }) => {
    const s = scenario(task);
    const local = await localStack(track, { lines: [{ status: 'finished', fileSize: 1000 }] });

    for (const [what, args] of badFlags) {
      s.fault(`cli: ${what}`);
      // Refused by the flags' own rules (node's parser, or ours, naming the flag): no payload.
      expect(() => payloadFromArgs(args), what).toThrow(/--|Unknown option|Unexpected argument/);
    }
    expect(local.tokens.requests).toEqual([]);
  });

  it('exit 2 from the CLI process and do nothing', async ({ task }) => {
    const s = scenario(task);
    const local = await localStack(track, {
      lines: [{ status: 'finished', fileSize: 1000 }, { status: 'started' }],
    });
    const chosen = badFlags.filter(([what]) => spawned.has(what));
    const before = snapshot(local.tokens);

    // Side by side: each is a separate process, and none may touch anything.
    const results = await Promise.all(
      chosen.map(([what, args]) => {
        s.fault(`cli process: ${what}`);
        return track(startCli(local.env, args)).done;
      }),
    );

    for (const [index, result] of results.entries()) {
      const [what] = chosen[index] as [string, string[]];
      expect(result.code, what).toBe(2);
      expect(result.stdout, what).toBe('');
      expect(result.stderr, what).toMatch(/^housekeep: /m);
      await checkInvariant(s, local, { before, runs: [cliOutcome(result)] });
    }
    expect(local.tokens.requests).toEqual([]);
    expect(local.secrets.requests).toEqual([]);
  });
});
