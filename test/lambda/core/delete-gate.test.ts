import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Manifest } from '../../../lambda/archive/archive.ts';
import { dismantleGuard, NO_GUARD } from '../../../lambda/core/dismantle-guard.ts';
import { dismantle } from '../../../lambda/core/line/dismantle.ts';
import {
  type DeleteFacts,
  type DenyKind,
  decideDelete,
  sendDelete,
  type VerifiedFile,
} from '../../../lambda/core/line/gate.ts';
import { createRunTools } from '../../../lambda/core/run-tools.ts';
import type { TokensLine } from '../../../lambda/tokens/document.ts';
import { fakeDeps, notFound, silentLogger, testConfig } from '../../support/fakes.ts';

const ID = '6f1f0d2e-8b9a-4c3d-9e8f-0a1b2c3d4e5f';
const OTHER = '0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f';
const RUN_ID = '0b7e4c1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b';
const H1 = '1'.repeat(64);
const H2 = '2'.repeat(64);
const H3 = '3'.repeat(64);

function line(files: Record<string, [number, string]>, overrides: Partial<TokensLine> = {}): TokensLine {
  return {
    id: ID,
    status: 'finished',
    analysis: 'none',
    alphabet: undefined,
    digits: undefined,
    finishedAt: undefined,
    document: {},
    files: Object.entries(files).map(([name, [size, sha256]]) => ({ name, size, sha256, link: undefined })),
    ...overrides,
  };
}

function manifest(files: Record<string, [number, string]>, lineId = ID): Manifest {
  return {
    schemaVersion: 2,
    lineId,
    runId: 'run',
    archivedAt: '2026-12-06T00:00:00.000Z',
    bucket: 'b',
    files: Object.entries(files).map(([name, [size, sha256]]) => ({
      name,
      key: `tokens/${lineId}/${name}`,
      size,
      sha256,
    })),
  };
}

function verified(files: Record<string, [number, string]>): Map<string, VerifiedFile> {
  return new Map(
    Object.entries(files).map(([name, [size, sha256]]) => {
      const key = `tokens/${ID}/${name}`;
      return [key, { key, size, sha256 }];
    }),
  );
}

const FILES: Record<string, [number, string]> = { data: [10, H1], score: [20, H2] };

/** Facts under which the DELETE may go; each case below breaks one. */
function allowed(): DeleteFacts {
  return {
    id: ID,
    request: { dryRun: false, archiveOnly: false },
    line: line(FILES),
    manifest: manifest(FILES),
    verified: verified(FILES),
    stopped: false,
    guard: NO_GUARD,
  };
}

