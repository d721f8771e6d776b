import { loadConfig } from '../../lambda/app/config.ts';

/** The variable that sets the housekeeper's memory budget for part buffers (issue 13). */
export const BUDGET_VARIABLE = 'UPLOAD_BUFFER_BYTES';

type Env = Readonly<Record<string, string | undefined>>;

const MIB = 1024 * 1024;
/** Two values any sane budget range accepts; only their difference matters. */
const PROBES = [64 * MIB, 128 * MIB] as const;

/**
 * The budget in force for a housekeeper run with `env`, in bytes, as the product's own
 * `loadConfig` reads it (its default when the variable is unset), or undefined while the product
 * reads no such variable. The bench does not assume where the product keeps the value: it loads
 * the configuration with two probe values and takes the one setting that follows them.
 */
export function uploadBufferBytes(env: Env): number | undefined {
  const [low, high] = PROBES.map((bytes) => loadConfig({ ...env, [BUDGET_VARIABLE]: String(bytes) }));
  const path = numericPaths(low).find(
    (candidate) => valueAt(low, candidate) === PROBES[0] && valueAt(high, candidate) === PROBES[1],
  );
  if (path === undefined) return undefined;
  const value = valueAt(loadConfig(env), path);
  return typeof value === 'number' ? value : undefined;
}

/** Paths of the numbers in a plain object tree (the configuration). */
function numericPaths(value: unknown, prefix: readonly string[] = []): string[][] {
  if (typeof value === 'number') return [[...prefix]];
  if (value === null || typeof value !== 'object' || value instanceof URL) return [];
  return Object.entries(value).flatMap(([key, child]) => numericPaths(child, [...prefix, key]));
}

function valueAt(value: unknown, path: readonly string[]): unknown {
  return path.reduce<unknown>(
    (node, key) =>
      node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined,
    value,
  );
}
