import type { ByteBudget } from './budget.ts';

/** A part buffer held from {@link PartBuffers}: given back once, by `recycle` or `discard`. */
export interface PartBuffer {
  /** The buffer, of the size asked for (a shorter last part uses the start of it). */
  readonly bytes: Buffer;
  /**
   * Gives the buffer back for the next part: only once S3 has answered the part's request with
   * success, when every byte has been written to the socket and no retry will send it again.
   */
  recycle(): void;
  /**
   * Gives the bytes back to the budget but never the buffer to the pool: a part that failed, was
   * aborted or was abandoned mid-read may still be read by a socket or written by its read.
   */
  discard(): void;
}

/**
 * Part buffers recycled within the process's {@link ByteBudget}: a part takes a buffer once the
 * budget admits it, and a part S3 took gives it back for the next part, so the process does not
 * allocate a fresh buffer per part and leave the old ones for the garbage collector (V8 collects
 * them only once enough external memory has piled up). The buffers allocated, held and free
 * together, stay within the budget; a buffer larger than the whole budget is never kept.
 */
export class PartBuffers {
  readonly budget: ByteBudget;
  readonly #free: Buffer[] = [];
  #freeBytes = 0;

  constructor(budget: ByteBudget) {
    this.budget = budget;
  }

  /** Bytes of buffers kept for reuse, held by no part. */
  get freeBytes(): number {
    return this.#freeBytes;
  }

  /**
   * A buffer of `size` bytes, once the budget admits them. Rejects with the signal's reason when
   * it aborts first (nothing is then held).
   */
  async take(size: number, signal?: AbortSignal): Promise<PartBuffer> {
    const held = await this.budget.acquire(size, signal);
    const bytes = this.#reuse(size) ?? this.#allocate(size);
    let given = false;
    const giveBack = (keep: boolean) => {
      if (given) return;
      given = true;
      this.budget.release(held);
      // A buffer larger than the budget stays out of the pool: it would hold more than the budget.
      if (keep && held === size) {
        this.#free.push(bytes);
        this.#freeBytes += size;
      }
    };
    return { bytes, recycle: () => giveBack(true), discard: () => giveBack(false) };
  }

  /**
   * `size` bytes of the budget for a buffer held outside the pool (a small file read whole), once
   * the budget admits them, with free buffers dropped to make room: the pool and every holder
   * together stay within the budget. The function given back releases them, once.
   */
  async hold(size: number, signal?: AbortSignal): Promise<() => void> {
    const held = await this.budget.acquire(size, signal);
    this.#trim();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.budget.release(held);
    };
  }

  #reuse(size: number): Buffer | undefined {
    const at = this.#free.findIndex((buffer) => buffer.length === size);
    if (at < 0) return undefined;
    const [buffer] = this.#free.splice(at, 1);
    this.#freeBytes -= size;
    return buffer;
  }

  #allocate(size: number): Buffer {
    // Buffers of another size (a file with larger parts) go to the collector to make room.
    this.#trim();
    return Buffer.allocUnsafeSlow(size);
  }

  /** Drops free buffers until what is held and what is free fit within the budget together. */
  #trim(): void {
    while (this.budget.used + this.#freeBytes > this.budget.capacity && this.#free.length > 0) {
      this.#freeBytes -= this.#free.shift()?.length ?? 0;
    }
  }
}
