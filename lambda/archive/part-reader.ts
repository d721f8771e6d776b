import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { ArchiveError } from '../shared/errors.ts';

/** A part as {@link PartReader} reads it: its bytes and their SHA-256 (base64). */
export type ReadPart = { readonly bytes: Buffer; readonly sha256: string };

/** Reads a stream in parts of exact lengths, splitting chunks at part boundaries. */
export class PartReader {
  readonly #chunks: AsyncIterator<Buffer>;
  readonly #key: string;
  #carry: Buffer | undefined;

  constructor(source: Readable, key: string) {
    this.#chunks = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    this.#key = key;
  }

  /**
   * Fills `bytes` with the next `bytes.length` bytes, and gives their SHA-256 (base64). Throws the
   * source's error.
   */
  async read(bytes: Buffer): Promise<ReadPart> {
    const length = bytes.length;
    const hash = createHash('sha256');
    let filled = 0;
    while (filled < length) {
      let chunk = this.#carry;
      this.#carry = undefined;
      if (chunk === undefined) {
        const next = await this.#chunks.next();
        // The verifier errors on a short body first; this only guards the arithmetic.
        if (next.done)
          throw new ArchiveError(this.#key, `the body ended ${length - filled} bytes before part end`);
        chunk = next.value;
      }
      if (chunk.length > length - filled) {
        this.#carry = chunk.subarray(length - filled);
        chunk = chunk.subarray(0, length - filled);
      }
      chunk.copy(bytes, filled);
      hash.update(chunk);
      filled += chunk.length;
    }
    return { bytes, sha256: hash.digest('base64') };
  }

  /** Resolves when the source ends cleanly after the last part; throws its error otherwise. */
  async end(): Promise<void> {
    const next = this.#carry === undefined ? await this.#chunks.next() : { done: false };
    // The verifier refuses a byte more than stated before this sees it.
    if (!next.done) throw new ArchiveError(this.#key, 'the body has more bytes than stated');
  }
}
