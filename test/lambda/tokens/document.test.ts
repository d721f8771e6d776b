import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DocumentError } from '../../../lambda/shared/errors.ts';
import { isLineId } from '../../../lambda/shared/ids.ts';
import {
  type ListPage,
  parseDeleteReply,
  parseLineDocument,
  parseListPage,
  type TokensLine,
} from '../../../lambda/tokens/document.ts';
import { thrownBy } from '../../support/thrown.ts';

const LINE_ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const OTHER_ID = 'd4c3b2a1-0f9e-4d8c-b7a6-5f4e3d2c1b0a';
const PAYMENT_ID = '11111111-2222-4333-8444-555555555555';
const DATA_SHA256 = 'f6b7af3fc7ce1a1dd7d0a327e1c87d7a51533cd1da2ec973a6283deadd695697';
const EMPTY_SHA256 = createHash('sha256').digest('hex');
const AVAILABLE_70_DIGITS = '7888609052210118054117285652827862296732064351090230047702789306639625';
const METRICS_HASHES = {
  score: '6ebb1cd28e70284f6b3ef730740d1cf88b87210f1d321c4a172ab4e44872dc70',
  analysis: 'f5123fcff04d06463fbed59b69437b0b063daefe3ab5c23acbd4e6be8adb2ed2',
  data: '1603dbf327d04b23234404e8d199d3bf5aa42174f91ae4c60cc3f42043a8fca4',
  delta: 'c86a3aedff531f0fc17f63034a5414f2b5e0fd3fd75d43643700e9c03660b55d',
};
const METRICS_SIZES = { score: 37769, analysis: 2067, data: 124415, delta: 40658 };

const relationships = {
  payment: { data: { id: PAYMENT_ID, ident: 'pi_000000000000000000000000', type: 'transaction' } },
};

/** A single-line document as the tests arrange it: loose enough to break on purpose. */
interface LineDocument {
  meta?: Record<string, unknown>;
  links: Record<string, unknown>;
  data: {
    attributes: Record<string, unknown> & {
      filehashes?: Record<string, unknown>;
      filesizes?: Record<string, unknown>;
    };
    id: unknown;
    type: unknown;
    relationships: unknown;
  };
}

/** `GET /api/tokens/{id}` of a finished line, shaped like seeds/000_de82e9689874f746.txt. */
function finishedNoneDocument(id = LINE_ID): LineDocument {
  return {
    meta: { seed: PAYMENT_ID },
    links: { self: '/api/tokens', data: `/api/tokens/${id}/data`, info: `/api/tokens/${id}` },
    data: {
      attributes: {
        analysis: 'none',
        rate: 3651,
        reachable: '0',
        alphabet: 'LOWER_LATIN',
        available: '0',
        partial: false,
        checksum: '000000000000000000000',
        status: 'finished',
        filesizes: { data: 35151 },
        digits: '3',
        filehashes: { data: DATA_SHA256 },
        size: '8788',
        timestamps: {
          ended: '2024-03-19T12:53:15.357Z',
          started: '2024-03-19T12:53:08.131Z',
          requested: '2024-03-19T12:53:07.954Z',
          finished: '2024-03-19T12:53:15.358Z',
        },
      },
      id,
      type: 'tokens',
      relationships,
    },
  };
}

/** The document of a line that is not finished yet (no data link), with its `attributes`. */
function unfinishedDocument(id: string, attributes: Record<string, unknown>) {
  return {
    meta: { seed: PAYMENT_ID },
    links: { self: '/api/tokens', info: `/api/tokens/${id}` },
    data: { attributes, id, type: 'tokens', relationships },
  };
}

/** `GET /api/tokens/{id}/requested`, shaped like seeds/001_cee82b698280fce8.txt. */
function requestedDocument(id = LINE_ID) {
  return unfinishedDocument(id, {
    digits: '100',
    status: 'requested',
    analysis: 'none',
    size: '1000',
    reachable: '10485',
    alphabet: 'UPPER_VOWELS',
    available: AVAILABLE_70_DIGITS,
    timestamps: { requested: '2024-03-19T12:57:33.263Z' },
  });
}

/** `GET /api/tokens/{id}/started`, shaped like seeds/002_36b2411a89ba98ac.txt. */
function startedDocument(id = LINE_ID) {
  return unfinishedDocument(id, {
    timestamps: { started: '2024-03-19T12:57:21.181Z', requested: '2024-03-19T12:57:19.785Z' },
    status: 'started',
    analysis: 'none',
    progress: 0,
    size: '1000',
    digits: '100',
    reachable: '10485',
    alphabet: 'UPPER_VOWELS',
    available: AVAILABLE_70_DIGITS,
  });
}

/** `timestamps.finished` of the seed list's items. */
const FINISHED_AT = '2024-03-19T12:52:54.708Z';

