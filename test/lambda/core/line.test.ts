import { describe, expect, it } from 'vitest';
import type { Receipt } from '../../../lambda/archive/archive.ts';
import { keptReplyStatement } from '../../../lambda/core/line/delete-reply.ts';
import { createLineWorker } from '../../../lambda/core/line/worker.ts';
import type { Config, Deps, LineWorkRequest } from '../../../lambda/core/types.ts';
import { ArchiveError, HttpStatusError } from '../../../lambda/shared/errors.ts';
import { readKeptReply } from '../../../lambda/tokens/document.ts';
import {
  deleteReply,
  fakeDeps,
  NOW,
  notFound,
  sha256,
  silentLogger,
  testConfig,
} from '../../support/fakes.ts';

const ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const RUN_ID = '0b7e4c1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b';
const DATA = 'the tokens of the line\n';
const FULL: LineWorkRequest = { dryRun: false, archiveOnly: false };

function processLine(deps: Deps, request: LineWorkRequest = FULL, config: Config = testConfig()) {
  const worker = createLineWorker(deps, config, { runId: RUN_ID, request, logger: silentLogger() });
  return worker.processLine(ID, silentLogger());
}

/** The service answering 503 to a GET of line `ID`: the line cannot be read, for now. */
const unavailable = () =>
  new HttpStatusError('answered 503', {
    method: 'GET',
    url: `https://tokens.example.com/api/tokens/${ID}`,
    status: 503,
    retryable: true,
  });

/** Fakes whose line `ID` (one file) was left pending by a first pass: its DELETE was taken (202). */
async function leftPending() {
  const fakes = fakeDeps();
  fakes.tokens.line(ID, { files: { data: DATA } });
  fakes.tokens.onDelete(ID, deleteReply(ID, 202));
  expect(await processLine(fakes.deps)).toMatchObject({ outcome: 'pending' });
  return fakes;
}

