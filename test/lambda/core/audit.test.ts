import { describe, expect, it } from 'vitest';
import type { Manifest, ManifestFile } from '../../../lambda/archive/archive.ts';
import { FakeArchive, sha256 } from '../../support/fakes.ts';
import { archiveLine, audit, manifestEntry as entry, RUN_ID } from './archived-line.ts';

const ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const OTHER = '9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d';
const DATA = 'the tokens of the line\n';
const SCORE = '42\n';

describe('auditArchive', () => {
  it('finds every file of every line intact when each hashes to its manifest', async () => {
    const archive = new FakeArchive();
    archiveLine(archive, ID, { data: DATA, score: SCORE });
    archiveLine(archive, OTHER, { data: DATA });

    const report = await audit(archive);

    expect(report).toMatchObject({
      lines: 2,
      files: 3,
      intactFiles: 3,
      bytes: 2 * DATA.length + SCORE.length,
      missing: [],
      damaged: [],
      withoutManifest: [],
    });
  });

  it('reports a file the manifest names and the bucket does not hold as missing', async () => {
    const archive = new FakeArchive();
    archiveLine(archive, ID, { data: DATA, score: SCORE });
    archive.objects.delete(archive.fileKey(ID, 'score'));

    const report = await audit(archive);

    expect(report.missing).toEqual([
      { id: ID, file: 'score', key: archive.fileKey(ID, 'score'), problem: 'no such object' },
    ]);
    expect(report).toMatchObject({ files: 2, intactFiles: 1, damaged: [] });
  });

  it('reports a file whose bytes do not hash to the manifest as damaged, with both hashes', async () => {
    const archive = new FakeArchive();
    archiveLine(archive, ID, { data: DATA });
    archive.put(archive.fileKey(ID, 'data'), 'bit rot\n');

    const report = await audit(archive);

    expect(report.damaged).toEqual([
      {
        id: ID,
        file: 'data',
        key: archive.fileKey(ID, 'data'),
        problem: `holds 8 bytes hashing to ${sha256('bit rot\n')}; manifest says ${DATA.length} bytes, ${sha256(DATA)}`,
      },
    ]);
    expect(report.intactFiles).toBe(0);
  });

  it('reports a manifest naming a key outside its line as an unsafe entry, and goes on with the other files', async () => {
    const archive = new FakeArchive();
    archiveLine(archive, OTHER, { data: DATA });
    const foreign = { ...entry(archive, OTHER, 'data', DATA), name: 'data' };
    archiveLine(archive, ID, { score: SCORE });
    const manifest = archive.manifest(ID);
    archive.putJson(archive.manifestKey(ID), { ...manifest, files: [...(manifest?.files ?? []), foreign] });

    const report = await audit(archive, [ID]);

    expect(report.unsafeEntries).toEqual([
      {
        id: ID,
        file: 'data',
        key: archive.fileKey(OTHER, 'data'),
        problem: `files[1]: key ${JSON.stringify(archive.fileKey(OTHER, 'data'))} is not this file's key in the line's folder`,
      },
    ]);
    expect(report).toMatchObject({ files: 2, intactFiles: 1, missing: [], damaged: [] });
  });

  it.for([
    [
      'a name that climbs out of the folder',
      { name: '../../etc/x' },
      /name "\.\.\/\.\.\/etc\/x" is not a safe file name/,
    ],
    ['a name with a slash', { name: 'a/b' }, /name "a\/b" is not a safe file name/],
    ['an absolute name', { name: '/etc/x' }, /name "\/etc\/x" is not a safe file name/],
    [
      'a hash with a slash',
      { sha256: '/../../victim' },
      /sha256 "\/\.\.\/\.\.\/victim" is not 64 lower-case hex digits/,
    ],
    ['a key outside the line', { key: '/etc/passwd' }, /key "\/etc\/passwd" is not this file's key/],
    ['a size that is not a byte count', { size: -1 }, /size -1 is not a byte count/],
  ] as const)(
    'reports a manifest entry with %s as unsafe, and audits the rest',
    async ([, change, problem]) => {
      const archive = new FakeArchive();
      const manifest = archiveLine(archive, ID, { data: DATA, score: SCORE });
      const [data, score] = manifest.files as [ManifestFile, ManifestFile];
      archive.putJson(archive.manifestKey(ID), { ...manifest, files: [data, { ...score, ...change }] });

      const report = await audit(archive, [ID]);

      expect(report.unsafeEntries).toEqual([
        expect.objectContaining({ id: ID, problem: expect.stringMatching(/^files\[1\]: /) }),
      ]);
      expect(report.unsafeEntries[0]?.problem).toMatch(problem);
      expect(report).toMatchObject({ files: 2, intactFiles: 1, missing: [], damaged: [] });
    },
  );

  it('reports entries that are not entries at all, and a superseded list that is not a list, instead of failing', async () => {
    const archive = new FakeArchive();
    const manifest = archiveLine(archive, ID, { data: DATA });
    archive.putJson(archive.manifestKey(ID), { ...manifest, files: [...manifest.files, null, 'score'] });
    const other = archiveLine(archive, OTHER, { data: DATA });
    archive.putJson(archive.manifestKey(OTHER), { ...other, superseded: { name: 'data' } });

    const report = await audit(archive);

    expect(report.unsafeEntries.map((finding) => [finding.id, finding.problem])).toEqual([
      [ID, 'files[1]: null is not a manifest entry'],
      [ID, 'files[2]: "score" is not a manifest entry'],
      [OTHER, 'superseded: {"name":"data"} is not a list of entries'],
    ]);
    expect(report).toMatchObject({ lines: 2, intactFiles: 2 });
  });

  it('lists the line folders that hold objects but no readable manifest', async () => {
    const archive = new FakeArchive();
    archiveLine(archive, ID, { data: DATA });
    archive.put(archive.fileKey(OTHER, 'data'), DATA);

    const report = await audit(archive);

    expect(report).toMatchObject({ lines: 2, files: 1, intactFiles: 1, withoutManifest: [OTHER] });
  });

  describe('the line document the manifest names (line.sha256-{hash}.json)', () => {
    const DOCUMENT = '{"data":{"id":"6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b","type":"tokens"}}';

    /** A line archived whole with its document, as a pass archives it. */
    function archiveWithDocument(archive: FakeArchive) {
      const key = archive.lineDocumentKey(ID, sha256(DOCUMENT));
      archive.put(key, DOCUMENT);
      archiveLine(
        archive,
        ID,
        { data: DATA },
        { lineDocument: { key, size: DOCUMENT.length, sha256: sha256(DOCUMENT) } },
      );
      return key;
    }

    it('finds nothing when the document hashes to the manifest', async () => {
      const archive = new FakeArchive();
      archiveWithDocument(archive);

      const report = await audit(archive);

      expect(report).toMatchObject({ files: 1, intactFiles: 1, missing: [], damaged: [], unsafeEntries: [] });
    });

    it('asks no document object of a version 1 manifest, which embedded the document (earlier releases)', async () => {
      const archive = new FakeArchive();
      archiveLine(archive, ID, { data: DATA }, { schemaVersion: 1, line: JSON.parse(DOCUMENT) as unknown });

      const report = await audit(archive);

      expect(report).toMatchObject({ files: 1, intactFiles: 1, missing: [], damaged: [], unsafeEntries: [] });
    });

    it('reports a document replaced by other bytes of the same size as damaged', async () => {
      const archive = new FakeArchive();
      const key = archiveWithDocument(archive);
      archive.put(key, DOCUMENT.replace('tokens', 'nekots'));

      const report = await audit(archive);

      expect(report.damaged).toEqual([
        {
          id: ID,
          file: 'line document',
          key,
          problem: expect.stringMatching(/^holds \d+ bytes hashing to [0-9a-f]{64}; manifest says/),
        },
      ]);
    });

    it('reports a document the bucket does not hold as missing', async () => {
      const archive = new FakeArchive();
      const key = archiveWithDocument(archive);
      archive.objects.delete(key);

      const report = await audit(archive);

      expect(report.missing).toEqual([{ id: ID, file: 'line document', key, problem: 'no such object' }]);
    });

    it("refuses a document entry whose key is not the line's own document key", async () => {
      const archive = new FakeArchive();
      archiveWithDocument(archive);
      const manifest = archive.manifest(ID) as Manifest;
      const foreign = archive.fileKey(OTHER, 'data');
      archive.put(foreign, DOCUMENT);
      archive.putJson(archive.manifestKey(ID), {
        ...manifest,
        lineDocument: { ...manifest.lineDocument, key: foreign },
      });

      const report = await audit(archive, [ID]);

      expect(report.unsafeEntries).toEqual([
        expect.objectContaining({
          id: ID,
          file: 'line document',
          key: foreign,
          problem: expect.stringMatching(/^lineDocument: key .* is not this line's document key/),
        }),
      ]);
      expect(report).toMatchObject({ missing: [], damaged: [] });
    });
  });

  it('checks the superseded versions kept beside the current ones too', async () => {
    const archive = new FakeArchive();
    const older = 'the tokens as first archived\n';
    const versionKey = archive.versionKey(ID, 'data', sha256(DATA));
    archive.put(versionKey, DATA);
    archive.put(archive.fileKey(ID, 'data'), 'overwritten\n');
    archiveLine(
      archive,
      ID,
      {},
      {
        files: [{ ...entry(archive, ID, 'data', DATA), key: versionKey }],
        superseded: [
          {
            ...entry(archive, ID, 'data', older),
            supersededBy: RUN_ID,
            supersededAt: '2026-05-01T10:00:00.000Z',
          },
        ],
      },
    );

    const report = await audit(archive);

    expect(report).toMatchObject({ files: 2, intactFiles: 1, missing: [] });
    expect(report.damaged).toEqual([
      expect.objectContaining({ id: ID, file: 'data', key: archive.fileKey(ID, 'data') }),
    ]);
  });
});
