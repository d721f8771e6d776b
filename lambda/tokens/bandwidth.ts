/**
 * The cap on bytes read from the tokens service (`MAX_BYTES_PER_SECOND`): one {@link BandwidthCap}
 * per process, shared by every line, file and JSON reply, so the cap holds for all of them together.
 */
import { TokenBucket } from 'limiter';

/** Lets bytes read from the service through, at most so many per second across the process. */
export interface ByteGate {
  /** The most bytes one {@link ByteGate.take} may ask for: a larger chunk goes through in pieces. */
  readonly largestTake: number;
  /**
   * Resolves once `bytes` (at most {@link ByteGate.largestTake}) may be handed on; waiters are
   * served first come, first served, except that an `urgent` one (the body of a read a DELETE rests
   * on, of the DELETE's reply, of the read that confirms it) goes before every waiter that is not.
   * Rejects with the signal's reason as soon as it aborts, and the waiter gives up its place (no
   * bytes are spent for it).
   */
  take(bytes: number, signal?: AbortSignal, urgent?: boolean): Promise<void>;
}

/** The share of the cap the bucket holds: the most a timer that fires late can let through at once. */
const BUCKET_SHARE = 0.05;
/**
 * The least share of the cap kept free for what is read from the socket ahead of the gate: each
 * open download holds a chunk or two before its bytes are granted (see `watchedBody`); with many
 * downloads at once, the headroom is what they may read ahead together, when that is more.
 */
const HEADROOM_SHARE = 0.1;

/**
 * A token bucket (limiter's) of 5% of the cap, filled at what is left of it after the headroom
 * (85% of it, less with many downloads at once), and starting empty: any one-second window grants
 * at most the bucket plus one second of refill, which leaves the headroom for what the streams
 * read ahead of the gate. The bucket is also what a timer
 * that fires late (a busy event loop, a frozen container) may release at once: it never fills past
 * it, so no catch-up burst follows a stall. A take is at most half the bucket, so a waiter never
 * needs a full one (its timer, rounded up to the millisecond, would let refill spill over).
 *
 * limiter's own waiting (`removeTokens`) cannot be aborted, so the waiting here is its own: a
 * first-come, first-served line (urgent waiters ahead of the others), with one timer for the whole
 * line, that a waiter leaves when its signal aborts, over limiter's `tryRemoveTokens` and
 * `getWaitTime`.
 */
export class BandwidthCap implements ByteGate {
  readonly largestTake: number;
  /** The bucket: the most granted at once, after a pause or a stall (5% of the cap). */
  readonly bucketBytes: number;
  /**
   * Bytes per second the bucket fills at: what a saturated cap sustains (85% of it, or the cap
   * less the bucket and the read-ahead of the downloads, when that is less).
   */
  readonly sustainedBytesPerSecond: number;
  readonly #bucket: TokenBucket;
  readonly #line: { readonly bytes: number; readonly urgent: boolean; readonly grant: () => void }[] = [];
  #timer: NodeJS.Timeout | undefined;

  /**
   * `bytesPerSecond`: the cap, a whole number of at least 40 (`MAX_BYTES_PER_SECOND`).
   * `readAheadBytes`: the most the process's open downloads together may take off their sockets
   * before the gate grants it (`BYTES_READ_AHEAD_PER_DOWNLOAD` for each); at most half the cap.
   */
  constructor(bytesPerSecond: number, readAheadBytes = 0) {
    if (!Number.isSafeInteger(bytesPerSecond) || bytesPerSecond < 40) {
      throw new RangeError(`a byte cap is a whole number of at least 40 per second, got ${bytesPerSecond}`);
    }
    if (!Number.isSafeInteger(readAheadBytes) || readAheadBytes < 0 || readAheadBytes > bytesPerSecond / 2) {
      throw new RangeError(
        `a byte cap of ${bytesPerSecond} per second keeps at most half of it for read-ahead, got ${readAheadBytes} bytes`,
      );
    }
    this.bucketBytes = Math.floor(bytesPerSecond * BUCKET_SHARE);
    this.largestTake = Math.floor(this.bucketBytes / 2);
    const headroom = Math.max(Math.ceil(bytesPerSecond * HEADROOM_SHARE), readAheadBytes);
    this.sustainedBytesPerSecond = bytesPerSecond - this.bucketBytes - headroom;
    // limiter's bucket starts empty: the first second lets through one second of refill, no more.
    this.#bucket = new TokenBucket({
      bucketSize: this.bucketBytes,
      tokensPerInterval: this.sustainedBytesPerSecond,
      interval: 1000,
    });
  }

  take(bytes: number, signal?: AbortSignal, urgent = false): Promise<void> {
    if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > this.largestTake) {
      return Promise.reject(
        new RangeError(`a take is a whole number of bytes up to ${this.largestTake}, got ${bytes}`),
      );
    }
    if (signal?.aborted === true) return Promise.reject(signal.reason);
    if (bytes === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const at = this.#line.indexOf(waiter);
        if (at !== -1) this.#line.splice(at, 1);
        // The first in line had the timer: the next one waits for its own bytes only.
        if (at === 0) this.#serve();
        reject(signal?.reason);
      };
      const waiter = {
        bytes,
        urgent,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      // An urgent waiter goes after the urgent ones already waiting, before all the others.
      const at = urgent ? this.#line.findIndex((other) => !other.urgent) : -1;
      const place = at === -1 ? this.#line.length : at;
      this.#line.splice(place, 0, waiter);
      // A new first in line waits for its own bytes: the timer of the one it went before is reset.
      if (place === 0) this.#serve();
    });
  }

  /** Grants the waiters in turn while the bucket has their bytes; then waits for the first one's. */
  #serve(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (let first = this.#line[0]; first !== undefined; first = this.#line[0]) {
      if (!this.#bucket.tryRemoveTokens(first.bytes)) {
        const waitMs = Math.max(1, this.#bucket.getWaitTime(first.bytes));
        this.#timer = setTimeout(() => this.#serve(), waitMs);
        return;
      }
      this.#line.shift();
      first.grant();
    }
  }
}

/**
 * Hands `chunk` on through `gate`: in pieces of at most {@link ByteGate.largestTake}, each passed
 * to `pass` as soon as it is granted (so what is handed on never runs ahead of what was granted).
 */
export async function passThroughGate(
  gate: ByteGate,
  chunk: Buffer,
  signal: AbortSignal | undefined,
  pass: (piece: Buffer) => void,
  urgent = false,
): Promise<void> {
  for (let at = 0; at < chunk.length; at += gate.largestTake) {
    const piece = chunk.subarray(at, at + gate.largestTake);
    await gate.take(piece.length, signal, urgent);
    pass(piece);
  }
}