/** One item of `GET /api/tokens`, shaped like seeds/003_6492d20457d2755e.txt (no links, no hashes). */
function listItem(id: string, overrides: Record<string, unknown> = {}) {
  return {
    attributes: {
      analysis: 'none',
      rate: 9086,
      reachable: '0',
      alphabet: 'DICE',
      available: '0',
      partial: false,
      checksum: '0000000000000000000000000000000000000000000000000000000000000000000000',
      status: 'finished',
      filesizes: { data: 124415 },
      digits: '5',
      size: '7776',
      timestamps: {
        ended: '2024-03-19T12:52:54.707Z',
        started: '2024-03-19T12:52:50.425Z',
        requested: '2024-03-19T12:52:50.388Z',
        finished: '2024-03-19T12:52:54.708Z',
      },
      ...overrides,
    },
    id,
    type: 'tokens',
    relationships,
  };
}

/** A line with `analysis: metrics`, shaped like seeds/004_cfcda0bbe1c0f3a8.txt, in the given status. */
function metricsDocument(status: string, id = LINE_ID): LineDocument {
  return {
    links: { self: `/api/tokens/${id}` },
    data: {
      attributes: {
        analysis: 'metrics',
        rate: 8948,
        reachable: '0',
        alphabet: 'DICE',
        available: '0',
        partial: false,
        checksum: '0000000000000000000000000000000000000000000000000000000000000000000000',
        status,
        filesizes: { ...METRICS_SIZES },
        digits: '5',
        filehashes: { ...METRICS_HASHES },
        size: '7776',
        timestamps: {
          ended: '2024-03-19T12:57:45.511Z',
          analyzed: '2024-03-19T12:57:48.261Z',
          deleted: '2024-03-19T12:57:48.791Z',
          started: '2024-03-19T12:57:41.163Z',
          requested: '2024-03-19T12:57:41.133Z',
          finished: '2024-03-19T12:57:48.270Z',
        },
      },
      id,
      type: 'tokens',
      relationships,
    },
  };
}

/** A finished `analysis: none` line whose `filehashes` and `filesizes` are the given ones. */
function finishedWithFiles(hashes: Record<string, unknown>, sizes: Record<string, unknown>) {
  const document = finishedNoneDocument();
  document.data.attributes.filehashes = hashes;
  document.data.attributes.filesizes = sizes;
  return document;
}

/** Runs `parse` and returns the DocumentError it threw, failing the test otherwise. */
const documentErrorOf = (parse: () => unknown): DocumentError => thrownBy(DocumentError, parse);

describe('isLineId', () => {
  it.each([
    [LINE_ID, true],
    [LINE_ID.toUpperCase(), true],
    ['6f1c2a3b4d5e4f608a7b9c0d1e2f3a4b', false],
    [`${LINE_ID}\n`, false],
    [`../${LINE_ID}`, false],
    ['XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX', false],
    [42, false],
    [undefined, false],
  ])('judges %j as a line id: %s', (value, expected) => {
    const result = isLineId(value);

    expect(result).toBe(expected);
  });
});

