import type { IncomingMessage, ServerResponse } from 'node:http';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { listKeys } from '../support/archive-inspect.ts';
import { closeAfterEach, localStack, oneFinishedLine, runCli, startFront, storedReceipt } from './harness.ts';

const track = closeAfterEach();

const REMOVED = '[session key removed]';

/** A JSON string literal with every character written as `\uXXXX`: the key is in it, its bytes are not. */
function escapedLiteral(text: string): string {
  return `"${[...text].map((char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"`;
}

/** Whether `text` holds `secret`, as it is, or in any string of the JSON it is (escapes decoded). */
function holdsSecret(text: string, secret: string): boolean {
  if (text.includes(secret)) return true;
  try {
    return JSON.stringify(JSON.parse(text)).includes(secret);
  } catch {
    return false;
  }
}

/**
 * A front for the simulator that answers the GET of `inMeta` and the DELETE of `inDeleteReply`
 * with the service's own reply plus `meta.echo`: the `Session-Key` header the request carried.
 */
function echoingFront(upstream: string, inMeta: string, inDeleteReply: string) {
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    const path = req.url ?? '';
    const echoes =
      (req.method === 'GET' && path === `/api/tokens/${inMeta}`) ||
      (req.method === 'DELETE' && path === `/api/tokens/${inDeleteReply}`);
    if (!echoes) return false;
    const key = String(req.headers['session-key']);
    void (async () => {
      const reply = await fetch(`${upstream}${path}`, {
        method: req.method ?? 'GET',
        headers: { 'session-key': key, accept: 'application/vnd.api+json' },
      });
      const document = (await reply.json()) as Record<string, unknown>;
      const body = JSON.stringify({ ...document, meta: { ...(document.meta as object), echo: key } });
      res.writeHead(reply.status, { 'content-type': 'application/vnd.api+json' }).end(body);
    })().catch(() => res.destroy());
    return true;
  };
}

describe('a service that echoes the session key', () => {
  it('stores, prints and logs the key nowhere, keeps the lines whose documents echo it, and keeps a DELETE reply that echoes it redacted', async () => {
    const local = await localStack(track, {
      lines: Array.from({ length: 4 }, () => ({ status: 'finished' as const, fileSize: 1000 })),
    });
    const [inMeta, inAttribute, inStatus, inDeleteReply] = [...local.tokens.lines.keys()] as [
      string,
      string,
      string,
      string,
    ];
    const key = local.sessionKey;
    local.tokens.setRawAttribute(inAttribute, 'note', escapedLiteral(`you sent ${key}`));
    local.tokens.setRawLine(inStatus, {
      data: { type: 'tokens', id: inStatus, attributes: { status: key } },
    });
    const front = track(
      await startFront(local.tokens.url, echoingFront(local.tokens.url, inMeta, inDeleteReply)),
    );

    const run = await runCli(track, { ...local.env, TOKENS_API_URL: front.url });

    // Nothing printed or logged holds the key.
    expect(run.stdout).not.toContain(key);
    expect(run.stderr).not.toContain(key);
    // No object of the bucket holds it, in its name or its content (escapes decoded).
    const objects = await listKeys(local.s3Client, local.bucket);
    expect(objects.length).toBeGreaterThan(0);
    for (const name of objects) {
      const object = await local.s3Client.send(new GetObjectCommand({ Bucket: local.bucket, Key: name }));
      const text = (await object.Body?.transformToString('utf8')) ?? '';
      expect(name).not.toContain(key);
      expect(holdsSecret(text, key), `object ${name}`).toBe(false);
    }
    // The lines whose documents echo the key are kept, and say why without quoting it.
    expect(run.code).toBe(1);
    expect(local.tokens.deleteCount(inMeta)).toBe(0);
    expect(local.tokens.deleteCount(inAttribute)).toBe(0);
    expect(local.tokens.deleteCount(inStatus)).toBe(0);
    expect(run.summary?.failed).toEqual(
      expect.arrayContaining(
        [inMeta, inAttribute].map((id) =>
          expect.objectContaining({ id, reason: expect.stringMatching(/echoes the session key/) }),
        ),
      ),
    );
    expect(run.summary?.skipped).toEqual([
      expect.objectContaining({ id: inStatus, reason: expect.stringContaining(REMOVED) }),
    ]);
    // The DELETE happened: its reply is kept in the receipt, with the key replaced, and says so.
    expect(local.tokens.deleteCount(inDeleteReply)).toBe(1);
    const receipt = await storedReceipt(local, inDeleteReply);
    expect(receipt.reply).toMatchObject({ status: 200, sessionKeyRedacted: true });
    expect(JSON.parse(receipt.reply?.body ?? '{}')).toMatchObject({ meta: { echo: REMOVED } });
  });

  it('logs the skip reason that quotes an echoed status with the key removed, as JSON and as text', async () => {
    const { local, id } = await oneFinishedLine(track);
    local.tokens.setRawLine(id, { data: { type: 'tokens', id, attributes: { status: local.sessionKey } } });

    for (const format of ['json', 'text']) {
      const run = await runCli(track, { ...local.env, LOG_FORMAT: format });

      expect(run.code).toBe(0);
      // JSON and the text line both quote the reason as a JSON string.
      expect(run.stderr).toContain(`status is \\"${REMOVED}\\"`);
      expect(`${run.stdout}${run.stderr}`).not.toContain(local.sessionKey);
    }
  });
});
