/**
 * The root of the housekeeper's error family. Every message names what was wrong (the variable,
 * the line id, the file) and never contains the session key.
 */
export class HousekeepingError extends Error {
  override readonly name: string = 'HousekeepingError';
  /** Whether a fresh attempt of the same operation may succeed. */
  readonly retryable: boolean = false;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
