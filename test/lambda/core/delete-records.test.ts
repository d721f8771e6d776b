import { describe, expect, it } from 'vitest';
import type { Receipt } from '../../../lambda/archive/archive.ts';
import { createLineWorker } from '../../../lambda/core/line/worker.ts';
import type { Deps, LineWorkRequest } from '../../../lambda/core/types.ts';
import { ArchiveError } from '../../../lambda/shared/errors.ts';
import { deleteReply, fakeDeps, notFound, silentLogger, testConfig } from '../../support/fakes.ts';

const ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const RUN_ID = '0b7e4c1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b';
const DATA = 'the tokens of the line\n';
const FULL: LineWorkRequest = { dryRun: false, archiveOnly: false };

function processLine(deps: Deps) {
  const worker = createLineWorker(deps, testConfig(), {
    runId: RUN_ID,
    request: FULL,
    logger: silentLogger(),
  });
  return worker.processLine(ID, silentLogger());
}

const s3Failure = (key: string) =>
  new ArchiveError(key, 'PutObject failed: InternalError (HTTP 500)', { retryable: true });

describe('the records of a DELETE (receipt, pending marker) under a flaky archive', () => {
  it('keeps whole, in the receipt, a discrepancy naming a file whose name holds "; "', async () => {
    const { deps, tokens, archive } = fakeDeps();
    const odd = 'a; b is no longer stated';
    tokens.line(ID, { files: { data: DATA } }, { files: { data: DATA } }, notFound(ID));
    tokens.onDelete(ID, deleteReply(ID, 200, { files: { data: DATA, [odd]: 'x\n' } }));

    expect(await processLine(deps)).toMatchObject({ outcome: 'failed', dismantled: true });
    const { discrepancy } = archive.json(archive.receiptKey(ID)) as Receipt;
    expect(discrepancy).toMatch(/^it states files that cannot be read \(.*"a; b is no longer stated".*\)$/);
  });

  it('reports a line dismantled once, with its discrepancy, when neither its receipt nor its marker can be written', async () => {
    const { deps, tokens, archive } = fakeDeps();
    const gained = { status: 'deleted', files: { data: DATA, extra: 'added at the DELETE\n' } };
    tokens.line(ID, { files: { data: DATA } }, { files: { data: DATA } }, gained);
    tokens.onDelete(ID, deleteReply(ID, 204));
    archive.writeReceipt = async () => {
      throw s3Failure(archive.receiptKey(ID));
    };
    archive.writePendingMarker = async () => {
      throw s3Failure(archive.pendingMarkerKey(ID));
    };

    const result = await processLine(deps);

    expect(result).toMatchObject({ outcome: 'failed', dismantled: true });
    expect(result.outcome === 'failed' && result.reason).toContain('extra');
    expect(archive.objects.has(archive.receiptKey(ID))).toBe(false);
    expect(archive.objects.has(archive.pendingMarkerKey(ID))).toBe(false);
  });

  it('leaves the line pending when its receipt write fails and the look for it fails too', async () => {
    const { deps, tokens, archive } = fakeDeps();
    tokens.line(ID, { files: { data: DATA } }, { files: { data: DATA } }, notFound(ID));
    const write = archive.writeReceipt.bind(archive);
    const look = archive.receiptRunId.bind(archive);
    archive.writeReceipt = async () => {
      throw s3Failure(archive.receiptKey(ID));
    };
    archive.receiptRunId = async () => {
      throw s3Failure(archive.receiptKey(ID));
    };

    expect(await processLine(deps)).toMatchObject({ outcome: 'pending' });
    expect(await archive.readPendingMarker(ID)).toMatchObject({ runId: RUN_ID, reply: { status: 200 } });
    // The store is back, for writes and reads alike.
    archive.writeReceipt = write;
    archive.receiptRunId = look;
    expect(await processLine(deps)).toMatchObject({ outcome: 'dismantled' });
    expect((archive.json(archive.receiptKey(ID)) as Receipt).reply).toMatchObject({ status: 200 });
  });
});