describe('parseLineDocument', () => {
  describe('seed documents', () => {
    it('reads a finished line with analysis none, linking its data file', () => {
      const document = finishedNoneDocument();

      const line = parseLineDocument(document, LINE_ID);

      expect(line).toEqual({
        id: LINE_ID,
        status: 'finished',
        analysis: 'none',
        alphabet: 'LOWER_LATIN',
        digits: '3',
        files: [{ name: 'data', size: 35151, sha256: DATA_SHA256, link: `/api/tokens/${LINE_ID}/data` }],
        finishedAt: '2024-03-19T12:53:15.358Z',
        document,
      });
      expect(line.document).toBe(document);
    });

    it('reads a requested line with no files, keeping the 70-digit available string as it is', () => {
      const document = requestedDocument();

      const line = parseLineDocument(document, LINE_ID);

      expect(line.status).toBe('requested');
      expect(line.files).toEqual([]);
      expect((line.document as ReturnType<typeof requestedDocument>).data.attributes.available).toBe(
        AVAILABLE_70_DIGITS,
      );
    });

    it('reads a started line with no files', () => {
      const document = startedDocument();

      const line = parseLineDocument(document, LINE_ID);

      expect(line).toMatchObject({ id: LINE_ID, status: 'started', analysis: 'none', files: [] });
    });

    it('reads a finished metrics line with its four files, linking only those the reply links', () => {
      const document = metricsDocument('finished');
      document.links.data = `/api/tokens/${LINE_ID}/data`;

      const line = parseLineDocument(document, LINE_ID);

      expect(line.analysis).toBe('metrics');
      expect(line.files).toEqual([
        { name: 'analysis', size: 2067, sha256: METRICS_HASHES.analysis, link: undefined },
        { name: 'data', size: 124415, sha256: METRICS_HASHES.data, link: `/api/tokens/${LINE_ID}/data` },
        { name: 'delta', size: 40658, sha256: METRICS_HASHES.delta, link: undefined },
        { name: 'score', size: 37769, sha256: METRICS_HASHES.score, link: undefined },
      ]);
    });

    it('keeps each file its own link', () => {
      const document = metricsDocument('finished');
      document.links.score = `/files/${LINE_ID}/score.bin`;
      document.links.delta = `/files/${LINE_ID}/delta.bin`;

      const line = parseLineDocument(document, LINE_ID);

      const links = Object.fromEntries(line.files.map((file) => [file.name, file.link]));
      expect(links).toEqual({
        analysis: undefined,
        data: undefined,
        delta: `/files/${LINE_ID}/delta.bin`,
        score: `/files/${LINE_ID}/score.bin`,
      });
    });

    it('does not read files of a line that is not finished, even when it states some', () => {
      const document = metricsDocument('deleted');

      const line = parseLineDocument(document, LINE_ID);

      expect(line.files).toEqual([]);
    });
  });

  describe('files of a finished line', () => {
    it.each(['score', 'analysis', 'delta', 'data'] as const)(
      'refuses a metrics line without the %s file, naming it',
      (missing) => {
        const document = metricsDocument('finished');
        const { filehashes = {}, filesizes = {} } = document.data.attributes;
        delete filehashes[missing];
        delete filesizes[missing];

        const error = documentErrorOf(() => parseLineDocument(document, LINE_ID));

        expect(error.message).toContain(`"${missing}"`);
      },
    );

    it('refuses an analysis none line without a data file', () => {
      const document = finishedWithFiles({ other: DATA_SHA256 }, { other: 1 });

      const error = documentErrorOf(() => parseLineDocument(document, LINE_ID));

      expect(error.message).toContain('"data"');
    });

    it('refuses a finished line without filehashes', () => {
      const document = finishedNoneDocument();
      delete document.data.attributes.filehashes;

      const error = documentErrorOf(() => parseLineDocument(document, LINE_ID));

      expect(error.message).toContain('filehashes');
      expect(error.where).toBe(`line ${LINE_ID}`);
    });

    it('refuses a finished line without filesizes', () => {
      const document = finishedNoneDocument();
      delete document.data.attributes.filesizes;

      const error = documentErrorOf(() => parseLineDocument(document, LINE_ID));

      expect(error.message).toContain('filesizes');
    });

    it.each([
      ['an array', [DATA_SHA256]],
      ['a string', DATA_SHA256],
      ['null', null],
      ['an empty object', {}],
    ])('refuses filehashes that is %s', (_what, hashes) => {
      const document = finishedWithFiles(hashes as Record<string, unknown>, { data: 1 });

      const error = documentErrorOf(() => parseLineDocument(document, LINE_ID));

      expect(error.message).toContain('filehashes');
    });

    it.each([
      ['non-hex', 'g'.repeat(64)],
      ['63 characters', DATA_SHA256.slice(1)],
      ['65 characters', `${DATA_SHA256}0`],
      ['surrounding spaces', ` ${DATA_SHA256} `],
      ['a sha256: prefix', `sha256:${DATA_SHA256}`],
      ['a number', 12345],
      ['null', null],
    ])('refuses a hash with %s, naming the file', (_what, hash) => {
      const document = finishedWithFiles({ data: hash }, { data: 35151 });

      const error = documentErrorOf(() => parseLineDocument(document, LINE_ID));

      expect(error.message).toContain('filehashes.data');
    });

    it('lowercases an uppercase hash', () => {
      const document = finishedWithFiles({ data: DATA_SHA256.toUpperCase() }, { data: 35151 });

      const line = parseLineDocument(document, LINE_ID);

      expect(line.files[0]?.sha256).toBe(DATA_SHA256);
    });

    it.each([
      ['another file', { data: DATA_SHA256 }, { other: 1 }],
      ['an extra file', { data: DATA_SHA256 }, { data: 1, extra: 2 }],
      ['a file less', { data: DATA_SHA256, extra: DATA_SHA256 }, { data: 1 }],
    ])('refuses filesizes that names %s than filehashes', (_what, hashes, sizes) => {
      const document = finishedWithFiles(hashes, sizes);

      const error = documentErrorOf(() => parseLineDocument(document, LINE_ID));

      expect(error.message).toMatch(/filehashes names .* but filesizes names/);
    });

    it.each([
      ['negative', -1],
      ['fractional', 1.5],
      ['unsafe', 2 ** 53],
      ['infinite-looking', 1e308],
      ['a word', 'big'],
      ['a negative string', '-1'],
      ['a 70-digit string', AVAILABLE_70_DIGITS],
      ['a 16-digit string', '9007199254740993'],
      ['an exponent string', '1e3'],
      ['null', null],
      ['a boolean', true],
      ['an object', { bytes: 1 }],
    ])('refuses a %s size, naming the file', (_what, size) => {
      const document = finishedWithFiles({ data: DATA_SHA256 }, { data: size });

      const error = documentErrorOf(() => parseLineDocument(document, LINE_ID));

      expect(error.message).toContain('filesizes.data');
    });

    it('tolerates a size sent as a digit string', () => {
      const document = finishedWithFiles({ data: DATA_SHA256 }, { data: '35151' });

      const line = parseLineDocument(document, LINE_ID);

      expect(line.files[0]?.size).toBe(35151);
    });

    it('refuses size 0 with a hash other than that of no bytes', () => {
      const document = finishedWithFiles({ data: DATA_SHA256 }, { data: 0 });

      const error = documentErrorOf(() => parseLineDocument(document, LINE_ID));

      expect(error.message).toContain('size 0');
    });

    it('accepts size 0 with the hash of no bytes', () => {
      const document = finishedWithFiles({ data: EMPTY_SHA256 }, { data: 0 });

      const line = parseLineDocument(document, LINE_ID);

      expect(line.files).toEqual([{ name: 'data', size: 0, sha256: EMPTY_SHA256, link: expect.any(String) }]);
    });

    it.each([
      ['a slash', 'a/b'],
      ['a parent reference', '..'],
      ['a leading dot', '.hidden'],
      ['a dot', 'data.bin'],
      ['uppercase', 'Data2'],
      ['33 characters', `a${'b'.repeat(32)}`],
      ['a leading hyphen', '-data'],
      ['a leading underscore', '_data'],
      ['a space', 'da ta'],
      ['a percent escape', 'a%2Fb'],
      ['a non-ASCII letter', 'dаta'],
      ['no characters', ''],
    ])('refuses a file name with %s', (_what, name) => {
      const document = finishedWithFiles({ data: DATA_SHA256, [name]: DATA_SHA256 }, { data: 1, [name]: 1 });

      const error = documentErrorOf(() => parseLineDocument(document, LINE_ID));

      expect(error.message).toContain('file name');
    });

    it('accepts a 32-character file name', () => {
      const name = `a${'b'.repeat(31)}`;
      const document = finishedWithFiles({ data: DATA_SHA256, [name]: DATA_SHA256 }, { data: 1, [name]: 1 });

      const line = parseLineDocument(document, LINE_ID);

      expect(line.files.map((file) => file.name)).toEqual([name, 'data']);
    });

    it('refuses a link that is not a string', () => {
      const document = finishedNoneDocument();
      (document.links as Record<string, unknown>).data = { href: '/x' };

      const error = documentErrorOf(() => parseLineDocument(document, LINE_ID));

      expect(error.message).toContain('links.data');
    });

    it('reads a file named like an Object.prototype member without inventing a link for it', () => {
      const document = JSON.parse(
        JSON.stringify(
          finishedWithFiles({ data: DATA_SHA256, constructor: DATA_SHA256 }, { data: 1, constructor: 2 }),
        ),
      );

      const line = parseLineDocument(document, LINE_ID);

      expect(line.files.find((file) => file.name === 'constructor')).toEqual({
        name: 'constructor',
        size: 2,
        sha256: DATA_SHA256,
        link: undefined,
      });
    });

    it.each(['constructor', 'toString', '__proto__', 'hasOwnProperty'])(
      'reads a finished line whose analysis is %j like any unknown analysis (data file only)',
      (analysis) => {
        const document = finishedNoneDocument();
        document.data.attributes.analysis = analysis;

        const outcome = (() => {
          try {
            return parseLineDocument(document, LINE_ID);
          } catch (error) {
            return error;
          }
        })();

        // An unknown analysis needs the data file only, as the parser does for any other word.
        expect(outcome).not.toBeInstanceOf(TypeError);
        expect((outcome as TokensLine).files?.map((file) => file.name)).toEqual(['data']);
      },
    );
  });

  describe('identity', () => {
    it('refuses a reply that describes another line, naming both', () => {
      const document = finishedNoneDocument(OTHER_ID);

      const error = documentErrorOf(() => parseLineDocument(document, LINE_ID));

      expect(error.message).toContain(LINE_ID);
      expect(error.message).toContain(OTHER_ID);
    });

    it.each([
      ['a placeholder', 'XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX'],
      ['a path', `../${LINE_ID}`],
      ['a number', 42],
      ['nothing', undefined],
    ])('refuses an id that is %s', (_what, id) => {
      const document = finishedNoneDocument();
      document.data.id = id;

      const error = documentErrorOf(() => parseLineDocument(document, LINE_ID));

      expect(error.message).toContain('data.id');
    });

    it.each([['token'], ['Tokens'], [undefined], [1]])('refuses type %j', (type) => {
      const document = finishedNoneDocument();
      document.data.type = type;

      const error = documentErrorOf(() => parseLineDocument(document, LINE_ID));

      expect(error.message).toContain('data.type');
    });

    it.each([
      ['null', null],
      ['an array', [finishedNoneDocument().data]],
      ['a string', 'finished'],
    ])('refuses a document whose data is %s', (_what, data) => {
      const document = { data };

      const error = documentErrorOf(() => parseLineDocument(document, LINE_ID));

      expect(error.message).toContain('data');
    });

    it.each([
      ['null', null],
      ['a string', '{"data":{}}'],
      ['an array', []],
    ])('refuses a document that is %s', (_what, document) => {
      const error = documentErrorOf(() => parseLineDocument(document, LINE_ID));

      expect(error.where).toBe(`line ${LINE_ID}`);
    });

    it.each([
      ['missing', undefined],
      ['empty', ''],
      ['a number', 3],
    ])('refuses a status that is %s', (_what, status) => {
      const document = finishedNoneDocument();
      document.data.attributes.status = status;

      const error = documentErrorOf(() => parseLineDocument(document, LINE_ID));

      expect(error.message).toContain('status');
    });
  });
});

