import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { pipeInto, readWhole } from '../../../lambda/archive/body-pipe.ts';
import { IntegrityError } from '../../../lambda/shared/errors.ts';
import { Verifier } from '../../../lambda/shared/verify.ts';

const LINE = '6f1f0d2e-8b9a-4c3d-9e8f-0a1b2c3d4e5f';
const BYTES = Buffer.from('the bytes of a small file');
const verifierOf = (bytes: Buffer, size = bytes.length) =>
  new Verifier({
    lineId: LINE,
    file: 'data',
    size,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  });
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
/**
 * A body piped into a verifier of BYTES (`piping`: the pipe's promise); the verifier's output is
 * read, as an upload reads it, unless `read` is false.
 */
function pipedBody({ read = true } = {}) {
  const body = new PassThrough();
  const verifier = verifierOf(BYTES);
  if (read) verifier.resume();
  return { body, verifier, piping: pipeInto(body, verifier) };
}

describe('pipeInto', () => {
  it("rejects with the body's error and destroys the verifier with it", async () => {
    const { body, verifier, piping } = pipedBody();

    body.write(BYTES.subarray(0, 4));
    await tick();
    body.destroy(new Error('body broke off after 4 bytes'));

    await expect(piping).rejects.toThrow('body broke off after 4 bytes');
    expect(verifier.destroyed).toBe(true);
  });

  it('rejects a body that closes before its end, as a premature close', async () => {
    const { body, verifier, piping } = pipedBody();

    body.destroy();

    await expect(piping).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
    expect(verifier.destroyed).toBe(true);
  });

  it("rejects with the verifier's error (the upload failed and destroyed it) and stops the body", async () => {
    const { body, verifier, piping } = pipedBody({ read: false });

    verifier.destroy(new Error('PutObject failed'));

    await expect(piping).rejects.toThrow('PutObject failed');
    expect(body.destroyed).toBe(true);
  });

  it('rejects bytes that are not the stated ones with the IntegrityError, and stops the body', async () => {
    const { body, piping } = pipedBody();

    body.end(Buffer.alloc(BYTES.length));

    await expect(piping).rejects.toThrow(IntegrityError);
    expect(body.destroyed).toBe(true);
  });
});

describe('readWhole', () => {
  it('gives the bytes once the verifier has proven them, however they were cut', async () => {
    const body = Readable.from([BYTES.subarray(0, 3), BYTES.subarray(3, 10), BYTES.subarray(10)]);

    const read = await readWhole(body, verifierOf(BYTES), BYTES.length);

    expect(read.equals(BYTES)).toBe(true);
  });

  it('gives nothing of a body longer than stated: the verifier stops it', async () => {
    const longer = Buffer.concat([BYTES, Buffer.from('!')]);

    const reading = readWhole(Readable.from([longer]), verifierOf(BYTES), BYTES.length);

    await expect(reading).rejects.toThrow(/more bytes than the stated/);
  });

  it('gives an empty buffer for an empty file', async () => {
    const read = await readWhole(Readable.from([]), verifierOf(Buffer.alloc(0)), 0);

    expect(read).toHaveLength(0);
  });
});
