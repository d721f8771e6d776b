import { describe, expect } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import { Archive, type Receipt } from '../../lambda/archive/archive.ts';
import { localS3Client } from '../local/stack.ts';
import { listKeys, objectJson } from '../support/archive-inspect.ts';
import {
  closeAfterEach,
  deleteAnsweredBy,
  deleteReply,
  localStack,
  oneFinishedLine,
  proxiedS3,
  storedReceipt,
  twoFinishedLines,
} from './harness.ts';
import { checkInvariant, observedPass, settle, snapshot } from './invariant.ts';
import { it } from './ledger.ts';

const track = closeAfterEach();

type StoredReceipt = Partial<Receipt>;

/** The document the service answers a DELETE with, `deleted`, with `attributes` spliced in. */
function deletedReply(id: string, attributes: Record<string, unknown>): string {
  return JSON.stringify({ data: { id, type: 'tokens', attributes: { status: 'deleted', ...attributes } } });
}

describe('DELETE replies other than 200 with the line', () => {
  it.for([
    [204, 'none'],
    [202, 'none'],
    [200, 'other-id'],
  ] as const)(
    'confirms a DELETE answered %i (%s body) with a GET, and keeps that reply as the receipt',
    async ([status, body], { s }) => {
      const { local, id } = await oneFinishedLine(track);
      s.inject(local.tokens, deleteReply(id, status, true, body));

      const { before, run } = await observedPass(local);

      expect(run.summary).toMatchObject({ archived: 1, dismantled: 1, failed: [], pending: [] });
      const receipt = await storedReceipt(local, id);
      expect(receipt).toMatchObject({ lineId: id, confirmation: 'GET answered 404', reply: { status } });
      expect(local.tokens.deleteCount(id)).toBe(1);
      await checkInvariant(s, local, { before, runs: [run] });
    },
  );

  it('reports a 202 whose line still shows as pending, and the next run confirms it once the line is gone', async ({
    s,
  }) => {
    const { local, ids } = await twoFinishedLines(track);
    const [slow, other] = ids;
    s.inject(local.tokens, deleteReply(slow, 202, false));
    let before = snapshot(local.tokens);
    const handler = createHandler(local.env);

    const first = await settle(handler({}));

    expect(first.summary).toMatchObject({ archived: 2, dismantled: 1, failed: [] });
    expect(first.summary?.pending).toEqual([
      expect.objectContaining({ id: slow, reason: expect.stringMatching(/202.*pending/) }),
    ]);
    expect(await listKeys(local.s3Client, local.bucket, `tokens/${slow}/deleted.json`)).toEqual([]);
    expect(await listKeys(local.s3Client, local.bucket, 'tokens/_pending/')).toEqual([
      `tokens/_pending/${slow}.json`,
    ]);
    await checkInvariant(s, local, { before, runs: [first] });

    // The service finishes the deletion on its own; the line is no longer listed.
    before = snapshot(local.tokens);
    local.tokens.completeDeletion(slow);
    s.fault('the service completes the 202 deletion later, and stops listing the line');

    const second = await settle(handler({}));

    expect(second.summary).toMatchObject({ dismantled: 1, failed: [], pending: [] });
    expect(local.tokens.deleteCount(slow)).toBe(1);
    const receipt = await storedReceipt(local, slow);
    expect(receipt.reply?.status).toBe(202);
    expect(receipt.confirmation).toMatch(/^GET answered 404 \(the DELETE was taken by run /);
    expect(local.tokens.lines.get(other)?.status).toBe('deleted');
    await checkInvariant(s, local, { before, runs: [second] });

    // Nothing left to confirm: a third run does nothing for it.
    const third = await handler({});
    expect(third).toMatchObject({ listed: 0, dismantled: 0 });
  });

  it('treats 410 Gone like 404 when the DELETE reply was lost and the retry finds the line gone', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track);
    local.tokens.setGoneStatus(410);
    s.fault('the service answers 410 Gone for a deleted line');
    s.inject(local.tokens, { target: 'delete', id, fault: { kind: 'delete-lost' } });

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ dismantled: 1, failed: [] });
    expect(local.tokens.requests.filter((r) => r.method === 'DELETE').map((r) => r.status)).toEqual([0, 410]);
    const receipt = await storedReceipt(local, id);
    expect(receipt).toMatchObject({ confirmation: 'GET answered 410' });
    expect(receipt.reply).toBeUndefined();
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('reports a 200 naming another line, whose line still shows, as pending and not as failed', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track);
    s.inject(local.tokens, deleteReply(id, 200, false, 'other-id'));

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ archived: 1, dismantled: 0, failed: [] });
    expect(run.summary?.pending).toEqual([expect.objectContaining({ id })]);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  // Guards what once failed: tokens-api.ts deleteLine throws on a status other than 200/202/204/404/410 once the
  // retries are spent, and line-work.ts #dismantle never asks a GET whether the DELETE acted.
  it('confirms by GET a DELETE whose gateway answered 504 every time after the service acted', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track);
    const env = await deleteAnsweredBy(track, local, (r) => r.writeHead(504).end('gateway timeout'));
    s.fault('a gateway passes the DELETE on, then answers 504 to every attempt');

    const { before, run } = await observedPass(local, env);

    expect(local.tokens.lines.get(id)?.status).toBe('deleted');
    expect(run.summary).toMatchObject({ dismantled: 1 });
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it.for([
    ['200 with a JSON array', 200, '[]'],
    ['202 with the JSON document of the deleted line', 202, 'document'],
    ['200 deleted, its files malformed', 200, 'malformed'],
    ['200 deleted, no files at all', 200, 'no-files'],
  ] as const)(
    'dismantles a line whose DELETE is answered %s, and keeps that reply (a discrepancy when its files cannot be read)',
    async ([_label, status, body], { s }) => {
      const { local, id } = await oneFinishedLine(track);
      const text =
        body === '[]'
          ? '[]'
          : body === 'document'
            ? deletedReply(id, {})
            : body === 'malformed'
              ? deletedReply(id, { filehashes: 'garbage', filesizes: [1, 2] })
              : deletedReply(id, { analysis: 'none' });
      const env = await deleteAnsweredBy(track, local, (r) =>
        r.writeHead(status, { 'content-type': 'application/vnd.api+json' }).end(text),
      );
      s.fault(`DELETE acted, answered ${_label}`);

      const { before, run } = await observedPass(local, env);

      const receipt = await storedReceipt(local, id);
      expect(receipt.reply).toMatchObject({ status, body: text });
      if (body === 'malformed') {
        // Files stated unreadably are no clean confirmation: dismantled, with a discrepancy.
        expect(run.summary).toMatchObject({ archived: 1, dismantled: 1, conflicts: 1, pending: [] });
        expect(receipt.discrepancy).toMatch(/states files that cannot be read/);
      } else {
        expect(run.summary).toMatchObject({ archived: 1, dismantled: 1, failed: [], pending: [] });
        expect(receipt.discrepancy).toBeUndefined();
      }
      await checkInvariant(s, local, { before, runs: [run] });
    },
  );

  it('dismantles a line whose DELETE is answered 204 followed by stray body bytes, and keeps the 204 as its receipt', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track);
    const env = await deleteAnsweredBy(track, local, (r) => {
      r.socket?.end('HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n{"a":"b"}');
    });
    s.fault('DELETE acted, answered 204 followed by bytes that belong to no reply');

    const { before, run } = await observedPass(local, env);

    expect(run.summary).toMatchObject({ dismantled: 1, failed: [] });
    const receipt = await storedReceipt(local, id);
    expect(receipt.reply).toMatchObject({ status: 204, body: '' });
    await checkInvariant(s, local, { before, runs: [run] });
  });
});

