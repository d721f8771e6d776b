import { describe, expect } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import type { Fault, TokensService } from '../local/tokens-service.ts';
import { listKeys } from '../support/archive-inspect.ts';
import {
  closeAfterEach,
  deletedDocument,
  deleteReply,
  forwardThen,
  localStack,
  oneFinishedLine,
  onlyLine,
  startFront,
  storedReceipt,
} from './harness.ts';
import { checkInvariant, observedPass, runHandler, settle, snapshot } from './invariant.ts';
import { it, type Scenario } from './ledger.ts';

const track = closeAfterEach();

/** A finished line whose first run's DELETE was taken (202) and not acted on: left pending. */
async function leftPending(s: Scenario) {
  const { local, id } = await oneFinishedLine(track, { fileSize: 2000 });
  s.inject(local.tokens, deleteReply(id, 202, false));
  const before = snapshot(local.tokens);
  const first = await runHandler(local.env);
  expect(first.summary?.pending.map((line) => line.id)).toEqual([id]);
  return { local, id, before, first };
}

describe('the document that confirms a DELETE', () => {
  it.for([
    ['204 with no body', { kind: 'delete-reply', status: 204, acts: true, body: 'none' }],
    ['202 with no body', { kind: 'delete-reply', status: 202, acts: true, body: 'none' }],
    [
      '502 from a gateway, after the service acted',
      { kind: 'delete-reply', status: 502, acts: true, body: 'none' },
    ],
  ] as const satisfies readonly (readonly [string, Fault])[])(
    'is compared with the manifest when a GET confirms a DELETE answered %s: a file stated at the DELETE and not archived is a discrepancy',
    async ([_label, fault], { s }) => {
      const { local, id } = await oneFinishedLine(track, { fileSize: 2000 });
      s.inject(local.tokens, { target: 'delete', id, fault });
      // After the read before the DELETE, the line gains a file; the GET after the DELETE shows it.
      local.tokens.onRequest((method, path) => {
        if (method !== 'DELETE' || path !== `/api/tokens/${id}`) return;
        if (local.tokens.lines.get(id)?.files.has('extra')) return;
        local.tokens.addFile(id, 'extra', 100);
        local.tokens.setRawLine(id, deletedDocument(local.tokens, id));
      });
      s.fault('the line gains a file between the read before its DELETE and the DELETE');

      const { before, run } = await observedPass(local);

      expect(run.summary).toMatchObject({ dismantled: 1, conflicts: 1 });
      expect(run.summary?.failed).toEqual([
        expect.objectContaining({
          id,
          conflict: true,
          dismantled: true,
          reason: expect.stringContaining('extra (100 bytes'),
        }),
      ]);
      const receipt = await storedReceipt(local, id);
      expect(receipt.confirmation).toMatch(/^GET shows status deleted/);
      expect(receipt.discrepancy).toContain('extra (100 bytes');
      await checkInvariant(s, local, { before, runs: [run], changedAtDelete: [id] });
    },
  );

  it('is compared with the manifest when a later run confirms a DELETE left pending', async ({ s }) => {
    const { local, id, before, first } = await leftPending(s);

    // The service carries the DELETE out later, stating a file the archive never saw.
    local.tokens.addFile(id, 'extra', 100);
    local.tokens.completeDeletion(id);
    local.tokens.setRawLine(id, deletedDocument(local.tokens, id));
    s.fault('the line gains a file before its pending DELETE is carried out');
    const second = await runHandler(local.env);

    expect(second.summary?.failed).toEqual([
      expect.objectContaining({ id, conflict: true, reason: expect.stringContaining('extra (100 bytes') }),
    ]);
    const receipt = await storedReceipt(local, id);
    expect(receipt.discrepancy).toContain('extra (100 bytes');
    await checkInvariant(s, local, { before, runs: [first, second], changedAtDelete: [id] });
  });

  it('must name the same line: a DELETE that never acted, confirmed by a GET of another line deleted, stays pending with no receipt', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track, { env: { RETRY_ATTEMPTS: '1' } });
    const other = '0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f';
    s.inject(local.tokens, { target: 'delete', id, fault: { kind: 'status', status: 502 } });
    local.tokens.onRequest((method, path) => {
      // After the (refused) DELETE, the GET answers another line's deleted document.
      if (method === 'DELETE' && path === `/api/tokens/${id}`) {
        local.tokens.setRawLine(id, deletedDocument(local.tokens, id, other));
      }
    });
    s.fault('a 502 DELETE that never acted, and a GET answering another line, deleted');

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ dismantled: 0 });
    expect(run.summary?.pending).toEqual([
      expect.objectContaining({ id, reason: expect.stringContaining(`another line (${other})`) }),
    ]);
    expect(local.tokens.lines.get(id)?.status).toBe('finished');
    expect(await listKeys(local.s3Client, local.bucket, `tokens/${id}/deleted.json`)).toEqual([]);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('may be missing from a 200 reply that is not valid UTF-8 or JSON: the DELETE is confirmed by a GET and its receipt kept', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track);
    s.inject(local.tokens, { target: 'delete', id, fault: { kind: 'corrupt' } });
    s.fault('a DELETE that acts and answers 200 with a body that is not UTF-8 JSON');

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ dismantled: 1, failed: [], pending: [] });
    const receipt = await storedReceipt(local, id);
    expect(receipt.confirmation).toBe('GET answered 404');
    expect(local.tokens.deleteCount(id)).toBe(1);
    await checkInvariant(s, local, { before, runs: [run] });
  });
});

