import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { IntegrityError } from './errors.ts';

/** What a file must be: its line, its name, and the size and hash the line states. */
export interface Expectation {
  readonly lineId: string;
  readonly file: string;
  readonly size: number;
  /** Lowercase hex SHA-256. */
  readonly sha256: string;
}

/**
 * A pass-through stage that hashes and counts the bytes, and fails the stream when they are
 * not the stated size and SHA-256.
 *
 * It holds back the most recent chunk until the end, so the stage downstream (the S3 upload)
 * never receives the complete file unless it is verified: a mismatch errors the stream one
 * chunk short, and the upload, which knows the stated length, can never complete. Reading stops
 * at the stated size plus one byte, so an endless or oversized body cannot run on.
 */
export class Verifier extends Transform {
  readonly #expected: Expectation;
  readonly #hash: Hash = createHash('sha256');
  #bytes = 0;
  #held: Buffer | undefined;
  #digest: string | undefined;

  constructor(expected: Expectation) {
    super();
    this.#expected = expected;
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The verified hex SHA-256, once the stream has ended successfully. */
  get sha256(): string | undefined {
    return this.#digest;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    // An empty chunk must not take the place of the held one: that would release the whole file.
    if (chunk.length === 0) {
      callback();
      return;
    }
    this.#bytes += chunk.length;
    if (this.#bytes > this.#expected.size) {
      callback(this.#error(`more bytes than the stated ${this.#expected.size}`, undefined));
      return;
    }
    this.#hash.update(chunk);
    const release = this.#held;
    this.#held = chunk;
    if (release !== undefined) this.push(release);
    callback();
  }

  override _flush(callback: TransformCallback): void {
    const actual = this.#hash.digest('hex');
    if (this.#bytes !== this.#expected.size) {
      callback(this.#error(`got ${this.#bytes} bytes, stated ${this.#expected.size}`, actual));
      return;
    }
    if (actual !== this.#expected.sha256) {
      callback(this.#error(`SHA-256 is ${actual}, stated ${this.#expected.sha256}`, actual));
      return;
    }
    this.#digest = actual;
    if (this.#held !== undefined) this.push(this.#held);
    this.#held = undefined;
    callback();
  }

  #error(problem: string, sha256: string | undefined): IntegrityError {
    const { lineId, file, size, sha256: expectedSha } = this.#expected;
    return new IntegrityError(
      lineId,
      file,
      { size, sha256: expectedSha },
      sha256 === undefined ? { size: this.#bytes } : { size: this.#bytes, sha256 },
      problem,
    );
  }
}

/** Hex SHA-256 to the base64 form S3 uses in `x-amz-checksum-sha256`. */
export function hexToBase64(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64');
}

/** Base64 SHA-256 from S3 back to hex. */
export function base64ToHex(base64: string): string {
  return Buffer.from(base64, 'base64').toString('hex');
}
