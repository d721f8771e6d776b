/**
 * A process-wide budget of bytes for upload part buffers (`UPLOAD_BUFFER_BYTES`): a part waits
 * for room rather than allocate past it, so memory does not grow with `LINE_CONCURRENCY` x file
 * size. First come, first served; a request larger than the whole budget (a part of a file too
 * large for 10,000 parts of the usual size) waits until the budget is entirely free, then takes
 * it all, so it can never wait forever.
 */
export class ByteBudget {
  readonly capacity: number;
  #used = 0;
  /** Highest `used` seen: what the tests and the bench read. */
  #peak = 0;
  readonly #waiting: { readonly bytes: number; readonly grant: () => void }[] = [];

  constructor(capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1)
      throw new RangeError(`budget ${capacity} is not a byte count`);
    this.capacity = capacity;
  }

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /** The most bytes held at once so far. */
  get peak(): number {
    return this.#peak;
  }

  /**
   * Resolves once `bytes` (at most the capacity) are held for the caller, who must `release` the
   * same number. Rejects with the signal's reason when it aborts first (nothing is then held).
   */
  acquire(requested: number, signal?: AbortSignal): Promise<number> {
    const bytes = Math.min(requested, this.capacity);
    signal?.throwIfAborted();
    if (this.#waiting.length === 0 && this.#used + bytes <= this.capacity) {
      this.#take(bytes);
      return Promise.resolve(bytes);
    }
    return new Promise<number>((resolve, reject) => {
      const entry = {
        bytes,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          this.#take(bytes);
          resolve(bytes);
        },
      };
      const onAbort = () => {
        const at = this.#waiting.indexOf(entry);
        if (at >= 0) this.#waiting.splice(at, 1);
        reject(signal?.reason);
        this.#grantWaiting();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(entry);
    });
  }

  /** Gives back what {@link acquire} granted. */
  release(bytes: number): void {
    if (bytes > this.#used) throw new RangeError(`released ${bytes} bytes, ${this.#used} held`);
    this.#used -= bytes;
    this.#grantWaiting();
  }

  #take(bytes: number): void {
    this.#used += bytes;
    this.#peak = Math.max(this.#peak, this.#used);
  }

  /** Grants waiting requests in order while they fit: the first one that does not, waits. */
  #grantWaiting(): void {
    for (let next = this.#waiting[0]; next !== undefined; next = this.#waiting[0]) {
      if (this.#used + next.bytes > this.capacity) return;
      this.#waiting.shift();
      next.grant();
    }
  }
}
