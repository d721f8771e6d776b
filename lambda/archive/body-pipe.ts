import { type Duplex, finished, type Readable } from 'node:stream';

/**
 * `body` piped into `through`, as `pipeline(body, through)` does it, without the AbortController
 * that every `pipeline()` builds and aborts when it settles (a DOMException with a stack, per
 * file; issue 22). Resolves once `through` has taken the whole body (its writable side finished:
 * a verifier's final check passed); rejects with the first error of either stream, or a premature
 * close, and destroys both with it. The caller reads `through`.
 */
export function pipeInto(body: Readable, through: Duplex): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      through.destroy(error);
      body.destroy(error);
      reject(error);
    };
    // Each listener stays: an error either stream raises later (while it is destroyed) is handled.
    finished(body, { writable: false }, (error) => {
      if (error !== undefined && error !== null) fail(error);
    });
    finished(through, { readable: false }, (error) => {
      if (error !== undefined && error !== null) fail(error);
      else if (!settled) {
        settled = true;
        resolve();
      }
    });
    body.pipe(through);
  });
}

/**
 * `body` read whole through `through` into one buffer of at most `size` bytes, resolved only
 * once `through` has ended: for a verifier, once the size and SHA-256 are proven, so a body sent
 * from it is verified before its request starts. Fails as {@link pipeInto} does.
 */
export async function readWhole(body: Readable, through: Duplex, size: number): Promise<Buffer> {
  const bytes = Buffer.allocUnsafe(size);
  let at = 0;
  // A verifier stops a body at its stated size; `copy` would cut a longer one all the same.
  through.on('data', (chunk: Buffer) => {
    at += chunk.copy(bytes, at);
  });
  const ended = new Promise<void>((resolve, reject) => {
    finished(through, { writable: false }, (error) =>
      error === undefined || error === null ? resolve() : reject(error),
    );
  });
  await Promise.all([pipeInto(body, through), ended]);
  return at === size ? bytes : bytes.subarray(0, at);
}