describe('parseListPage', () => {
  it('reads the seed list with planned files and bytes', () => {
    const document = { links: { self: '/api/tokens' }, data: [listItem(LINE_ID), listItem(OTHER_ID)] };

    const page = parseListPage(document);

    expect(page).toEqual({
      lines: [
        { id: LINE_ID, status: 'finished', plannedFiles: 1, plannedBytes: 124415, finishedAt: FINISHED_AT },
        { id: OTHER_ID, status: 'finished', plannedFiles: 1, plannedBytes: 124415, finishedAt: FINISHED_AT },
      ],
      invalid: [],
      next: undefined,
    });
  });

  it('reports malformed items in invalid and keeps the valid ones', () => {
    const document = {
      data: [
        listItem(LINE_ID),
        'not an item',
        { ...listItem('not-a-uuid') },
        { ...listItem(PAYMENT_ID), type: 'transaction' },
        { id: OTHER_ID, type: 'tokens' },
        null,
        listItem(OTHER_ID, { status: 'started', filesizes: undefined }),
      ],
    };

    const page = parseListPage(document);

    expect(page.lines.map((line) => line.id)).toEqual([LINE_ID, OTHER_ID]);
    expect(page.invalid.map((item) => item.id)).toEqual([
      undefined,
      undefined,
      PAYMENT_ID,
      OTHER_ID,
      undefined,
    ]);
    expect(page.invalid.map((item) => item.reason)).toEqual([
      expect.stringContaining('list item 1'),
      expect.stringContaining('list item 2: data.id'),
      expect.stringContaining('list item 3: data.type'),
      expect.stringContaining('list item 4: data.attributes'),
      expect.stringContaining('list item 5'),
    ]);
  });

  it('sums the sizes of every file of a metrics line', () => {
    const document = { data: [listItem(LINE_ID, { analysis: 'metrics', filesizes: METRICS_SIZES })] };

    const page = parseListPage(document);

    expect(page.lines[0]).toMatchObject({ plannedFiles: 4, plannedBytes: 37769 + 2067 + 124415 + 40658 });
  });

  it('leaves the plan unstated when a size is a 70-digit string, never converting it', () => {
    const document = {
      data: [listItem(LINE_ID, { available: AVAILABLE_70_DIGITS, filesizes: { data: AVAILABLE_70_DIGITS } })],
    };

    const page = parseListPage(document);

    expect(page.lines).toEqual([
      {
        id: LINE_ID,
        status: 'finished',
        plannedFiles: undefined,
        plannedBytes: undefined,
        finishedAt: FINISHED_AT,
      },
    ]);
    expect(JSON.stringify(page)).not.toMatch(/e\+69|7\.888/);
  });

  it('leaves the plan unstated for a line that states no sizes', () => {
    const document = { data: [listItem(LINE_ID, { status: 'requested', filesizes: undefined })] };

    const page = parseListPage(document);

    expect(page.lines[0]).toEqual({
      id: LINE_ID,
      status: 'requested',
      plannedFiles: undefined,
      plannedBytes: undefined,
      finishedAt: FINISHED_AT,
    });
  });

  it('reads links.next', () => {
    const document = { links: { self: '/api/tokens', next: '/api/tokens?page=2' }, data: [] };

    const page = parseListPage(document);

    expect(page.next).toBe('/api/tokens?page=2');
  });

  it.each([
    ['empty', ''],
    ['null', null],
    ['a number', 2],
    ['an object', { href: '/api/tokens?page=2' }],
  ])('has no next page when links.next is %s', (_what, next) => {
    const document = { links: { next }, data: [] };

    const page = parseListPage(document);

    expect(page.next).toBeUndefined();
  });

  it.each([
    ['a single line document', finishedNoneDocument()],
    ['an object without data', { links: {} }],
    ['null', null],
    ['an array', [listItem(LINE_ID)]],
  ])('throws a DocumentError for %s', (_what, document) => {
    const error = documentErrorOf(() => parseListPage(document));

    expect(error.where).toBe('list');
  });
});

