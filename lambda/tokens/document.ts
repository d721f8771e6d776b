import { createHash } from 'node:crypto';
import { DocumentError } from '../shared/errors.ts';
import { FILE_NAME, isLineId, type LineFile, sameLineId } from '../shared/ids.ts';
import type {
  DeleteReply,
  FilesStatement,
  TokensLine as LineOfPort,
  ListedLine,
  ListPage,
  ReadLine,
} from '../shared/ports/tokens.ts';
import { parseJsonLimited } from './json.ts';

export type { ListedLine, ListPage } from '../shared/ports/tokens.ts';

/** A line read by id (`GET /api/tokens/{id}`), validated, with its JSON:API document as parsed. */
export interface TokensLine extends LineOfPort {
  /** The JSON:API document as fetched. */
  readonly document: unknown;
}

const SHA256_HEX = /^[0-9a-fA-F]{64}$/;
const EMPTY_SHA256 = createHash('sha256').digest('hex');

/** The statuses the API reference describes; a listed line with another is reported, not processed. */
export const KNOWN_STATUSES: ReadonlySet<string> = new Set(['requested', 'started', 'finished', 'deleted']);

/** The files each kind of analysis must produce; a finished line missing one is not complete. */
const REQUIRED_FILES: Readonly<Record<string, readonly string[]>> = {
  none: ['data'],
  metrics: ['data', 'score', 'analysis', 'delta'],
};

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  // Quoted whole or not at all: a cut string could carry part of the session key past its redaction.
  if (typeof value === 'string')
    return value.length > 80 ? `a string of ${value.length} characters` : JSON.stringify(value);
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value;
}

/** A file size: a non-negative safe integer, sent as a JSON number (a digit string is tolerated). */
function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === 'string' && /^\d{1,15}$/.test(value)) return Number(value);
  return undefined;
}

function resourceOf(document: unknown, where: string): Record<string, unknown> {
  if (!isObject(document))
    throw new DocumentError(where, `expected a JSON:API document, got ${describe(document)}`);
  const data = document.data;
  if (!isObject(data)) throw new DocumentError(where, `data: expected an object, got ${describe(data)}`);
  return data;
}

function idAndStatus(
  resource: Record<string, unknown>,
  where: string,
): { id: string; status: string; attributes: Record<string, unknown> } {
  const rawId = resource.id;
  if (!isLineId(rawId)) throw new DocumentError(where, `data.id: expected a UUID, got ${describe(rawId)}`);
  const id = rawId.toLowerCase();
  if (resource.type !== 'tokens') {
    throw new DocumentError(where, `data.type: expected "tokens", got ${describe(resource.type)}`);
  }
  const attributes = resource.attributes;
  if (!isObject(attributes)) {
    throw new DocumentError(where, `data.attributes: expected an object, got ${describe(attributes)}`);
  }
  const status = attributes.status;
  if (typeof status !== 'string' || status === '') {
    throw new DocumentError(where, `data.attributes.status: expected a string, got ${describe(status)}`);
  }
  return { id, status, attributes };
}

