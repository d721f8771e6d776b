/** Reads the tokens service's session key and keeps it for a short while. */
export interface SessionKeySource {
  /** The key, from the cache while it is fresh. */
  get(): Promise<string>;
  /** Forget the cached key (the service refused it: it may have been rotated). */
  invalidate(): void;
}
