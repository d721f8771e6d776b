import { describe, expect, it } from 'vitest';
import type { Receipt } from '../../../lambda/archive/archive.ts';
import { archiveOver, fakeS3, type Input, LINE } from '../../support/fake-s3.ts';

describe('Archive.writeReceipt', () => {
  const receipt = (reply: boolean): Receipt => ({
    schemaVersion: 2,
    lineId: LINE,
    runId: 'r',
    at: '2026-12-02T00:00:00.000Z',
    ...(reply ? { reply: { status: 200, contentType: 'application/json', body: '{}' } } : {}),
    confirmation: reply ? 'the reply' : 'GET answered 404',
  });
  const preconditionFailed = () =>
    Promise.reject(Object.assign(new Error('PreconditionFailed'), { $metadata: { httpStatusCode: 412 } }));
  const stored = (value: unknown) => async () => ({
    ETag: '"held"',
    Body: { transformToString: async () => JSON.stringify(value) },
  });

  it('replaces a receipt holding only a confirmation with If-Match on the ETag it read', async () => {
    const puts: Input[] = [];
    const s3 = fakeS3({
      PutObject: async (input) => {
        puts.push(input);
        return puts.length === 1 ? preconditionFailed() : {};
      },
      GetObject: stored(receipt(false)),
    });

    const written = await archiveOver(s3.client).writeReceipt(receipt(true));

    expect(written).toBe('replaced-weaker');
    expect(puts.map((put) => [put.IfNoneMatch, put.IfMatch])).toEqual([
      ['*', undefined],
      [undefined, '"held"'],
    ]);
  });

  it('keeps a receipt holding a reply: a 412 on the first write never becomes an overwrite', async () => {
    const s3 = fakeS3({ PutObject: preconditionFailed, GetObject: stored(receipt(true)) });

    const written = await archiveOver(s3.client).writeReceipt(receipt(true));

    expect(written).toBe('kept-existing');
    expect(s3.of('PutObject')).toHaveLength(1);
  });

  it('writes a receipt holding only a confirmation only after a look finds none', async () => {
    const s3 = fakeS3({ PutObject: async () => ({}), GetObject: stored(receipt(true)) });

    const written = await archiveOver(s3.client).writeReceipt(receipt(false));

    expect(written).toBe('kept-existing');
    expect(s3.of('PutObject')).toHaveLength(0);
  });
});