describe('processLine', () => {
  it('uploads the missing files, writes and re-reads the manifest before the DELETE (the re-read urgent, the first read not), then keeps a receipt', async () => {
    const { deps, tokens, archive, log } = fakeDeps();
    tokens.line(ID, { files: { data: DATA } });

    const result = await processLine(deps);

    expect(result).toMatchObject({
      id: ID,
      outcome: 'dismantled',
      uploaded: 1,
      reused: 0,
      bytes: DATA.length,
    });
    expect(log).toEqual([
      'getLine',
      'openFile data',
      'uploadVerified data',
      'writeManifest',
      'getLine urgent',
      'deleteLine',
      'writeReceipt',
    ]);
    expect(archive.manifest(ID)).toMatchObject({
      lineId: ID,
      runId: RUN_ID,
      files: [{ name: 'data', key: `tokens/${ID}/data`, size: DATA.length, sha256: sha256(DATA) }],
    });
    expect(archive.json(archive.receiptKey(ID))).toMatchObject({
      lineId: ID,
      runId: RUN_ID,
      confirmation: 'the reply (200, status deleted)',
      reply: { status: 200 },
    });
  });

  it('reuses a file already archived and verified: the one write that found it is refused, nothing is overwritten', async () => {
    const { deps, tokens, archive } = fakeDeps();
    tokens.line(ID, { files: { data: DATA } });
    archive.put(archive.fileKey(ID, 'data'), DATA);
    const stored = archive.objects.get(archive.fileKey(ID, 'data'));

    const result = await processLine(deps);

    expect(result).toMatchObject({ outcome: 'dismantled', uploaded: 0, reused: 1, bytes: 0 });
    // The first round assumes an empty archive: its one download goes to a write only where no
    // object is, which the archived file refuses; the line is then planned from the archive.
    expect(tokens.opened).toEqual(['data']);
    expect(archive.uploads).toEqual([
      { name: 'data', key: archive.fileKey(ID, 'data'), condition: { mustNotExist: true } },
    ]);
    expect(archive.objects.get(archive.fileKey(ID, 'data'))).toBe(stored);
  });

  it('plans from the archive when the probe landed but its answer was lost, and overwrites nothing', async () => {
    const { deps, tokens, archive } = fakeDeps();
    tokens.line(ID, { files: { data: DATA } });
    const upload = archive.uploadVerified.bind(archive);
    let landed: unknown;
    archive.uploadVerified = async (...args) => {
      await upload(...args);
      landed ??= archive.objects.get(archive.fileKey(ID, 'data'));
      throw new ArchiveError(archive.fileKey(ID, 'data'), 'the store answered 500 after storing it');
    };

    const result = await processLine(deps);

    expect(result).toMatchObject({ outcome: 'dismantled', uploaded: 0, reused: 1 });
    expect(archive.uploads).toHaveLength(1);
    expect(archive.objects.get(archive.fileKey(ID, 'data'))).toBe(landed);
  });

  it('lets the failure of an assume-empty round stand, sending no DELETE, when the archive cannot be listed after it', async () => {
    const { deps, tokens, archive, log } = fakeDeps();
    tokens.line(ID, { files: { data: DATA } });
    archive.uploadVerified = async () => {
      throw new ArchiveError(archive.fileKey(ID, 'data'), 'the store answered 500');
    };
    archive.lineObjects = async () => {
      throw new ArchiveError(archive.lineKey(ID), 'the listing answered 500');
    };

    const result = await processLine(deps);

    expect(result).toMatchObject({ outcome: 'failed' });
    expect(result.outcome === 'failed' && result.reason).toContain('the store answered 500');
    expect(log).not.toContain('deleteLine');
  });

  it('lists a line folder first when even its smallest file is too large to probe an archive with', async () => {
    const { deps, tokens, archive } = fakeDeps();
    const large = 'x'.repeat(1024 * 1024 + 1);
    tokens.line(ID, { files: { data: large } });
    archive.put(archive.fileKey(ID, 'data'), large);

    const result = await processLine(deps);

    expect(result).toMatchObject({ outcome: 'dismantled', uploaded: 0, reused: 1 });
    expect(tokens.opened).toEqual([]);
    expect(archive.uploads).toEqual([]);
  });

  it('fails with a conflict, uploads nothing and sends no DELETE, when a verified archive holds another version', async () => {
    const { deps, tokens, archive, log } = fakeDeps();
    const older = 'the tokens as they were archived before\n';
    tokens.line(ID, { files: { data: DATA } });
    archive.put(archive.fileKey(ID, 'data'), older);

    const result = await processLine(deps);

    expect(result).toMatchObject({ outcome: 'failed', conflict: true, errorName: 'ConflictError' });
    expect(result.outcome === 'failed' && result.reason).toContain(sha256(older));
    expect(result.outcome === 'failed' && result.reason).toContain(sha256(DATA));
    // Its one attempt was a write only where no object is: refused.
    expect(archive.uploads).toEqual([
      { name: 'data', key: archive.fileKey(ID, 'data'), condition: { mustNotExist: true } },
    ]);
    expect(log).not.toContain('deleteLine');
    expect(log).not.toContain('writeManifest');
    expect(archive.objects.get(archive.fileKey(ID, 'data'))?.bytes.toString()).toBe(older);
  });

  it('with keep-both, archives the new version at its versioned key and records the old one as superseded', async () => {
    const { deps, tokens, archive } = fakeDeps();
    const older = 'the tokens as they were archived before\n';
    tokens.line(ID, { files: { data: DATA } });
    archive.put(archive.fileKey(ID, 'data'), older);
    const versionKey = archive.versionKey(ID, 'data', sha256(DATA));

    const result = await processLine(deps, { ...FULL, onConflict: 'keep-both' });

    expect(result).toMatchObject({ outcome: 'dismantled', uploaded: 1 });
    // The first, refused by the older version at the file's key; then beside it.
    expect(archive.uploads).toEqual([
      { name: 'data', key: archive.fileKey(ID, 'data'), condition: { mustNotExist: true } },
      { name: 'data', key: versionKey, condition: { mustNotExist: true } },
    ]);
    expect(archive.objects.get(archive.fileKey(ID, 'data'))?.bytes.toString()).toBe(older);
    expect(archive.manifest(ID)).toMatchObject({
      files: [{ name: 'data', key: versionKey, sha256: sha256(DATA) }],
      superseded: [
        {
          name: 'data',
          key: archive.fileKey(ID, 'data'),
          sha256: sha256(older),
          supersededBy: RUN_ID,
          supersededAt: new Date(NOW).toISOString(),
        },
      ],
    });
  });

  it('skips a line that is not finished, and touches neither the archive nor the service', async () => {
    const { deps, tokens, log } = fakeDeps();
    tokens.line(ID, { status: 'started' });

    const result = await processLine(deps);

    expect(result).toMatchObject({
      outcome: 'skipped',
      reason: 'status is "started", not finished',
      notFinished: true,
    });
    expect(log).toEqual(['getLine']);
  });

  it('plans a dry run, and writes or deletes nothing', async () => {
    const { deps, tokens, archive, log } = fakeDeps();
    tokens.line(ID, { files: { data: DATA, score: '42\n' } });

    const result = await processLine(deps, { ...FULL, dryRun: true });

    expect(result).toMatchObject({
      outcome: 'planned',
      plan: { id: ID, files: 2, bytes: DATA.length + 3, action: 'archive-and-dismantle' },
    });
    expect(log).toEqual(['getLine']);
    expect(archive.objects.size).toBe(0);
  });

  it('archives without a DELETE when archiveOnly', async () => {
    const { deps, tokens, archive, log } = fakeDeps();
    tokens.line(ID, { files: { data: DATA } });

    const result = await processLine(deps, { ...FULL, archiveOnly: true });

    expect(result).toMatchObject({ outcome: 'archived', uploaded: 1 });
    expect(archive.manifest(ID)?.files).toHaveLength(1);
    expect(log).not.toContain('deleteLine');
    expect(archive.objects.has(archive.receiptKey(ID))).toBe(false);
  });

  it('keeps a receipt of a 204 DELETE with the GET 404 that confirmed it', async () => {
    const { deps, tokens, archive } = fakeDeps();
    tokens.line(ID, { files: { data: DATA } }, { files: { data: DATA } }, notFound(ID));
    tokens.onDelete(ID, deleteReply(ID, 204));

    const result = await processLine(deps);

    expect(result).toMatchObject({ outcome: 'dismantled' });
    const receipt = archive.json(archive.receiptKey(ID)) as Receipt;
    expect(receipt).toMatchObject({ confirmation: 'GET answered 404', reply: { status: 204 } });
  });

  it('leaves a pending marker when the DELETE gets no reply and the line cannot be read after it', async () => {
    const { deps, tokens, archive, log } = fakeDeps();
    const dropped = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    tokens.line(ID, { files: { data: DATA } }, { files: { data: DATA } }, unavailable());
    tokens.onDelete(ID, dropped);

    const result = await processLine(deps);

    expect(result).toMatchObject({ outcome: 'pending', uploaded: 1 });
    expect(result.outcome === 'pending' && result.reason).toMatch(
      /^DELETE got no usable reply \(.*socket hang up/,
    );
    expect(archive.json(archive.pendingMarkerKey(ID))).toMatchObject({ lineId: ID, runId: RUN_ID });
    expect(archive.objects.has(archive.receiptKey(ID))).toBe(false);
    expect(log.slice(-3)).toEqual(['deleteLine', 'getLine urgent', 'writePendingMarker']);
  });

  it('holds the reply a pending marker kept to the manifest when a later run confirms it: a file it states and the archive lacks is a discrepancy', async () => {
    const { deps, tokens, archive } = fakeDeps();
    tokens.line(ID, { files: { data: DATA } }, { files: { data: DATA } }, unavailable());
    // Taken (202), and its document states a file the line gained at the DELETE.
    const taken = deleteReply(ID, 200, { files: { data: DATA, extra: 'added at the DELETE\n' } });
    tokens.onDelete(ID, { ...taken, status: 202 });
    const first = await processLine(deps);
    expect(first).toMatchObject({ outcome: 'pending' });

    tokens.line(ID, notFound(ID));
    const second = await processLine(deps);

    expect(second).toMatchObject({ outcome: 'failed', conflict: true, dismantled: true });
    const receipt = archive.json(archive.receiptKey(ID)) as Receipt;
    expect(receipt.discrepancy).toContain('extra');
  });

  it('holds a pending DELETE carried out late to what the line stated while still there: files never archived are a discrepancy', async () => {
    const { deps, tokens, archive } = await leftPending();

    // Still there, restated: a conflict, kept; then the service carries out the old DELETE.
    tokens.line(ID, { files: { data: 'restated by the service\n' } });
    expect(await processLine(deps)).toMatchObject({ outcome: 'failed', conflict: true });
    tokens.line(ID, notFound(ID));
    const confirmed = await processLine(deps);

    expect(confirmed).toMatchObject({ outcome: 'failed', conflict: true, dismantled: true });
    const receipt = archive.json(archive.receiptKey(ID)) as Receipt;
    expect(receipt.discrepancy).toContain(`data is archived as ${DATA.length} bytes`);
  });

  it('confirms a pending DELETE with no discrepancy when a later run failed for a reason other than the files (a 503 read)', async () => {
    const { deps, tokens, archive } = await leftPending();

    tokens.line(ID, { files: { data: DATA } }, notFound(ID, 503));
    expect(await processLine(deps)).toMatchObject({ outcome: 'failed' });
    const marker = await archive.readPendingMarker(ID);
    expect(marker?.statedSince).toEqual([{ name: 'data', size: DATA.length, sha256: sha256(DATA) }]);
    tokens.line(ID, notFound(ID));

    expect(await processLine(deps)).toMatchObject({ outcome: 'dismantled' });
    expect((archive.json(archive.receiptKey(ID)) as Receipt).discrepancy).toBeUndefined();
  });

  it('notes nothing in the pending marker on a dry run', async () => {
    const { deps, tokens, archive } = await leftPending();
    const before = await archive.readPendingMarker(ID);

    tokens.line(ID, { files: { data: 'restated by the service\n' } });
    await processLine(deps, { dryRun: true, archiveOnly: false });

    expect(await archive.readPendingMarker(ID)).toEqual(before);
  });

  it('holds a pending DELETE to what the line stated even when a later run restated it only archive-only', async () => {
    const { deps, tokens, archive } = await leftPending();

    tokens.line(ID, { files: { data: 'restated by the service\n' } });
    expect(await processLine(deps, { dryRun: false, archiveOnly: true })).toMatchObject({
      outcome: 'failed',
      conflict: true,
    });
    tokens.line(ID, notFound(ID));

    expect(await processLine(deps)).toMatchObject({ outcome: 'failed', dismantled: true });
    expect((archive.json(archive.receiptKey(ID)) as Receipt).discrepancy).toContain(
      `data is archived as ${DATA.length} bytes`,
    );
  });
  it('holds a pending DELETE carried out late to the files the line stated on its last read, not its first', async () => {
    const { deps, tokens, archive } = await leftPending();

    // Read as archived, then restated before its DELETE: a conflict in the next round, kept.
    tokens.line(ID, { files: { data: DATA } }, { files: { data: 'restated before the DELETE\n' } });
    expect(await processLine(deps)).toMatchObject({ outcome: 'failed', conflict: true });
    tokens.line(ID, notFound(ID));
    const confirmed = await processLine(deps);

    expect(confirmed).toMatchObject({ outcome: 'failed', dismantled: true });
    const receipt = archive.json(archive.receiptKey(ID)) as Receipt;
    expect(receipt.discrepancy).toContain(`data is archived as ${DATA.length} bytes`);
  });

  /** An archive whose receipts cannot be written until `restore()` (S3 refuses every attempt). */
  const refusingReceipts = (archive: ReturnType<typeof fakeDeps>['archive']) => {
    const write = archive.writeReceipt.bind(archive);
    archive.writeReceipt = async () => {
      throw new ArchiveError(archive.receiptKey(ID), 'PutObject failed: InternalError (HTTP 500)', {
        retryable: true,
      });
    };
    return { restore: () => (archive.writeReceipt = write) };
  };

  it('counts a line whose receipt cannot be written as pending, and the run that writes it as dismantled, once', async () => {
    const { deps, tokens, archive } = fakeDeps();
    tokens.line(ID, { files: { data: DATA } }, { files: { data: DATA } }, notFound(ID));
    tokens.onDelete(ID, deleteReply(ID, 204));
    const receipts = refusingReceipts(archive);

    const first = await processLine(deps);

    expect(first).toMatchObject({ outcome: 'pending' });
    expect(first.outcome === 'pending' && first.reason).toMatch(
      /^dismantled \(GET answered 404.*\), but its receipt could not be written \(.*HTTP 500.*\): pending, a later run writes it/,
    );
    expect(await archive.readPendingMarker(ID)).toMatchObject({
      lineId: ID,
      runId: RUN_ID,
      reply: { status: 204 },
    });
    receipts.restore();
    const second = await processLine(deps);
    expect(second).toMatchObject({ outcome: 'dismantled' });
    expect(archive.json(archive.receiptKey(ID))).toMatchObject({ reply: { status: 204 } });
    expect((archive.json(archive.receiptKey(ID)) as Receipt).confirmation).toContain(
      `taken by run ${RUN_ID}`,
    );
  });

  it('keeps a pending DELETE pending, not dismantled, while the receipt confirming it cannot be written', async () => {
    const { deps, tokens, archive } = await leftPending();
    tokens.line(ID, notFound(ID));
    const receipts = refusingReceipts(archive);

    const unrecorded = await processLine(deps);

    expect(unrecorded).toMatchObject({ outcome: 'pending' });
    expect(unrecorded.outcome === 'pending' && unrecorded.reason).toMatch(
      /but its receipt could not be written .*: still pending, a later run writes it/,
    );
    expect(await archive.readPendingMarker(ID)).toBeDefined();
    receipts.restore();
    expect(await processLine(deps)).toMatchObject({ outcome: 'dismantled' });
  });

  it('carries a discrepancy found when the DELETE was confirmed into the receipt a later run writes', async () => {
    const { deps, tokens, archive } = fakeDeps();
    // Confirmed by a GET that shows the line deleted with a file the archive lacks.
    const gained = { status: 'deleted', files: { data: DATA, extra: 'added at the DELETE\n' } };
    tokens.line(ID, { files: { data: DATA } }, { files: { data: DATA } }, gained);
    tokens.onDelete(ID, deleteReply(ID, 204));
    const receipts = refusingReceipts(archive);

    const first = await processLine(deps);

    expect(first).toMatchObject({ outcome: 'pending' });
    expect(first.outcome === 'pending' && first.reason).toContain('extra');
    receipts.restore();
    tokens.line(ID, notFound(ID));
    expect(await processLine(deps)).toMatchObject({ outcome: 'failed', dismantled: true });
    expect((archive.json(archive.receiptKey(ID)) as Receipt).discrepancy).toContain('extra');
  });

  it('counts a line dismantled when its receipt write reports a failure but the receipt landed', async () => {
    const { deps, tokens, archive } = fakeDeps();
    tokens.line(ID, { files: { data: DATA } }, { files: { data: DATA } }, notFound(ID));
    const write = archive.writeReceipt.bind(archive);
    archive.writeReceipt = async (receipt) => {
      await write(receipt);
      throw new ArchiveError(archive.receiptKey(ID), 'PutObject failed: socket hang up', { retryable: true });
    };

    expect(await processLine(deps)).toMatchObject({ outcome: 'dismantled' });
    expect(await archive.readPendingMarker(ID)).toBeUndefined();
  });

  it("does not take another pass's receipt for its own when its receipt write failed: the line stays pending, its discrepancy in the marker", async () => {
    const { deps, tokens, archive } = fakeDeps();
    tokens.line(ID, { files: { data: DATA } }, { files: { data: DATA } }, notFound(ID));
    tokens.onDelete(ID, deleteReply(ID, 200, { files: { data: DATA, extra: 'added at the DELETE\n' } }));
    archive.writeReceipt = async () => {
      // Another pass's receipt lands meanwhile (a confirmation only); ours is refused.
      archive.putJson(archive.receiptKey(ID), {
        lineId: ID,
        runId: 'another-run',
        confirmation: 'GET answered 404',
      });
      throw new ArchiveError(archive.receiptKey(ID), 'PutObject failed: InternalError (HTTP 500)', {
        retryable: true,
      });
    };

    expect(await processLine(deps)).toMatchObject({ outcome: 'pending' });
    expect((await archive.readPendingMarker(ID))?.discrepancy).toContain('extra');
  });

  it('reads a kept reply that starts with a byte order mark', () => {
    const body = `\uFEFF${deleteReply(ID, 200, { files: { data: DATA } }).text}`;

    expect(
      keptReplyStatement(readKeptReply, ID, { status: 200, contentType: 'application/vnd.api+json', body })
        ?.files,
    ).toEqual([{ name: 'data', size: DATA.length, sha256: sha256(DATA) }]);
  });

  it('records the discrepancy a DELETE reply showed once in the receipt a later run writes', async () => {
    const { deps, tokens, archive } = fakeDeps();
    tokens.line(ID, { files: { data: DATA } }, { files: { data: DATA } }, notFound(ID));
    tokens.onDelete(ID, deleteReply(ID, 200, { files: { data: DATA, extra: 'added at the DELETE\n' } }));
    const receipts = refusingReceipts(archive);
    expect(await processLine(deps)).toMatchObject({ outcome: 'pending' });
    receipts.restore();

    expect(await processLine(deps)).toMatchObject({ outcome: 'failed', dismantled: true });
    const { discrepancy } = archive.json(archive.receiptKey(ID)) as Receipt;
    expect(discrepancy?.match(/extra/g)).toHaveLength(1);
  });

  it('keeps only a 2xx reply in a pending marker: a receipt written later never presents a 404 as the reply that took the DELETE', async () => {
    const { deps, tokens, archive } = fakeDeps();
    tokens.line(ID, { files: { data: DATA } }, { files: { data: DATA } }, notFound(ID));
    tokens.onDelete(ID, deleteReply(ID, 404));
    const receipts = refusingReceipts(archive);
    expect(await processLine(deps)).toMatchObject({ outcome: 'pending' });
    expect((await archive.readPendingMarker(ID))?.note).toContain('answered 404');
    receipts.restore();

    expect(await processLine(deps)).toMatchObject({ outcome: 'dismantled' });
    expect((archive.json(archive.receiptKey(ID)) as Receipt).reply).toBeUndefined();
  });

  it('keeps in the marker what a confirming GET stated when the receipt fails, so the receipt written after a later 404 records the discrepancy', async () => {
    const { deps, tokens, archive } = await leftPending();
    tokens.line(ID, { status: 'deleted', files: { data: DATA, extra: 'added at the DELETE\n' } });
    const receipts = refusingReceipts(archive);
    expect(await processLine(deps)).toMatchObject({ outcome: 'pending' });
    receipts.restore();
    // The service has purged the deleted document since: a GET says only 404.
    tokens.line(ID, notFound(ID));

    expect(await processLine(deps)).toMatchObject({ outcome: 'failed', dismantled: true });
    expect((archive.json(archive.receiptKey(ID)) as Receipt).discrepancy).toContain('extra');
  });

  it('stops the line at the first file that fails for good: the other downloads are not started', async () => {
    const { deps, tokens, archive, log } = fakeDeps();
    tokens.line(ID, { files: { data: DATA, extra: 'more\n', score: '42\n' } });
    tokens.failOpen('extra', new ArchiveError('tokens/x/extra', 'refused', { retryable: false }));

    const result = await processLine(deps, FULL, testConfig({ FILE_CONCURRENCY: '1' }));

    expect(result).toMatchObject({ outcome: 'failed', errorName: 'ArchiveError' });
    // Smallest first: `score`, then `extra`, which fails; `data` is never opened.
    expect(tokens.opened).toEqual(['score', 'extra']);
    expect(archive.uploads.map((upload) => upload.name)).toEqual(['score']);
    expect(log).not.toContain('writeManifest');
    expect(log).not.toContain('deleteLine');
  });

  it('archives a file the line states on its re-read before sending the DELETE', async () => {
    const { deps, tokens, archive, log } = fakeDeps();
    const grown = { files: { data: DATA, extra: 'added late\n' } };
    tokens.line(ID, { files: { data: DATA } }, grown);

    const result = await processLine(deps);

    expect(result).toMatchObject({ outcome: 'dismantled', uploaded: 2 });
    expect(log.indexOf('uploadVerified extra')).toBeGreaterThan(-1);
    expect(log.indexOf('uploadVerified extra')).toBeLessThan(log.indexOf('deleteLine'));
    expect(log.lastIndexOf('writeManifest')).toBeLessThan(log.indexOf('deleteLine'));
    expect(archive.manifest(ID)?.files.map((file) => file.name)).toEqual(['data', 'extra']);
  });

  it('plans the round after a line changed from its archive: a file already archived is not downloaded again', async () => {
    const { deps, tokens, archive } = fakeDeps();
    const grown = { files: { data: DATA, extra: 'added late\n' } };
    tokens.line(ID, { files: { data: DATA } }, grown);

    const result = await processLine(deps);

    expect(result).toMatchObject({ outcome: 'dismantled', uploaded: 2 });
    // Only the first round may assume an empty archive; the second knows it is not.
    expect(tokens.opened).toEqual(['data', 'extra']);
    expect(archive.uploads.map((upload) => upload.name)).toEqual(['data', 'extra']);
  });

  it('dismantles a line archived whole by an earlier run even when the service no longer serves one of its files', async () => {
    const { deps, tokens, archive } = fakeDeps();
    tokens.line(ID, { files: { data: DATA } });
    expect(await processLine(deps, { ...FULL, archiveOnly: true })).toMatchObject({ outcome: 'archived' });
    const gone = new HttpStatusError('answered 404', {
      method: 'GET',
      url: `https://tokens.example.com/api/tokens/${ID}/data`,
      status: 404,
      retryable: false,
    });
    tokens.failOpen('data', gone);

    const result = await processLine(deps);

    // A write that found out nothing (its download failed) says nothing of the archive: the line
    // is planned from the archive's listing, which holds every file verified.
    expect(result).toMatchObject({ outcome: 'dismantled', uploaded: 0, reused: 1 });
    expect(archive.uploads).toHaveLength(1);
  });

  it('probes the archive with the smallest file of a line that states more files than a call takes arguments', async () => {
    const { deps, tokens, archive } = fakeDeps();
    const files = Object.fromEntries(Array.from({ length: 150_000 }, (_, i) => [`f${i}`, `${i}\n`]));
    tokens.line(ID, { files: { data: DATA, ...files } });
    // The probe's download fails for good: the line stops there, with what was wrong.
    tokens.failOpen('f0', new ArchiveError('tokens/x/f0', 'refused', { retryable: false }));

    const result = await processLine(deps);

    expect(result).toMatchObject({ outcome: 'failed', errorName: 'ArchiveError' });
    expect(tokens.opened).toEqual(['f0']);
    expect(archive.uploads).toEqual([]);
  }, 30_000);

  it('leaves a line finished less than MIN_AGE ago waiting, untouched', async () => {
    const { deps, tokens, log } = fakeDeps();
    const finishedAt = new Date(NOW - 10 * 60_000).toISOString();
    tokens.line(ID, { files: { data: DATA }, finishedAt });

    const result = await processLine(deps, { ...FULL, minAgeMs: 3_600_000 });

    expect(result).toMatchObject({ outcome: 'waiting', until: new Date(NOW + 50 * 60_000).toISOString() });
    expect(log).toEqual(['getLine']);
  });
});
