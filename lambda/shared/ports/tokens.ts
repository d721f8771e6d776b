/**
 * The tokens service as the core uses it: a port. The core sees lines, files and statements,
 * already read and checked; never a JSON:API document, a media type or a status code other than
 * "gone". `lambda/tokens/` is the adapter over HTTP that implements it (`class TokensApi
 * implements TokensPort`), and reads the service's documents (`tokens/document.ts`); the unit
 * tests' fake implements it too. Types only: a leaf, so the core and the adapters both import it.
 */
import type { Readable } from 'node:stream';
import type { LineFile } from '../ids.ts';

/** A file as a document states it: its name, size and SHA-256 (lower-case hex). */
export interface StatedFile {
  readonly name: string;
  readonly size: number;
  readonly sha256: string;
}

/**
 * What a document that speaks of a DELETE (its reply, or the line read after it) states of the
 * line's files: `files` when it states them readably, undefined when it states none, and
 * `filesProblem` when it states them in a way that cannot be read (no clean confirmation).
 */
export interface FilesStatement {
  readonly files: readonly StatedFile[] | undefined;
  readonly filesProblem?: string;
}

/** A line read by id, checked. */
export interface TokensLine {
  /** Lower case. */
  readonly id: string;
  /** `requested`, `started`, `finished`, `deleted`, or another the service may add. */
  readonly status: string;
  readonly analysis: string | undefined;
  /** Cosmetic attributes, for plans: the token alphabet and the number of digits (a string number). */
  readonly alphabet: string | undefined;
  readonly digits: string | undefined;
  /** Present (non-empty) only for a finished line: every file, with its size, hash and link. */
  readonly files: readonly LineFile[];
  /** When the line finished, as the service stated it, when it did. */
  readonly finishedAt: string | undefined;
  /** For a line with status `deleted`: what its document still states of its files. */
  readonly deletedStatement?: FilesStatement;
}

/** A line as read, with its document exactly as the service sent it (archived byte for byte). */
export interface ReadLine {
  readonly line: TokensLine;
  readonly bytes: Buffer;
}

/**
 * `getLine`'s answer: the line, or `gone` when the service says it is not there (404, 410 for the
 * line's own address; a failure of any other kind is thrown, since it proves nothing).
 */
export type LineRead =
  | ({ readonly kind: 'read' } & ReadLine)
  | { readonly kind: 'gone'; readonly status: 404 | 410 };

/** One line of the list: no links and no hashes there. */
export interface ListedLine {
  readonly id: string;
  readonly status: string;
  /** Files and bytes as the list states them, for dry-run plans; undefined when not stated. */
  readonly plannedFiles: number | undefined;
  readonly plannedBytes: number | undefined;
  /** When the line finished, as the list states it. */
  readonly finishedAt: string | undefined;
  /** Its status is none the service's reference describes: reported, never processed. */
  readonly unknownStatus?: true;
}

/** One page of the list. */
export interface ListPage {
  readonly lines: readonly ListedLine[];
  /** Items that could not be read: reported, never processed. */
  readonly invalid: readonly { readonly id: string | undefined; readonly reason: string }[];
  /** Where the next page is; undefined on the last one. */
  readonly next: string | undefined;
}

/** The service's answer to a DELETE, as received and read; whether the line is gone is the core's call. */
export interface DeleteReply {
  /** 200, 202 or 204 (the DELETE was taken), or 404 / 410 (the line was gone already). */
  readonly status: number;
  readonly contentType: string;
  /** The body exactly as received (kept in the receipt). */
  readonly bytes: Buffer;
  /** Whether the body is a document the service's reader could parse at all. */
  readonly readable: boolean;
  /** What it states of this line, deleted; undefined when it is no such document. */
  readonly statement: FilesStatement | undefined;
}

/**
 * Reads a reply of the service the archive kept (the body of a DELETE reply in a receipt or a
 * pending marker, as received): what it states of line `id`, deleted; undefined when it is no
 * such document. The adapter's reading, so a kept reply is read as a live one is.
 */
export type ReadKeptReply = (id: string, body: string) => FilesStatement | undefined;

/** The tokens service: list, read a line, open a file, delete. */
export interface TokensApi {
  /** One page of the list: the first, or the one `next` names (a page's `next`). */
  listPage(next?: string): Promise<ListPage>;
  /**
   * The line, read and checked (an invalid document throws a `DocumentError`), or `gone`.
   * `signal` replaces the run's deadline (for the check that follows a DELETE already sent).
   * `urgent`: the read before a DELETE, or confirming one, goes ahead of requests waiting for a cap.
   */
  getLine(
    id: string,
    options?: { readonly signal?: AbortSignal; readonly urgent?: boolean },
  ): Promise<LineRead>;
  /** Sends the DELETE; the reply as received and read (see {@link DeleteReply}). */
  deleteLine(id: string): Promise<DeleteReply>;
  /** Where a file of a line is downloaded from (refused when it leaves the service). */
  fileUrl(lineId: string, file: LineFile): URL;
  /** Opens the download of one file; the caller consumes or destroys the body. */
  openFile(url: URL, signal?: AbortSignal): Promise<Readable>;
  /** Reads a reply the archive kept (see {@link ReadKeptReply}). */
  readKeptReply(id: string, body: string): FilesStatement | undefined;
}