const JSON_API = 'application/vnd.api+json';

/**
 * The line's deleted document as a hostile but faithful service may spell it: the id in upper
 * case, its files in reverse order, the first name JSON-escaped, hashes in upper case, a size as
 * a digit string, and whitespace everywhere.
 */
function oddlySpelledDeletedDocument(tokens: TokensService, id: string): string {
  const files = [...(tokens.lines.get(id)?.files ?? new Map()).entries()].reverse();
  const name = (file: string, index: number) =>
    index === 0
      ? JSON.stringify(file).replace(/[a-z]/, (c) => `\\u00${c.charCodeAt(0).toString(16)}`)
      : JSON.stringify(file);
  const hashes = files.map(([file, { sha256 }], i) => `\n\t${name(file, i)} :  "${sha256.toUpperCase()}"`);
  const sizes = files.map(([file, { size }], i) => `\n\t${name(file, i)}: ${i === 0 ? `"${size}"` : size}`);
  return `  {\n "data" : {\n "id":"${id.toUpperCase()}",  "type" : "tokens",\n "attributes": { "status" : "deleted", "analysis":"none",\n "filehashes": {${hashes.join(',')} },\n "filesizes": {${sizes.join(',')} } } } }\n`;
}

describe('a document confirming a DELETE, spelled oddly', () => {
  it.for([
    ['its 200 reply', 'reply'],
    ['a GET after a 204', 'get'],
  ] as const)(
    'confirms the line cleanly when %s names it in upper case, with its files reordered, escaped, upper-case hashes and whitespace',
    async ([_label, via], { s }) => {
      const local = await localStack(track, {
        lines: [{ status: 'finished', fileSize: 1000, fileSizes: { notes: 500 } }],
      });
      const id = onlyLine(local.tokens.lines);
      const path = `/api/tokens/${id}`;
      const front = track(
        await startFront(local.tokens.url, (req, res) => {
          const deleted = local.tokens.lines.get(id)?.status === 'deleted';
          if (req.method === 'DELETE' && req.url === path) {
            local.tokens.completeDeletion(id);
            if (via === 'reply')
              res
                .writeHead(200, { 'content-type': JSON_API })
                .end(oddlySpelledDeletedDocument(local.tokens, id));
            else res.writeHead(204).end();
            return true;
          }
          if (req.method === 'GET' && req.url === path && deleted && via === 'get') {
            res
              .writeHead(200, { 'content-type': JSON_API })
              .end(oddlySpelledDeletedDocument(local.tokens, id));
            return true;
          }
          return false;
        }),
      );
      s.fault(`the document confirming the DELETE (${via}) spells the line oddly`);

      const { before, run } = await observedPass(local, { ...local.env, TOKENS_API_URL: front.url });

      expect(run.summary).toMatchObject({ dismantled: 1, conflicts: 0, failed: [], pending: [] });
      const receipt = await storedReceipt(local, id);
      expect(receipt.discrepancy).toBeUndefined();
      expect(receipt.confirmation).toMatch(via === 'reply' ? /^the reply/ : /^GET shows status deleted/);
      await checkInvariant(s, local, { before, runs: [run] });
    },
  );
});

