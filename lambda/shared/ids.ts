/** Line ids and file names: checked before they can become a URL path or an S3 key. */
import { UnsafeReferenceError } from './errors.ts';

/** One downloadable file of a finished line, as the line states it. */
export interface LineFile {
  /** A short `[a-z0-9_-]` word: safe as a URL path segment and an S3 key segment. */
  readonly name: string;
  readonly size: number;
  /** Lowercase hex SHA-256. */
  readonly sha256: string;
  /** The link the reply gives for this file, unresolved; absent when the reply links none. */
  readonly link: string | undefined;
}

/** A UUID, in either case. */
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** A file name of a line: a short `[a-z0-9_-]` word. */
export const FILE_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/** Whether a value is a line id: a UUID (either case), and so safe in a URL path and an S3 key. */
export function isLineId(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

/**
 * The id in its canonical form, lower case (UUIDs are case-insensitive, RFC 9562), when it is a
 * UUID; otherwise an {@link UnsafeReferenceError}, before the value can become a URL path or an S3
 * key. `what` names it ("line id", "run id"). One line has one archive prefix whatever the case.
 */
export function safeId(value: string, what = 'line id'): string {
  if (!isLineId(value)) throw new UnsafeReferenceError(`${what} ${JSON.stringify(value)} is not a UUID`);
  return value.toLowerCase();
}

/** Whether two line ids name the same line (UUIDs compare case-insensitively). */
export function sameLineId(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** The file name itself, when it is a short `[a-z0-9_-]` word; otherwise an {@link UnsafeReferenceError}. */
export function safeFileName(value: string): string {
  if (!FILE_NAME.test(value)) {
    throw new UnsafeReferenceError(`file name ${JSON.stringify(value)} is not a safe word`);
  }
  return value;
}