describe('decideDelete', () => {
  it('allows the DELETE when the line as read states exactly the manifest, every file verified', () => {
    const verdict = decideDelete(allowed());

    expect(verdict).toMatchObject({ allow: true, permit: { id: ID } });
  });

  it.for<[string, (facts: DeleteFacts) => DeleteFacts, DenyKind]>([
    ['a dry run', (f) => ({ ...f, request: { dryRun: true, archiveOnly: false } }), 'dry-run'],
    ['an archive-only run', (f) => ({ ...f, request: { dryRun: false, archiveOnly: true } }), 'archive-only'],
    ['a stopped run', (f) => ({ ...f, stopped: true }), 'stopped'],
    ['no manifest', (f) => ({ ...f, manifest: undefined }), 'no-manifest'],
    ["another line's manifest", (f) => ({ ...f, manifest: manifest(FILES, OTHER) }), 'no-manifest'],
    ['a line gone before its DELETE', (f) => ({ ...f, line: 'gone' }), 'gone'],
    ['a re-read of another line', (f) => ({ ...f, line: line(FILES, { id: OTHER }) }), 'other-line'],
    ['a line no longer finished', (f) => ({ ...f, line: line({}, { status: 'started' }) }), 'not-finished'],
    ['a line that gained a file', (f) => ({ ...f, line: line({ ...FILES, delta: [5, H3] }) }), 'changed'],
    ['a line that dropped a file', (f) => ({ ...f, line: line({ data: [10, H1] }) }), 'changed'],
    ['a line that restated a hash', (f) => ({ ...f, line: line({ ...FILES, data: [10, H3] }) }), 'changed'],
    ['a line that restated a size', (f) => ({ ...f, line: line({ ...FILES, data: [11, H1] }) }), 'changed'],
    ['a file not verified', (f) => ({ ...f, verified: verified({ data: [10, H1] }) }), 'unverified'],
    [
      'a file verified as other bytes',
      (f) => ({ ...f, verified: verified({ ...FILES, score: [20, H3] }) }),
      'unverified',
    ],
    ['nothing verified', (f) => ({ ...f, verified: new Map() }), 'unverified'],
  ])('keeps the line for %s', ([_label, change, why]) => {
    const verdict = decideDelete(change(allowed()));

    expect(verdict).toMatchObject({ allow: false, why });
  });

  it('allows exactly when every condition holds, over any combination of facts (property)', () => {
    const fileArb = fc.record({ size: fc.constantFrom(0, 10, 20), sha256: fc.constantFrom(H1, H2, H3) });
    const filesArb = fc.dictionary(fc.constantFrom('data', 'score', 'delta'), fileArb, { maxKeys: 3 });
    const toTuple = (files: Record<string, { size: number; sha256: string }>) =>
      Object.fromEntries(Object.entries(files).map(([n, f]) => [n, [f.size, f.sha256] as [number, string]]));
    fc.assert(
      fc.property(
        fc.record({
          dryRun: fc.boolean(),
          archiveOnly: fc.boolean(),
          stopped: fc.boolean(),
          held: fc.boolean(),
          gone: fc.boolean(),
          status: fc.constantFrom('finished', 'started'),
          lineId: fc.constantFrom(ID, OTHER),
          manifestId: fc.option(fc.constantFrom(ID, OTHER)),
          stated: filesArb,
          recorded: filesArb,
          verifiedFiles: filesArb,
        }),
        (input) => {
          const stated = toTuple(input.stated);
          const recorded = toTuple(input.recorded);
          const facts: DeleteFacts = {
            id: ID,
            request: { dryRun: input.dryRun, archiveOnly: input.archiveOnly },
            line: input.gone ? 'gone' : line(stated, { id: input.lineId, status: input.status }),
            manifest: input.manifestId === null ? undefined : manifest(recorded, input.manifestId),
            verified: verified(toTuple(input.verifiedFiles)),
            stopped: input.stopped,
            guard: { claim: () => (input.held ? 'held by the guard' : undefined) },
          };
          const same = (a: Record<string, [number, string]>, b: Record<string, [number, string]>) =>
            JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
          const everyRecordedVerified = Object.entries(recorded).every(([name, [size, sha]]) => {
            const v = input.verifiedFiles[name];
            return v !== undefined && v.size === size && v.sha256 === sha;
          });
          const expected =
            !input.dryRun &&
            !input.archiveOnly &&
            !input.stopped &&
            !input.gone &&
            input.lineId === ID &&
            input.status === 'finished' &&
            input.manifestId === ID &&
            same(stated, recorded) &&
            everyRecordedVerified &&
            !input.held;
          expect(decideDelete(facts).allow).toBe(expected);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('decideDelete with a dismantle guard', () => {
  it('holds a line the guard holds, with its reason, and issues no permit', () => {
    const verdict = decideDelete({
      ...allowed(),
      guard: { claim: () => 'MAX_DISMANTLES_PER_RUN (0) reached' },
    });

    expect(verdict).toEqual({ allow: false, why: 'held', reason: 'MAX_DISMANTLES_PER_RUN (0) reached' });
  });

  it('asks the guard only for a line it would otherwise let go, so a kept line uses no leave', () => {
    const guard = dismantleGuard({ maxPerRun: 1, maxShare: undefined, shareMinLines: 20 }, undefined);
    const changed = { ...allowed(), line: line({ data: [10, H1], score: [21, H3] }), guard };

    expect(decideDelete(changed)).toMatchObject({ allow: false, why: 'changed' });
    expect(decideDelete({ ...allowed(), guard }).allow).toBe(true);
    expect(decideDelete({ ...allowed(), guard })).toMatchObject({
      allow: false,
      why: 'held',
      reason: expect.stringMatching(/^MAX_DISMANTLES_PER_RUN \(1\) reached/),
    });
  });
});

describe('sendDelete', () => {
  const api = () => {
    const sent: string[] = [];
    return {
      sent,
      deleteLine: async (id: string) => {
        sent.push(id);
        return {
          status: 204,
          contentType: '',
          bytes: Buffer.alloc(0),
          readable: false,
          statement: undefined,
        };
      },
    };
  };

  it('sends one DELETE per permit of the gate, and refuses a second use of it', async () => {
    const tokens = api();
    const verdict = decideDelete(allowed());
    if (!verdict.allow) throw new Error('expected a permit');

    await sendDelete(tokens, verdict.permit);

    expect(tokens.sent).toEqual([ID]);
    expect(() => sendDelete(tokens, verdict.permit)).toThrow(/without a permit of the gate/);
    expect(tokens.sent).toEqual([ID]);
  });

  it('refuses a permit the gate did not issue', () => {
    const tokens = api();

    expect(() => sendDelete(tokens, { id: ID, manifest: manifest(FILES) })).toThrow(
      /without a permit of the gate/,
    );
    expect(tokens.sent).toEqual([]);
  });
});

describe('dismantle', () => {
  it('sends nothing and records nothing for a permit the gate did not issue', async () => {
    const { deps, tokens, archive, log } = fakeDeps();
    tokens.line(ID, notFound(ID));
    const config = testConfig();
    const request = { dryRun: false, archiveOnly: false };
    const tools = createRunTools(deps, config, { logger: silentLogger() });
    const ctx = {
      ...tools,
      config,
      request,
      runId: RUN_ID,
      now: deps.now,
      signal: undefined,
      guard: NO_GUARD,
    };
    const forged = { id: ID, manifest: manifest(FILES) };

    const outcome = dismantle(ctx, forged, { bytes: 0, uploaded: 0, reused: 0 }, silentLogger());

    await expect(outcome).rejects.toThrow(/without a permit of the gate/);
    expect(log).not.toContain('deleteLine');
    expect(log).not.toContain('writeReceipt');
    expect(log).not.toContain('writePendingMarker');
    expect(archive.objects.has(archive.receiptKey(ID))).toBe(false);
  });
});

describe('the DELETE path', () => {
  const root = fileURLToPath(new URL('../../../lambda/', import.meta.url));
  const sources = (dir: string): string[] =>
    readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
    });
  const callers = (pattern: RegExp) =>
    sources(root)
      .filter((path) => pattern.test(readFileSync(path, 'utf8')))
      .map((path) => relative(root, path));

  it('has one DELETE call, in the gate, and one caller of the gate, the dismantling', () => {
    expect(callers(/\.deleteLine\(/)).toEqual(['core/line/gate.ts']);
    expect(callers(/\bsendDelete\(/).sort()).toEqual(['core/line/dismantle.ts', 'core/line/gate.ts']);
    expect(callers(/['"]DELETE['"]/)).toEqual(['tokens/api.ts']);
  });
});