function parseFiles(
  attributes: Record<string, unknown>,
  links: Record<string, unknown>,
  where: string,
): LineFile[] {
  const hashes = attributes.filehashes;
  const sizes = attributes.filesizes;
  if (!isObject(hashes))
    throw new DocumentError(where, `filehashes: expected an object, got ${describe(hashes)}`);
  if (!isObject(sizes))
    throw new DocumentError(where, `filesizes: expected an object, got ${describe(sizes)}`);
  const names = Object.keys(hashes).sort();
  const sizeNames = Object.keys(sizes).sort();
  if (names.length === 0) throw new DocumentError(where, 'filehashes: names no file');
  if (names.join('\n') !== sizeNames.join('\n')) {
    throw new DocumentError(
      where,
      `filehashes names [${names.join(', ')}] but filesizes names [${sizeNames.join(', ')}]`,
    );
  }
  const analysis = typeof attributes.analysis === 'string' ? attributes.analysis : 'none';
  // Own keys only: an analysis named like an Object.prototype member is just unknown.
  const requiredFiles = Object.hasOwn(REQUIRED_FILES, analysis) ? REQUIRED_FILES[analysis] : undefined;
  for (const required of requiredFiles ?? ['data']) {
    if (!names.includes(required)) {
      throw new DocumentError(
        where,
        `analysis "${analysis}" requires file "${required}", which is not listed`,
      );
    }
  }
  return names.map((name) => {
    if (!FILE_NAME.test(name))
      throw new DocumentError(where, `file name ${describe(name)} is not a [a-z0-9_-] word`);
    const hash = hashes[name];
    if (typeof hash !== 'string' || !SHA256_HEX.test(hash)) {
      throw new DocumentError(where, `filehashes.${name}: expected 64 hex characters, got ${describe(hash)}`);
    }
    const size = parseSize(sizes[name]);
    if (size === undefined) {
      throw new DocumentError(
        where,
        `filesizes.${name}: expected a non-negative integer, got ${describe(sizes[name])}`,
      );
    }
    const sha256 = hash.toLowerCase();
    if (size === 0 && sha256 !== EMPTY_SHA256) {
      throw new DocumentError(where, `file ${name}: size 0 but its hash is not the hash of no bytes`);
    }
    const link = Object.hasOwn(links, name) ? links[name] : undefined;
    if (link !== undefined && typeof link !== 'string') {
      throw new DocumentError(where, `links.${name}: expected a string, got ${describe(link)}`);
    }
    return { name, size, sha256, link };
  });
}

/**
 * Validates a single-line document (`GET /api/tokens/{id}`). A finished line must state every
 * file with a hash and a size. Throws {@link DocumentError} naming the line and the field.
 */
export function parseLineDocument(document: unknown, expectedId: string): TokensLine {
  const where = `line ${expectedId}`;
  const resource = resourceOf(document, where);
  const { id, status, attributes } = idAndStatus(resource, where);
  if (!sameLineId(id, expectedId)) throw new DocumentError(where, `the reply describes another line (${id})`);
  const rawLinks = isObject(document) ? document.links : undefined;
  const links = isObject(rawLinks) ? rawLinks : {};
  const files = status === 'finished' ? parseFiles(attributes, links, where) : [];
  const text = (value: unknown) => (typeof value === 'string' ? value : undefined);
  return {
    id,
    status,
    analysis: text(attributes.analysis),
    alphabet: text(attributes.alphabet),
    digits: text(attributes.digits),
    files,
    finishedAt: finishedStamp(attributes),
    document,
  };
}

function finishedStamp(attributes: Record<string, unknown>): string | undefined {
  const timestamps = attributes.timestamps;
  return isObject(timestamps) && typeof timestamps.finished === 'string' ? timestamps.finished : undefined;
}

/**
 * Validates a document that confirms a DELETE (its reply, or a GET after it): it must describe
 * this line, now `deleted`. Its files are returned to be compared with the manifest (the line may
 * have changed in the last milliseconds): `files` when it states them readably, undefined when it
 * states none (neither `filehashes` nor `filesizes`), and `filesProblem` when it states them in a
 * way that cannot be read, which is no clean confirmation.
 */
export function parseDeleteReply(
  document: unknown,
  expectedId: string,
): {
  readonly document: unknown;
  readonly files: readonly LineFile[] | undefined;
  readonly filesProblem?: string;
} {
  const where = `DELETE reply for line ${expectedId}`;
  const { id, status, attributes } = idAndStatus(resourceOf(document, where), where);
  if (!sameLineId(id, expectedId)) throw new DocumentError(where, `the reply describes another line (${id})`);
  if (status !== 'deleted') throw new DocumentError(where, `status is "${status}", expected "deleted"`);
  if (attributes.filehashes === undefined && attributes.filesizes === undefined) {
    return { document, files: undefined };
  }
  try {
    return { document, files: parseFiles(attributes, {}, where) };
  } catch (error) {
    if (!(error instanceof DocumentError)) throw error;
    return { document, files: undefined, filesProblem: error.message };
  }
}

function plannedFromList(attributes: Record<string, unknown>): { files?: number; bytes?: number } {
  const sizes = attributes.filesizes;
  if (!isObject(sizes)) return {};
  let bytes = 0;
  for (const value of Object.values(sizes)) {
    const size = parseSize(value);
    if (size === undefined) return {};
    bytes += size;
  }
  return { files: Object.keys(sizes).length, bytes };
}

