import { describe, expect, it } from 'vitest';
import type { Receipt } from '../../../lambda/archive/archive.ts';
import { auditFindings } from '../../../lambda/core/audit.ts';
import { deleteReply, FakeArchive, NOW, sha256 } from '../../support/fakes.ts';
import { archiveLine, audit, RUN_ID } from './archived-line.ts';

const ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const OTHER = '9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d';
const DATA = 'the tokens of the line\n';
const AT = new Date(NOW).toISOString();

/** The receipt a pass writes after a 200 DELETE reply stating `files` for line `id`. */
function receiptOf(id: string, files: Record<string, string>, extra: Partial<Receipt> = {}): Receipt {
  return {
    schemaVersion: 2,
    lineId: id,
    runId: RUN_ID,
    at: AT,
    reply: {
      status: 200,
      contentType: 'application/vnd.api+json',
      body: deleteReply(id, 200, { files }).text,
    },
    confirmation: 'the reply (200, status deleted)',
    ...extra,
  };
}

describe('auditArchive: receipts', () => {
  it('finds a dismantled line clean when its receipt agrees with its manifest, whatever confirmed it', async () => {
    const archive = new FakeArchive();
    archiveLine(archive, ID, { data: DATA });
    archive.putJson(archive.receiptKey(ID), receiptOf(ID, { data: DATA }));
    archiveLine(archive, OTHER, { data: DATA });
    archive.putJson(archive.receiptKey(OTHER), {
      schemaVersion: 2,
      lineId: OTHER.toUpperCase(),
      runId: RUN_ID,
      at: AT,
      reply: { status: 204, contentType: '', body: '' },
      confirmation: 'GET answered 404',
    } satisfies Receipt);

    const report = await audit(archive);

    expect(report).toMatchObject({ lines: 2, receipts: 2, discrepancies: [], receiptMismatches: [] });
    expect(auditFindings(report)).toBe(0);
  });

  it('reports the discrepancy a receipt records as a finding', async () => {
    const archive = new FakeArchive();
    archiveLine(archive, ID, { data: DATA });
    const discrepancy = `data is archived as 23 bytes, sha256 ${sha256(DATA)}, stated 5 bytes, sha256 ${sha256('new\n')}`;
    archive.putJson(archive.receiptKey(ID), receiptOf(ID, { data: 'new\n' }, { discrepancy }));

    const report = await audit(archive, [ID]);

    expect(report.discrepancies).toEqual([
      {
        id: ID,
        file: 'deleted.json',
        key: archive.receiptKey(ID),
        problem: `the line was dismantled with a discrepancy recorded: ${discrepancy}`,
      },
    ]);
    // The same difference is not reported twice: the receipt says it already.
    expect(report.receiptMismatches).toEqual([]);
    expect(report.intactFiles).toBe(1);
    expect(auditFindings(report)).toBe(1);
  });

  it('reports a receipt whose DELETE reply states files other than the manifest, though it records no discrepancy', async () => {
    const archive = new FakeArchive();
    archiveLine(archive, ID, { data: DATA });
    archive.putJson(
      archive.receiptKey(ID),
      receiptOf(ID, { data: DATA, extra: 'added at the last moment\n' }),
    );

    const report = await audit(archive, [ID]);

    expect(report.receiptMismatches).toEqual([
      {
        id: ID,
        file: 'deleted.json',
        key: archive.receiptKey(ID),
        problem: expect.stringMatching(
          /^the DELETE reply states other files than the manifest: extra \(25 bytes/,
        ),
      },
    ]);
    expect(auditFindings(report)).toBe(1);
  });

  it('reports a receipt that names another line', async () => {
    const archive = new FakeArchive();
    archiveLine(archive, ID, { data: DATA });
    archive.putJson(archive.receiptKey(ID), receiptOf(OTHER, { data: DATA }));

    const report = await audit(archive, [ID]);

    expect(report.receiptMismatches).toEqual([
      expect.objectContaining({
        id: ID,
        key: archive.receiptKey(ID),
        problem: `the receipt is of line ${JSON.stringify(OTHER)}, not of this line`,
      }),
    ]);
  });

  it('reports a receipt with no manifest beside it', async () => {
    const archive = new FakeArchive();
    archive.put(archive.fileKey(ID, 'data'), DATA);
    archive.putJson(archive.receiptKey(ID), receiptOf(ID, { data: DATA }));

    const report = await audit(archive);

    expect(report.withoutManifest).toEqual([ID]);
    expect(report.receiptMismatches).toEqual([
      expect.objectContaining({
        id: ID,
        problem:
          'a receipt, and no readable manifest: the line was dismantled with no record of what was archived',
      }),
    ]);
  });

  it.for([
    ['not JSON', 'deleted\n'],
    ['JSON of another shape', '{"schemaVersion":2,"lineId":42}'],
    ['a receipt of a newer schema', JSON.stringify({ ...receiptOf(ID, { data: DATA }), schemaVersion: 3 })],
  ] as const)('reports a receipt that cannot be read as one (%s)', async ([, body]) => {
    const archive = new FakeArchive();
    archiveLine(archive, ID, { data: DATA });
    archive.put(archive.receiptKey(ID), body);

    const report = await audit(archive, [ID]);

    expect(report.receiptMismatches).toEqual([
      expect.objectContaining({
        id: ID,
        problem: expect.stringMatching(/^the receipt cannot be read as one/),
      }),
    ]);
  });

  it('reads the receipts of the previous release (the DELETE reply document itself) against the manifest', async () => {
    const archive = new FakeArchive();
    archiveLine(archive, ID, { data: DATA });
    archive.putJson(archive.receiptKey(ID), {
      lineId: ID,
      runId: RUN_ID,
      at: AT,
      reply: deleteReply(ID, 200, { files: { data: DATA } }).document,
    });
    archiveLine(archive, OTHER, { data: DATA });
    archive.putJson(archive.receiptKey(OTHER), {
      lineId: OTHER,
      runId: RUN_ID,
      at: AT,
      reply: deleteReply(OTHER, 200, { files: { data: 'restated\n' } }).document,
    });

    const report = await audit(archive);

    expect(report.receipts).toBe(2);
    expect(report.receiptMismatches).toEqual([
      expect.objectContaining({ id: OTHER, problem: expect.stringMatching(/data is archived as/) }),
    ]);
  });
});