describe('parseDeleteReply', () => {
  it('accepts the seed reply: this line, now deleted', () => {
    const document = metricsDocument('deleted');

    const reply = parseDeleteReply(document, LINE_ID);

    expect(reply.document).toBe(document);
  });

  it('refuses a reply for another line', () => {
    const document = metricsDocument('deleted', OTHER_ID);

    const error = documentErrorOf(() => parseDeleteReply(document, LINE_ID));

    expect(error.message).toContain(OTHER_ID);
  });

  it.each(['finished', 'started', 'Deleted'])('refuses a reply with status %s', (status) => {
    const document = metricsDocument(status);

    const error = documentErrorOf(() => parseDeleteReply(document, LINE_ID));

    expect(error.message).toContain(`"${status}"`);
  });

  it.each([
    ['an empty object', {}],
    ['null', null],
    ['a list', { data: [metricsDocument('deleted').data] }],
  ])('refuses %s', (_what, document) => {
    const error = documentErrorOf(() => parseDeleteReply(document, LINE_ID));

    expect(error.where).toBe(`DELETE reply for line ${LINE_ID}`);
  });
});

// ---------------------------------------------------------------------------------------------
// Property-based: whatever JSON arrives, the parsers answer with a value or a DocumentError, and
// what they accept as a finished line is safe to use as URL path and S3 key segments.
// ---------------------------------------------------------------------------------------------

const NUM_RUNS = 400;
/** Checks `property` over NUM_RUNS generated inputs. */
const checkProperty = <Ts extends [unknown, ...unknown[]]>(property: fc.IProperty<Ts>): void =>
  fc.assert(property, { numRuns: NUM_RUNS });