/**
 * Validates one page of the list (`GET /api/tokens`). A malformed item is reported in
 * `invalid` and never processed; only a page that is not a list at all throws.
 */
export function parseListPage(document: unknown): ListPage {
  const where = 'list';
  if (!isObject(document))
    throw new DocumentError(where, `expected a JSON:API document, got ${describe(document)}`);
  const data = document.data;
  if (!Array.isArray(data)) throw new DocumentError(where, `data: expected an array, got ${describe(data)}`);
  const lines: ListedLine[] = [];
  const invalid: { id: string | undefined; reason: string }[] = [];
  for (const [index, item] of data.entries()) {
    const itemWhere = `list item ${index}`;
    const rawId = isObject(item) && isLineId(item.id) ? item.id : undefined;
    try {
      if (!isObject(item)) throw new DocumentError(itemWhere, `expected an object, got ${describe(item)}`);
      const { id, status, attributes } = idAndStatus(item, itemWhere);
      const planned = plannedFromList(attributes);
      lines.push({
        id,
        status,
        plannedFiles: planned.files,
        plannedBytes: planned.bytes,
        finishedAt: finishedStamp(attributes),
      });
    } catch (error) {
      if (!(error instanceof DocumentError)) throw error;
      invalid.push({ id: rawId, reason: error.message });
    }
  }
  const links = document.links;
  const next =
    isObject(links) && typeof links.next === 'string' && links.next !== '' ? links.next : undefined;
  return { lines, invalid, next };
}

/**
 * The port's line (see `shared/ports/tokens.ts`) from the reply to `GET /api/tokens/{id}`: the
 * document checked ({@link parseLineDocument}; a {@link DocumentError} otherwise), and for a line
 * now `deleted`, what it still states of its files ({@link parseDeleteReply}), to compare with
 * the archive. `bytes` is the document as received, to archive.
 */
export function readLine(value: unknown, id: string, bytes: Buffer): ReadLine {
  const { document: _, ...line } = parseLineDocument(value, id);
  if (line.status !== 'deleted') return { line, bytes };
  const { files, filesProblem } = parseDeleteReply(value, id);
  return {
    line: { ...line, deletedStatement: { files, ...(filesProblem === undefined ? {} : { filesProblem }) } },
    bytes,
  };
}

/** A page of the list as the port gives it: {@link parseListPage}, with lines of an unknown status marked. */
export function readListPage(document: unknown): ListPage {
  const page = parseListPage(document);
  return {
    ...page,
    lines: page.lines.map((line) =>
      KNOWN_STATUSES.has(line.status) ? line : { ...line, unknownStatus: true },
    ),
  };
}

/**
 * What a document that speaks of a DELETE (its reply, or a GET after it) states of line `id`,
 * deleted: its files; undefined when it is no such document (not this line, not deleted, not a
 * JSON:API document), which confirms nothing and states nothing.
 */
export function confirmingStatement(id: string, document: unknown): FilesStatement | undefined {
  if (document === undefined) return undefined;
  try {
    const { files, filesProblem } = parseDeleteReply(document, id);
    return { files, ...(filesProblem === undefined ? {} : { filesProblem }) };
  } catch (error) {
    if (error instanceof DocumentError) return undefined;
    throw error;
  }
}

/** The port's DELETE reply from what came back: the body as received, and what it states. */
export function readDeleteReply(
  id: string,
  reply: {
    readonly status: number;
    readonly contentType: string;
    readonly bytes: Buffer;
    readonly document: unknown;
  },
): DeleteReply {
  return {
    status: reply.status,
    contentType: reply.contentType,
    bytes: reply.bytes,
    readable: reply.document !== undefined,
    statement: confirmingStatement(id, reply.document),
  };
}

/**
 * What a reply kept in the archive (its body as received) states of line `id`, deleted; undefined
 * when it is not such a document, or not JSON at all.
 */
export function readKeptReply(id: string, body: string): FilesStatement | undefined {
  try {
    // The body as received: a byte order mark stays in it, which JSON does not allow.
    return confirmingStatement(id, parseJsonLimited(body.replace(/^\uFEFF/, '')));
  } catch {
    return undefined;
  }
}