describe('receipts are never replaced by a weaker one (S3 conditional writes)', () => {
  const LINE = '6f1f0d2e-8b9a-4c3d-9e8f-0a1b2c3d4e5f';

  async function archiveThroughProxy() {
    const local = await localStack(track);
    const { proxy } = await proxiedS3(track, local, { enforceConditionalWrites: true });
    const s3 = localS3Client(proxy.url);
    track({ close: async () => s3.destroy() });
    const archive = new Archive({
      s3,
      bucket: local.bucket,
      prefix: 'tokens/',
      multipartThresholdBytes: 8 * 2 ** 20,
      partSizeBytes: 8 * 2 ** 20,
      readback: 'full',
    });
    const read = async () =>
      (await objectJson(local.s3Client, local.bucket, archive.receiptKey(LINE))) as StoredReceipt;
    return { archive, proxy, read };
  }

  const receipt = (runId: string, withReply: boolean): Receipt => ({
    schemaVersion: 2,
    lineId: LINE,
    runId,
    at: new Date(0).toISOString(),
    ...(withReply
      ? { reply: { status: 200, contentType: 'application/vnd.api+json', body: '{"data":{}}' } }
      : {}),
    confirmation: withReply ? 'the reply (200, status deleted)' : 'GET answered 404',
  });

  it('keeps the receipt holding the reply when a pass that only found the line gone writes after it', async ({
    s,
  }) => {
    const { archive, read } = await archiveThroughProxy();
    s.fault('a second pass writes an already-gone receipt after the first kept the reply');

    expect(await archive.writeReceipt(receipt('a', true))).toBe('written');
    expect(await archive.writeReceipt(receipt('b', false))).toBe('kept-existing');

    expect(await read()).toMatchObject({ runId: 'a', reply: { status: 200 } });
  });

  it('replaces an already-gone receipt with the reply when the pass holding the reply writes second', async ({
    s,
  }) => {
    const { archive, proxy, read } = await archiveThroughProxy();
    s.fault('the pass that found the line gone wins the race to the receipt');

    expect(await archive.writeReceipt(receipt('b', false))).toBe('written');
    expect(await archive.writeReceipt(receipt('a', true))).toBe('replaced-weaker');

    expect(await read()).toMatchObject({ runId: 'a', reply: { status: 200 } });
    // The reply's first write was refused by If-None-Match; the receipt there was then read, and
    // replaced with If-Match on what was read.
    expect(proxy.requests.filter((r) => r.operation === 'PutObject' && r.preconditionFailed)).toHaveLength(1);
  });

  it('never replaces one reply with another, and lets one of two racing passes win cleanly', async ({
    s,
  }) => {
    const { archive, read } = await archiveThroughProxy();
    s.fault('two passes write receipts holding replies at the same moment');

    const outcomes = await Promise.all([
      archive.writeReceipt(receipt('a', true)),
      archive.writeReceipt(receipt('b', true)),
    ]);

    expect(outcomes.sort()).toEqual(['kept-existing', 'written']);
    const kept = await read();
    expect(['a', 'b']).toContain(kept.runId);
    expect(await archive.writeReceipt(receipt('c', true))).toBe('kept-existing');
    expect((await read()).runId).toBe(kept.runId);
  });

  // Guards what once failed: archive.ts writeReceipt looks first (HEAD) only for a receipt without a reply; a
  // receipt with one relies on If-None-Match alone, which some stores ignore (the local one does).
  // And line-work.ts #confirmPending confirms (and counts as dismantled) a line whose receipt exists.
  it("keeps the receipt holding the 200 reply when a pending marker's 202 is confirmed later", async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track);
    const handler = createHandler(local.env);
    s.inject(local.tokens, deleteReply(id, 202, false));
    const first = await handler({});
    expect(first.pending.map((line) => line.id)).toEqual([id]);
    const second = await handler({});
    expect(second).toMatchObject({ dismantled: 1 });
    s.fault('a line whose 202 was pending is dismantled with a 200 reply, then named by id');
    const before = snapshot(local.tokens);

    const third = await settle(handler({ ids: [id] }));

    const receipt = await storedReceipt(local, id);
    expect(receipt.reply?.status).toBe(200);
    expect(third.summary).toMatchObject({ dismantled: 0 });
    await checkInvariant(s, local, { before, runs: [third] });
  });
});