const FILE_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const LOWER_SHA256 = /^[0-9a-f]{64}$/;
const PROTOTYPE_WORDS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'hasOwnProperty',
  'isPrototypeOf',
  '__defineGetter__',
] as const;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const fileNameArb = fc.stringMatching(FILE_NAME);
const sha256Arb = fc.stringMatching(LOWER_SHA256);

/** Strings that tend to break validators: prototype words, odd unicode, huge, number-like. */
const oddStringArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...PROTOTYPE_WORDS),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom(
    '',
    ' ',
    'data\u0000',
    'ｄａｔａ',
    'dаta',
    'data\u200b',
    '\ud800',
    'DATA',
    '../data',
    'data/..',
    'finished',
    'deleted',
    'metrics',
    'none',
    'tokens',
    AVAILABLE_70_DIGITS,
    '-1',
    '1e3',
    '0x10',
    'NaN',
    'Infinity',
    EMPTY_SHA256,
    EMPTY_SHA256.toUpperCase(),
    LINE_ID,
    OTHER_ID,
  ),
  fc.integer({ min: 1000, max: 100_000 }).map((n) => 'a'.repeat(n)),
  fc.integer({ min: 65, max: 50_000 }).map((n) => 'f'.repeat(n)),
);

const oddValueArb: fc.Arbitrary<Json> = fc.oneof(
  oddStringArb,
  fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
  fc.constantFrom<Json>(null, true, false, 0, -1, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER, 1e308, [], {}),
  fc
    .uniqueArray(
      fc.tuple(fc.oneof(fc.constantFrom(...PROTOTYPE_WORDS), fileNameArb), fc.jsonValue({ maxDepth: 1 })),
      {
        maxLength: 4,
        selector: ([key]) => key,
      },
    )
    .map((entries) => ownObject(entries as [string, Json][])),
);

/** An object with these own properties, `__proto__` included (as JSON.parse would build it). */
function ownObject(entries: readonly (readonly [string, Json])[]): { [key: string]: Json } {
  const object: { [key: string]: Json } = {};
  for (const [key, value] of entries) {
    Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return object;
}

interface FileSpec {
  readonly name: string;
  readonly size: number | string;
  readonly sha256: string;
  readonly link: string | undefined;
}

/** A valid finished line document with random id, analysis, files, sizes, hashes and links. */
const finishedDocumentArb = fc
  .record({
    id: fc.uuid(),
    analysis: fc.constantFrom('none', 'metrics', undefined, 'something-new'),
    extraNames: fc.uniqueArray(fileNameArb, { maxLength: 3 }),
    upperHashes: fc.boolean(),
  })
  .chain(({ id, analysis, extraNames, upperHashes }) => {
    const required = analysis === 'metrics' ? ['data', 'score', 'analysis', 'delta'] : ['data'];
    const names = [...new Set([...required, ...extraNames])];
    const fileArb = (name: string): fc.Arbitrary<FileSpec> =>
      fc
        .record({
          size: fc.oneof(fc.constant(0), fc.nat(), fc.maxSafeNat(), fc.nat().map(String)),
          sha256: sha256Arb,
          link: fc.option(
            fc.constantFrom(`/api/tokens/${id}/${name}`, `https://tokens.example.com/f/${name}`),
            {
              nil: undefined,
            },
          ),
        })
        .map(({ size, sha256, link }) => ({
          name,
          size,
          sha256: Number(size) === 0 ? EMPTY_SHA256 : upperHashes ? sha256.toUpperCase() : sha256,
          link,
        }));
    return fc.tuple(fc.constant({ id, analysis }), fc.tuple(...names.map(fileArb)));
  })
  .map(([{ id, analysis }, files]) => {
    const links: { [key: string]: Json } = { self: '/api/tokens', info: `/api/tokens/${id}` };
    for (const file of files) if (file.link !== undefined) links[file.name] = file.link;
    const attributes: { [key: string]: Json } = {
      rate: 3651,
      reachable: '0',
      alphabet: 'LOWER_LATIN',
      available: AVAILABLE_70_DIGITS,
      partial: false,
      status: 'finished',
      filesizes: Object.fromEntries(files.map((file) => [file.name, file.size])),
      digits: '3',
      filehashes: Object.fromEntries(files.map((file) => [file.name, file.sha256])),
      size: '8788',
      timestamps: { finished: '2024-03-19T12:53:15.358Z' },
    };
    if (analysis !== undefined) attributes.analysis = analysis;
    const document: Json = {
      meta: { seed: PAYMENT_ID },
      links,
      data: { attributes, id, type: 'tokens', relationships: JSON.parse(JSON.stringify(relationships)) },
    };
    return { id, files, document };
  });

type Corruption =
  | { readonly kind: 'drop'; readonly pick: number }
  | { readonly kind: 'replace'; readonly pick: number; readonly value: Json }
  | { readonly kind: 'add'; readonly pick: number; readonly key: string; readonly value: Json }
  | { readonly kind: 'attribute'; readonly name: string; readonly value: Json }
  | { readonly kind: 'entry'; readonly pick: number; readonly value: Json };

const corruptionArb: fc.Arbitrary<Corruption> = fc.oneof(
  fc.record({ kind: fc.constant('drop' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('replace' as const), pick: fc.nat(), value: oddValueArb }),
  fc.record({
    kind: fc.constant('add' as const),
    pick: fc.nat(),
    key: fc.oneof(fc.constantFrom(...PROTOTYPE_WORDS), fileNameArb, oddStringArb),
    value: oddValueArb,
  }),
  // Aimed at the attributes the parser reads, where it makes the most decisions.
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('attribute' as const),
      name: fc.constantFrom('status', 'analysis', 'filehashes', 'filesizes', ...PROTOTYPE_WORDS),
      value: fc.oneof(fc.constantFrom(...PROTOTYPE_WORDS), oddValueArb),
    }),
  },
  // Aimed at anything below the attributes: one file's hash or size, a timestamp.
  fc.record({ kind: fc.constant('entry' as const), pick: fc.nat(), value: oddValueArb }),
);

