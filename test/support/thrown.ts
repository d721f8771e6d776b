/**
 * Runs `act` and returns the error of `kind` it threw, failing the test if it returned, and
 * rethrowing any other error as it was.
 */
// biome-ignore lint/suspicious/noExplicitAny: a class of any constructor signature
export function thrownBy<E extends Error>(kind: abstract new (...args: any[]) => E, act: () => unknown): E {
  try {
    act();
  } catch (error) {
    if (error instanceof kind) return error;
    throw error;
  }
  throw new Error(`did not throw a ${kind.name}`);
}
