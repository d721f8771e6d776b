import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, expect } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import type { LocalStack } from '../local/stack.ts';
import { listKeys, objectJson } from '../support/archive-inspect.ts';
import { closeAfterEach, forwardThen, oneFinishedLine, startFront } from './harness.ts';
import { checkInvariant, observedPass, settle, snapshot } from './invariant.ts';
import { it } from './ledger.ts';

const track = closeAfterEach();

/**
 * Sends the request on to the simulator and answers with its reply, the body rewritten by
 * `rewrite`: a service that spells its documents differently (upper-case ids, odd values).
 */
function relay(
  target: string,
  req: IncomingMessage,
  res: ServerResponse,
  rewrite: (text: string) => string,
  seen?: (text: string) => void,
): true {
  return forwardThen(target, req, res, (answer, reply) => {
    const text = rewrite(reply.text);
    seen?.(text);
    answer.writeHead(reply.status, { 'content-type': reply.contentType ?? 'application/json' }).end(text);
  });
}

describe('documents stored verbatim', () => {
  it('archives a document nested 100,000 deep, with a number beyond double precision and a duplicate key, byte for byte, and keeps the DELETE reply as received', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track, { fileSize: 2000 });
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const big = '123456789012345678901234567890';
    local.tokens.setRawAttribute(id, 'deep', deep);
    local.tokens.setRawAttribute(id, 'big', big);
    // Spliced before the real one: the document names `alphabet` twice.
    local.tokens.setRawAttribute(id, 'alphabet', '"SPLICED-FIRST"');
    s.fault('get: an attribute nested 100,000 levels deep');
    s.fault('get: a number beyond double precision');
    s.fault('get: a duplicate key');
    let deleteReplyText: string | undefined;
    const front = track(
      await startFront(local.tokens.url, (req, res) =>
        req.method === 'DELETE' && req.url === `/api/tokens/${id}`
          ? relay(
              local.tokens.url,
              req,
              res,
              (text) => text.replace('"attributes":{', `"attributes":{"deep":${deep},"big":${big},`),
              (text) => {
                deleteReplyText = text;
              },
            )
          : false,
      ),
    );
    s.fault('delete: the reply nested 100,000 deep with a number beyond double precision');
    const document = await (
      await fetch(`${local.tokens.url}/api/tokens/${id}`, { headers: { 'session-key': local.sessionKey } })
    ).text();
    expect(document).toContain('"alphabet":"SPLICED-FIRST"');
    expect(document).toContain('"alphabet":"DICE"');

    const { before, run } = await observedPass(local, { ...local.env, TOKENS_API_URL: front.url });

    expect(run.summary).toMatchObject({ archived: 1, dismantled: 1, failed: [] });
    const manifest = (await objectJson(local.s3Client, local.bucket, `tokens/${id}/manifest.json`)) as {
      lineDocument?: { body?: string };
      line?: unknown;
    };
    const stored = manifest.lineDocument?.body ?? '';
    expect(stored).toContain(deep);
    expect(stored).toContain(`"big":${big}`);
    expect(stored === document).toBe(true);
    expect(manifest.line).toBeUndefined();
    expect(manifest.lineDocument).toEqual({
      body: document,
      size: Buffer.byteLength(document),
      sha256: createHash('sha256').update(document).digest('hex'),
    });
    const receipt = (await objectJson(local.s3Client, local.bucket, `tokens/${id}/deleted.json`)) as {
      reply?: { status: number; body: string };
    };
    expect(deleteReplyText).toContain(big);
    expect(receipt.reply?.status).toBe(200);
    expect(receipt.reply?.body === deleteReplyText).toBe(true);
    await checkInvariant(s, local, { before, runs: [run] });
  });
});

describe('UUIDs are case-insensitive', () => {
  /** No key of the bucket spells anything in upper case: one prefix per line, the lower-case id. */
  async function lowerCaseKeysOnly(local: LocalStack, id: string): Promise<void> {
    const keys = await listKeys(local.s3Client, local.bucket);
    expect(keys.filter((key) => key !== key.toLowerCase())).toEqual([]);
    expect(keys.filter((key) => key.startsWith('tokens/') && !key.startsWith('tokens/_runs/'))).toEqual([
      `tokens/${id}/data`,
      `tokens/${id}/deleted.json`,
      `tokens/${id}/manifest.json`,
    ]);
  }

  it('archives under the lower-case id and dismantles a line named in upper case', async ({ s }) => {
    const { local, id } = await oneFinishedLine(track, { fileSize: 2000 });
    s.fault('payload: ids in upper case');
    const before = snapshot(local.tokens);

    const run = await settle(createHandler(local.env)({ ids: [id.toUpperCase()] }));

    expect(run.summary).toMatchObject({ listed: 1, archived: 1, dismantled: 1, failed: [], skipped: [] });
    expect(local.tokens.lines.get(id)?.status).toBe('deleted');
    await lowerCaseKeysOnly(local, id);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('keeps one lower-case prefix when the service echoes the id as requested', async ({ s }) => {
    const { local, id } = await oneFinishedLine(track, { fileSize: 2000 });
    local.tokens.setEchoRequestedId(true);
    s.fault('get: the id echoed as requested');
    s.fault('payload: ids in upper case');
    const before = snapshot(local.tokens);

    const run = await settle(createHandler(local.env)({ ids: [id.toUpperCase()] }));

    expect(run.summary).toMatchObject({ archived: 1, dismantled: 1, failed: [], skipped: [] });
    await lowerCaseKeysOnly(local, id);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('processes a line named twice in different cases once', async ({ s }) => {
    const { local, id } = await oneFinishedLine(track, { fileSize: 2000 });
    s.fault('payload: the same id twice, lower and upper case');
    const before = snapshot(local.tokens);

    const run = await settle(createHandler(local.env)({ ids: [id, id.toUpperCase()] }));

    expect(run.summary).toMatchObject({ listed: 1, archived: 1, dismantled: 1, failed: [], skipped: [] });
    expect(local.tokens.deleteCount(id)).toBe(1);
    expect(local.tokens.requests.filter((r) => r.path === `/api/tokens/${id}/data`)).toHaveLength(1);
    await lowerCaseKeysOnly(local, id);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('keeps one lower-case prefix when the service spells every id in upper case, in the list, the links and the replies', async ({
    s,
  }) => {
    const { local, id } = await oneFinishedLine(track, { fileSize: 2000 });
    const upper = (text: string) => text.replaceAll(id, id.toUpperCase());
    const front = track(
      await startFront(local.tokens.url, (req, res) =>
        /^\/api\/tokens(\/[^/?]+)?(\?|$)/.test(req.url ?? '')
          ? relay(local.tokens.url, req, res, upper)
          : false,
      ),
    );
    s.fault('list, get, delete: every id in upper case');

    const { before, run } = await observedPass(local, { ...local.env, TOKENS_API_URL: front.url });

    expect(run.summary).toMatchObject({ listed: 1, archived: 1, dismantled: 1, failed: [], skipped: [] });
    expect(local.tokens.requests.some((r) => r.path === `/api/tokens/${id.toUpperCase()}/data`)).toBe(true);
    await lowerCaseKeysOnly(local, id);
    await checkInvariant(s, local, { before, runs: [run] });
  });
});
