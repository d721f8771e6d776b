import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Receipt } from '../../../lambda/archive/archive.ts';
import { createLineWorker } from '../../../lambda/core/line/worker.ts';
import type { Deps } from '../../../lambda/core/types.ts';
import { asManifest } from '../../../lambda/shared/records.ts';
import { forgetSecrets, REDACTED, redactedJson, registerSecret } from '../../../lambda/shared/redact.ts';
import type { JsonReply, WireDeleteReply } from '../../../lambda/tokens/api.ts';
import { deleteReply, fakeDeps, silentLogger, testConfig } from '../../support/fakes.ts';

const ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const RUN_ID = '0b7e4c1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b';
const KEY = 'SK-echoed-ZEBRA-41d7';

function processLine(deps: Deps) {
  const worker = createLineWorker(deps, testConfig(), {
    runId: RUN_ID,
    request: { dryRun: false, archiveOnly: false },
    logger: silentLogger(),
  });
  return worker.processLine(ID, silentLogger());
}

/** `text` with every character as a `\uXXXX` escape. */
function escaped(text: string): string {
  return [...text].map((char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
}

/** A reply whose JSON text is `text` (the value parsed from it). */
function replyOf(text: string): JsonReply {
  return { text, bytes: Buffer.from(text), value: JSON.parse(text) as unknown };
}

/** The line's document as the fake serves it, with `echo` spliced into its `meta` as raw JSON text. */
function withEcho(reply: JsonReply, echo: string): JsonReply {
  return replyOf(`{"meta":{"echo":${echo}},${reply.text.slice(1)}`);
}

beforeEach(() => registerSecret(KEY));
afterEach(() => forgetSecrets());

describe('a line document that echoes the session key', () => {
  it.for([
    ['as it is', JSON.stringify(`you sent ${KEY}`)],
    ['written with escapes', `"${escaped(KEY)}"`],
    ['as a property name', `{"${escaped(KEY)}":true}`],
  ] as const)(
    'is never stored, and the line fails before any upload and is kept (no DELETE): the key %s',
    async ([, echo]) => {
      const { deps, tokens, log, archive } = fakeDeps();
      tokens.line(ID, {}).rewrite(ID, (reply) => withEcho(reply, echo));

      const result = await processLine(deps);

      expect(result).toMatchObject({
        outcome: 'failed',
        errorName: 'SessionKeyEchoError',
        reason: `line ${ID}: the line's document echoes the session key; not stored, and the line is kept (no DELETE)`,
      });
      expect(JSON.stringify(result)).not.toContain(KEY);
      expect(log).not.toContain('writeManifest');
      expect(log).not.toContain('deleteLine');
      // Refused when read: none of its files was uploaded, so no archive is left without a manifest.
      expect([...archive.objects.keys()].filter((key) => key.includes(ID))).toEqual([]);
    },
  );
});

describe('a line document that holds text the archive redacts as the session key', () => {
  it('is never dismantled on a manifest the archive would not keep as written: the line is kept (no DELETE)', async () => {
    // A key that starts with a control character: the document writes, as text (an escaped
    // backslash), the form in which a record would write the key, not the key itself.
    const odd = '\tSK-odd-YAK-93';
    registerSecret(odd);
    const { deps, tokens, archive, log } = fakeDeps();
    tokens.line(ID, {}).rewrite(ID, (reply) => withEcho(reply, '"\\\\u0009SK-odd-YAK-93"'));

    const result = await processLine(deps);

    // The archive cuts the key's forms out of every record it writes (ObjectStore#jsonObject):
    // a manifest whose document was cut no longer holds the bytes it records, and reads as none.
    const stored = archive.json(archive.manifestKey(ID));
    const kept = stored === undefined ? undefined : asManifest(JSON.parse(redactedJson(stored)), ID);
    if (result.outcome === 'dismantled') expect(kept).toBeDefined();
    expect(result).toMatchObject({ outcome: 'failed', errorName: 'SessionKeyEchoError' });
    expect(log).not.toContain('deleteLine');
  });
  it("is never dismantled when the key spans the manifest's own text and the document: the manifest is checked as it is written", async () => {
    // A key (quotes and all, 18 characters or more, as the secret may hold) that the pretty-printed
    // manifest writes across its `"body": "` and the document's first characters: the archive cuts
    // it out of the stored text (ObjectStore#jsonObject), and the manifest would be no JSON at all.
    const spanning = '"body": "{\\"meta\\":{\\"echo\\"';
    registerSecret(spanning);
    const { deps, tokens, archive, log } = fakeDeps();
    tokens.line(ID, {}).rewrite(ID, (reply) => withEcho(reply, '"x"'));

    const result = await processLine(deps);

    const stored = archive.json(archive.manifestKey(ID));
    if (stored !== undefined) expect(() => JSON.parse(redactedJson(stored, 2))).not.toThrow();
    expect(result).toMatchObject({ outcome: 'failed', errorName: 'SessionKeyEchoError' });
    expect(log).not.toContain('deleteLine');
    expect([...archive.objects.keys()].filter((key) => key.includes(ID))).toEqual([]);
  });
});

describe('a DELETE reply that echoes the session key', () => {
  it('is kept in the receipt with the key replaced by a marker, and the receipt says so', async () => {
    const { deps, tokens, archive } = fakeDeps();
    tokens.line(ID, {});
    const taken = deleteReply(ID);
    const text = `{"meta":{"echo":"${KEY}","escaped":"a${escaped(KEY)}"},${taken.text.slice(1)}`;
    tokens.onDelete(ID, { ...taken, text, bytes: Buffer.from(text), document: JSON.parse(text) });

    const result = await processLine(deps);

    expect(result).toMatchObject({ outcome: 'dismantled' });
    const receipt = archive.json(archive.receiptKey(ID)) as Receipt;
    expect(receipt.reply).toMatchObject({ status: 200, sessionKeyRedacted: true });
    expect(receipt.reply?.body).not.toContain(KEY);
    expect(JSON.parse(receipt.reply?.body ?? '')).toMatchObject({
      meta: { echo: REDACTED, escaped: `a${REDACTED}` },
      data: { id: ID, attributes: { status: 'deleted' } },
    });
  });

  it('is kept in the pending marker with the key replaced in its bytes when it is not UTF-8 text', async () => {
    const { deps, tokens, archive } = fakeDeps();
    tokens.line(ID, {});
    const bytes = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`key=${KEY};`)]);
    const accepted: WireDeleteReply = {
      status: 202,
      contentType: `text/x-${KEY}`,
      text: '',
      bytes,
      document: undefined,
    };
    tokens.onDelete(ID, accepted);

    const result = await processLine(deps);

    expect(result).toMatchObject({ outcome: 'pending' });
    const marker = archive.json(archive.pendingMarkerKey(ID)) as { reply: NonNullable<Receipt['reply']> };
    expect(marker.reply).toMatchObject({
      status: 202,
      contentType: `text/x-${REDACTED}`,
      sessionKeyRedacted: true,
    });
    expect(Buffer.from(marker.reply.bodyBase64 ?? '', 'base64')).toEqual(
      Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`key=${REDACTED};`)]),
    );
  });

  it('is kept as received, with no flag, when it holds no key', async () => {
    const { deps, tokens, archive } = fakeDeps();
    tokens.line(ID, {});

    await processLine(deps);

    const receipt = archive.json(archive.receiptKey(ID)) as Receipt;
    expect(receipt.reply).not.toHaveProperty('sessionKeyRedacted');
    expect(receipt.reply?.body).toBe(deleteReply(ID).text);
  });
});