type Container = Json[] | { [key: string]: Json };
interface Slot {
  readonly parent: Container;
  readonly key: string;
  readonly path: string;
}

/** Every property and element of a JSON tree, with its parent. */
function slotsOf(value: Json, path = ''): Slot[] {
  if (value === null || typeof value !== 'object') return [];
  const slots: Slot[] = [];
  for (const key of Object.keys(value)) {
    const child = (value as Record<string, Json>)[key] as Json;
    const childPath = `${path}/${key}`;
    slots.push({ parent: value, key, path: childPath }, ...slotsOf(child, childPath));
  }
  return slots;
}

function containersOf(value: Json): Container[] {
  if (value === null || typeof value !== 'object') return [];
  return [value, ...Object.values(value).flatMap((child) => containersOf(child as Json))];
}

/** Sets an own property (a fresh copy of the value, so generated values are never shared). */
function setOwn(parent: Container, key: string, value: Json): void {
  const copy = JSON.parse(JSON.stringify(value)) as Json;
  Object.defineProperty(parent, key, { value: copy, enumerable: true, writable: true, configurable: true });
}

/**
 * Applies the corruptions to a copy of the document and returns it as a JSON parser would
 * deliver it (a `__proto__` key an own property, like any other).
 */
function corrupt(document: Json, corruptions: readonly Corruption[]): unknown {
  const copy = JSON.parse(JSON.stringify(document)) as Json;
  let root: Json = copy;
  for (const corruption of corruptions) {
    if (corruption.kind === 'add') {
      const containers = containersOf(root);
      const container = containers[corruption.pick % Math.max(1, containers.length)];
      if (Array.isArray(container)) container.push(JSON.parse(JSON.stringify(corruption.value)) as Json);
      else if (container !== undefined) setOwn(container, corruption.key, corruption.value);
      continue;
    }
    if (corruption.kind === 'attribute') {
      const attributes = (root as { data?: { attributes?: Json } } | null)?.data?.attributes;
      if (typeof attributes === 'object' && attributes !== null && !Array.isArray(attributes)) {
        setOwn(attributes, corruption.name, corruption.value);
      }
      continue;
    }
    const slots =
      corruption.kind === 'entry'
        ? slotsOf(root).filter((slot) => slot.path.startsWith('/data/attributes/'))
        : slotsOf(root);
    const slot = slots[corruption.pick % Math.max(1, slots.length)];
    if (slot === undefined) {
      if (corruption.kind !== 'drop') root = JSON.parse(JSON.stringify(corruption.value)) as Json;
      continue;
    }
    if (corruption.kind === 'drop') {
      if (Array.isArray(slot.parent)) slot.parent.splice(Number(slot.key), 1);
      else delete slot.parent[slot.key];
    } else {
      setOwn(slot.parent, slot.key, corruption.value);
    }
  }
  return JSON.parse(JSON.stringify(root));
}

/** What a parser did: returned a value, or threw. */
function outcomeOf<T>(parse: () => T): { ok: true; value: T } | { ok: false; error: unknown } {
  try {
    return { ok: true, value: parse() };
  } catch (error) {
    return { ok: false, error };
  }
}

function expectValueOrDocumentError<T>(
  outcome: { ok: true; value: T } | { ok: false; error: unknown },
): void {
  if (!outcome.ok) expect(outcome.error).toBeInstanceOf(DocumentError);
}

/** The invariants every accepted line must hold, finished lines above all. */
function expectSafeLine(line: TokensLine, expectedId: string): void {
  expect(isLineId(line.id)).toBe(true);
  expect(line.id).toBe(expectedId);
  expect(typeof line.status).toBe('string');
  if (line.status !== 'finished') {
    expect(line.files).toEqual([]);
    return;
  }
  expect(line.files.length).toBeGreaterThan(0);
  for (const file of line.files) {
    expect(file.name).toMatch(FILE_NAME);
    expect(file.sha256).toMatch(LOWER_SHA256);
    expect(Number.isSafeInteger(file.size) && file.size >= 0).toBe(true);
    expect(file.link === undefined || typeof file.link === 'string').toBe(true);
  }
  const attributes = (line.document as { data: { attributes: Record<string, object> } }).data.attributes;
  const names = line.files.map((file) => file.name).sort();
  expect(Object.keys(attributes.filehashes ?? {}).sort()).toEqual(names);
  expect(Object.keys(attributes.filesizes ?? {}).sort()).toEqual(names);
}

