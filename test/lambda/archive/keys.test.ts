import { S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { Archive } from '../../../lambda/archive/archive.ts';
import { UnsafeReferenceError } from '../../../lambda/shared/errors.ts';

const LINE_ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';

/** An archive whose client is never used: the key methods make no requests. */
function archiveWithPrefix(prefix: string): Archive {
  return new Archive({
    s3: new S3Client({ region: 'us-east-1' }),
    bucket: 'tokens-archive',
    prefix,
    multipartThresholdBytes: 8 * 1024 * 1024,
    partSizeBytes: 8 * 1024 * 1024,
    readback: 'head',
  });
}

const BAD_IDS = [
  '../x',
  'not-a-uuid',
  '',
  `${LINE_ID}/..`,
  `../${LINE_ID}`,
  `${LINE_ID}\n`,
  '6f1c2a3b4d5e4f608a7b9c0d1e2f3a4b',
];

describe('Archive key layout', () => {
  describe('lineKey', () => {
    it('is {prefix}{id}/', () => {
      const archive = archiveWithPrefix('tokens/');

      const key = archive.lineKey(LINE_ID);

      expect(key).toBe(`tokens/${LINE_ID}/`);
    });

    it('is {id}/ with an empty prefix', () => {
      const archive = archiveWithPrefix('');

      const key = archive.lineKey(LINE_ID);

      expect(key).toBe(`${LINE_ID}/`);
    });
  });

  describe('fileKey', () => {
    it('is {prefix}{id}/{name}', () => {
      const archive = archiveWithPrefix('archive/tokens/');

      const key = archive.fileKey(LINE_ID, 'data');

      expect(key).toBe(`archive/tokens/${LINE_ID}/data`);
    });

    it.each(['score', 'analysis', 'delta', 'a', '0', 'a_b-c', `a${'b'.repeat(31)}`])(
      'accepts the name %s',
      (name) => {
        const archive = archiveWithPrefix('tokens/');

        const key = archive.fileKey(LINE_ID, name);

        expect(key).toBe(`tokens/${LINE_ID}/${name}`);
      },
    );

    it.each([
      '../x',
      '..',
      'a/b',
      '.hidden',
      'manifest.json',
      'deleted.json',
      'Data',
      '',
      '-data',
      `a${'b'.repeat(32)}`,
      'data\n',
      'dаta',
    ])('refuses the name %j', (name) => {
      const archive = archiveWithPrefix('tokens/');

      const attempt = () => archive.fileKey(LINE_ID, name);

      expect(attempt).toThrow(UnsafeReferenceError);
    });

    it.each(BAD_IDS)('refuses the line id %j', (lineId) => {
      const archive = archiveWithPrefix('tokens/');

      const attempt = () => archive.fileKey(lineId, 'data');

      expect(attempt).toThrow(UnsafeReferenceError);
    });
  });

  describe.each([
    ['manifestKey', 'manifest.json'],
    ['receiptKey', 'deleted.json'],
  ] as const)('%s', (method, file) => {
    it(`is {prefix}{id}/${file}`, () => {
      const archive = archiveWithPrefix('tokens/');

      const key = archive[method](LINE_ID);

      expect(key).toBe(`tokens/${LINE_ID}/${file}`);
    });

    it.each(BAD_IDS)('refuses the line id %j', (lineId) => {
      const archive = archiveWithPrefix('tokens/');

      const attempt = () => archive[method](lineId);

      expect(attempt).toThrow(UnsafeReferenceError);
    });
  });

  it('never lets a file key collide with the manifest or the receipt', () => {
    const archive = archiveWithPrefix('tokens/');
    const reserved = [archive.manifestKey(LINE_ID), archive.receiptKey(LINE_ID)];

    const collisions = ['manifest', 'deleted', 'data'].map((name) => archive.fileKey(LINE_ID, name));

    expect(collisions.filter((key) => reserved.includes(key))).toEqual([]);
  });

  it('exposes its bucket', () => {
    const archive = archiveWithPrefix('tokens/');

    const bucket = archive.bucket;

    expect(bucket).toBe('tokens-archive');
  });
});