describe('a later run confirming a pending DELETE', () => {
  it('writes no receipt when the GET of the line answers another line deleted, and confirms it once the line itself is gone', async ({
    s,
  }) => {
    const { local, id, before } = await leftPending(s);
    const other = '0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f';

    // The service carries the DELETE out; a GET of the line answers another line, deleted.
    local.tokens.completeDeletion(id);
    local.tokens.setRawLine(id, deletedDocument(local.tokens, id, other));
    s.fault('the GET confirming a pending DELETE answers another line, deleted');
    const second = await runHandler(local.env);

    expect(second.summary).toMatchObject({ dismantled: 0 });
    expect(await listKeys(local.s3Client, local.bucket, `tokens/${id}/deleted.json`)).toEqual([]);
    expect(await listKeys(local.s3Client, local.bucket, `tokens/_pending/${id}.json`)).toEqual([
      `tokens/_pending/${id}.json`,
    ]);

    local.tokens.clearRawLine(id);
    const third = await runHandler(local.env);

    expect(third.summary).toMatchObject({ dismantled: 1, failed: [] });
    const receipt = await storedReceipt(local, id);
    expect(receipt.confirmation).toMatch(/^GET answered 404 \(the DELETE was taken by run /);
    await checkInvariant(s, local, { before, runs: [third] });
  });

  // Guards what once failed: line-work.ts #dismantle: a failure of #seenGone (after a 2xx the service took) is
  // thrown as the line's failure: no receipt and no pending marker, so no later run confirms it.
  it('keeps a pending marker when the GET confirming a 204 fails, and the next run keeps the receipt', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track);
    let deleted = false;
    const front = track(
      await startFront(local.tokens.url, (req, res) => {
        if (req.method === 'DELETE') {
          deleted = true;
          return forwardThen(local.tokens.url, req, res, (r) => r.writeHead(204).end());
        }
        if (deleted && req.url === `/api/tokens/${id}`) {
          res.writeHead(503).end();
          return true;
        }
        return false;
      }),
    );
    s.fault('DELETE answered 204 (acted); every GET of the line after it answers 503');
    const before = snapshot(local.tokens);

    const first = await runHandler({ ...local.env, TOKENS_API_URL: front.url });
    const second = await runHandler(local.env);

    expect(first.summary?.pending).toEqual([expect.objectContaining({ id })]);
    expect(second.summary).toMatchObject({ dismantled: 1 });
    const receipt = await storedReceipt(local, id);
    expect(receipt.reply?.status).toBe(204);
    await checkInvariant(s, local, { before, runs: [second] });
  });

  // Guards what once failed: line-work.ts #confirmPending runs on archive-only runs too (only dryRun is excluded).
  it('reports no line dismantled on an archive-only run that finds a pending line gone', async ({ s }) => {
    const { local, id } = await leftPending(s);
    local.tokens.completeDeletion(id);
    s.fault('the 202 deletion completes; an archive-only run names the line');
    const before = snapshot(local.tokens);

    const run = await settle(createHandler(local.env)({ ids: [id], archiveOnly: true }));

    expect(run.summary).toMatchObject({ dismantled: 0 });
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('sends the DELETE again for a pending line that is back as finished, and keeps the 200 reply', async ({
    s,
  }) => {
    const { local, id } = await leftPending(s);
    s.fault('the service never carries out the 202: the line stays finished');

    const { before, run } = await observedPass(local);

    expect(run.summary).toMatchObject({ listed: 1, dismantled: 1, pending: [], failed: [] });
    const receipt = await storedReceipt(local, id);
    expect(receipt.reply?.status).toBe(200);
    expect(local.tokens.deleteCount(id)).toBe(2);
    await checkInvariant(s, local, { before, runs: [run] });
  });
});

type Bend = (files: { hashes: Record<string, string>; sizes: Record<string, number> }) => void;

/** The line's deleted document stating its files now, bent by `bend` (a hash or size malformed). */
function bentDeletedDocument(tokens: TokensService, id: string, bend: Bend): unknown {
  const document = deletedDocument(tokens, id) as {
    data: { attributes: { filehashes: Record<string, string>; filesizes: Record<string, number> } };
  };
  bend({ hashes: document.data.attributes.filehashes, sizes: document.data.attributes.filesizes });
  return document;
}

describe('a document confirming a DELETE that states its files malformed', () => {
  it.for([
    [
      'its 200 reply names in filehashes a file that filesizes lacks',
      'reply',
      ({ sizes }) => {
        delete sizes.extra;
      },
    ],
    [
      'a GET after a 204 states the new file under an upper-case name',
      'get',
      ({ hashes, sizes }) => {
        hashes.EXTRA = hashes.extra ?? '';
        sizes.EXTRA = sizes.extra ?? 0;
        delete hashes.extra;
        delete sizes.extra;
      },
    ],
    [
      'a GET after a 204 states the new file with a 63-character hash',
      'get',
      ({ hashes }) => {
        hashes.extra = (hashes.extra ?? '').slice(1);
      },
    ],
  ] as const satisfies readonly (readonly [string, 'reply' | 'get', Bend])[])(
    'is no clean confirmation when %s: the line gained a file at its DELETE, and the receipt records a discrepancy',
    async ([_label, via, bend], { s }) => {
      const { local, id } = await oneFinishedLine(track);
      const front = track(
        await startFront(local.tokens.url, (req, res) => {
          if (req.method !== 'DELETE' || req.url !== `/api/tokens/${id}`) return false;
          // The line gains a file after the read right before its DELETE; the DELETE acts.
          local.tokens.addFile(id, 'extra', 100);
          local.tokens.completeDeletion(id);
          const document = bentDeletedDocument(local.tokens, id, bend);
          if (via === 'reply') res.writeHead(200, { 'content-type': JSON_API }).end(JSON.stringify(document));
          else {
            local.tokens.setRawLine(id, document);
            res.writeHead(204).end();
          }
          return true;
        }),
      );
      s.fault('the line gains a file at its DELETE; the document confirming it states its files malformed');

      const { before, run } = await observedPass(local, { ...local.env, TOKENS_API_URL: front.url });

      expect(local.tokens.lines.get(id)?.status).toBe('deleted');
      const receipt = await storedReceipt(local, id);
      expect(receipt.discrepancy).toBeDefined();
      expect(run.summary?.failed).toEqual([expect.objectContaining({ id, dismantled: true })]);
      await checkInvariant(s, local, { before, runs: [run], changedAtDelete: [id] });
    },
  );
});

describe('a DELETE reply that is not a 200 but states the line deleted', () => {
  it('is compared with the manifest too: a 202 whose document states a file the archive lacks is a discrepancy, as the audit finds', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track);
    s.inject(local.tokens, deleteReply(id, 202, true, 'document'));
    local.tokens.onRequest((method, path) => {
      // The line gains a file after the read right before its DELETE; the 202's document states it.
      if (method === 'DELETE' && path === `/api/tokens/${id}`) local.tokens.addFile(id, 'extra', 100);
    });
    s.fault('the line gains a file at its DELETE, answered 202 with the deleted document stating it');

    const { before, run } = await observedPass(local);
    const audit = await createHandler(local.env)({ audit: true, ids: [id] });

    expect(local.tokens.lines.get(id)?.status).toBe('deleted');
    const receipt = await storedReceipt(local, id);
    expect(receipt.discrepancy).toContain('extra (100 bytes');
    // The pass and the audit read the same reply alike: recorded as a discrepancy, not a mismatch.
    expect(audit.receiptMismatches).toEqual([]);
    expect(run.summary?.failed).toEqual([expect.objectContaining({ id, dismantled: true })]);
    await checkInvariant(s, local, { before, runs: [run], changedAtDelete: [id] });
  });
});