function expectSafePage(page: ListPage, items: number): void {
  expect(page.lines.length + page.invalid.length).toBe(items);
  for (const line of page.lines) {
    expect(isLineId(line.id)).toBe(true);
    expect(typeof line.status === 'string' && line.status !== '').toBe(true);
    for (const planned of [line.plannedFiles, line.plannedBytes]) {
      expect(
        planned === undefined || (typeof planned === 'number' && Number.isInteger(planned) && planned >= 0),
      ).toBe(true);
    }
  }
  for (const item of page.invalid) {
    expect(item.id === undefined || isLineId(item.id)).toBe(true);
    expect(typeof item.reason).toBe('string');
  }
  expect(page.next === undefined || (typeof page.next === 'string' && page.next !== '')).toBe(true);
}

/** Random JSON, whole or wrapped in the outer layers of a JSON:API document. */
const randomJsonArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue(),
  fc.json().map((text) => JSON.parse(text) as unknown),
  fc.jsonValue().map((data) => ({ data })),
  fc.jsonValue().map((data) => ({ data: [data] })),
  fc.record({ id: fc.constantFrom(LINE_ID, 'x'), attributes: fc.jsonValue() }).map((data) => ({
    data: { ...data, type: 'tokens' },
  })),
  fc
    .record({
      status: fc.constantFrom('finished', 'deleted'),
      rest: fc.dictionary(fc.string(), fc.jsonValue()),
    })
    .map(({ status, rest }) => ({ data: { id: LINE_ID, type: 'tokens', attributes: { ...rest, status } } })),
);

describe('document parsers under random input (property-based)', () => {
  it('accept every well-formed finished line and report its files exactly', () => {
    checkProperty(
      fc.property(finishedDocumentArb, ({ id, files, document }) => {
        const parsed = JSON.parse(JSON.stringify(document)) as unknown;

        const line = parseLineDocument(parsed, id);

        expectSafeLine(line, id);
        const expected = [...files]
          .sort((a, b) => (a.name < b.name ? -1 : 1))
          .map((file) => ({
            name: file.name,
            size: Number(file.size),
            sha256: file.sha256.toLowerCase(),
            link: file.link,
          }));
        expect(line.files).toEqual(expected);
      }),
    );
  });

  it('answer random JSON with a value or a DocumentError, and accept only safe lines', () => {
    checkProperty(
      fc.property(randomJsonArb, (document) => {
        const line = outcomeOf(() => parseLineDocument(document, LINE_ID));
        const page = outcomeOf(() => parseListPage(document));
        const reply = outcomeOf(() => parseDeleteReply(document, LINE_ID));

        expectValueOrDocumentError(line);
        expectValueOrDocumentError(page);
        expectValueOrDocumentError(reply);
        if (line.ok) expectSafeLine(line.value, LINE_ID);
        if (page.ok) expectSafePage(page.value, (document as { data: unknown[] }).data.length);
      }),
    );
  });

  it('answer corrupted line documents with a value or a DocumentError, and accept only safe lines', () => {
    checkProperty(
      fc.property(
        finishedDocumentArb,
        fc.array(corruptionArb, { minLength: 1, maxLength: 3 }),
        ({ id, document }, corruptions) => {
          const corrupted = corrupt(document, corruptions);

          const line = outcomeOf(() => parseLineDocument(corrupted, id));

          expectValueOrDocumentError(line);
          if (line.ok) expectSafeLine(line.value, id);
        },
      ),
    );
  });

  it('answer corrupted list pages with a value or a DocumentError, keeping every item accounted for', () => {
    checkProperty(
      fc.property(
        fc.array(finishedDocumentArb, { maxLength: 4 }),
        fc.array(corruptionArb, { maxLength: 4 }),
        fc.option(oddStringArb, { nil: undefined }),
        (lines, corruptions, next) => {
          const links: { [key: string]: Json } = { self: '/api/tokens' };
          if (next !== undefined) links.next = next;
          const document: Json = {
            links,
            data: lines.map(({ document: line }) => (line as { data: Json }).data),
          };
          const corrupted = corrupt(document, corruptions);

          const page = outcomeOf(() => parseListPage(corrupted));

          expectValueOrDocumentError(page);
          if (page.ok) expectSafePage(page.value, (corrupted as { data: unknown[] }).data.length);
        },
      ),
    );
  });

  it('answer corrupted DELETE replies with a value or a DocumentError, and accept only this line deleted', () => {
    checkProperty(
      fc.property(
        finishedDocumentArb,
        fc.array(corruptionArb, { maxLength: 3 }),
        ({ id, document }, corruptions) => {
          const deleted = JSON.parse(JSON.stringify(document)) as {
            data: { attributes: { status: string } };
          };
          deleted.data.attributes.status = 'deleted';
          const corrupted = corrupt(deleted as unknown as Json, corruptions);

          const reply = outcomeOf(() => parseDeleteReply(corrupted, id));

          expectValueOrDocumentError(reply);
          if (reply.ok) {
            const data = (reply.value.document as { data: { id: unknown; attributes: { status: unknown } } })
              .data;
            expect(data.id).toBe(id);
            expect(data.attributes.status).toBe('deleted');
          }
        },
      ),
    );
  });
});
