import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BuildOptions, build, type Metafile } from 'esbuild';

/** Repository root, where the entries and node_modules are resolved from. */
export const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * esbuild options equal to the `NodejsFunction` bundling in infra/constructs/housekeeper-function.ts: what
 * `cdk synth` runs (`esbuild --bundle entry --target=node24 --platform=node --format=esm
 * --outfile=index.mjs --minify --sourcemap --banner:js=... --main-fields=module,main`, no
 * externals).
 */
export const CDK_BUNDLING: BuildOptions = {
  bundle: true,
  target: 'node24',
  platform: 'node',
  format: 'esm',
  minify: true,
  sourcemap: true,
  sourcesContent: false,
  banner: {
    js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
  },
  mainFields: ['module', 'main'],
  absWorkingDir: PROJECT_ROOT,
  logLevel: 'silent',
};

/** One bundle and what went into it. */
export interface Bundle {
  readonly file: string;
  readonly bytes: number;
  readonly sourceMapBytes: number;
  readonly metafile: Metafile;
}

/** Bundles `entry` (relative to the repository root) to `{outDir}/{name}.mjs` with the CDK's options. */
export async function bundle(entry: string, outDir: string, name: string): Promise<Bundle> {
  const file = join(outDir, `${name}.mjs`);
  const result = await build({ ...CDK_BUNDLING, entryPoints: [entry], outfile: file, metafile: true });
  return {
    file,
    bytes: (await stat(file)).size,
    sourceMapBytes: (await stat(`${file}.map`)).size,
    metafile: result.metafile,
  };
}

/** An input file's share of a bundle. */
export interface Contributor {
  readonly path: string;
  readonly bytes: number;
}

/** The inputs that put the most bytes into the bundle, largest first. */
export function topInputs(metafile: Metafile, count: number): Contributor[] {
  const inputs = Object.values(metafile.outputs).flatMap((output) =>
    Object.entries(output.inputs).map(([path, { bytesInOutput }]) => ({ path, bytes: bytesInOutput })),
  );
  return inputs.sort((a, b) => b.bytes - a.bytes).slice(0, count);
}

/** The same by npm package (`@scope/name`), or `(project)` for the repository's own files. */
export function topPackages(metafile: Metafile, count: number): Contributor[] {
  const byPackage = new Map<string, number>();
  for (const output of Object.values(metafile.outputs)) {
    for (const [path, { bytesInOutput }] of Object.entries(output.inputs)) {
      const name = packageOf(path);
      byPackage.set(name, (byPackage.get(name) ?? 0) + bytesInOutput);
    }
  }
  return [...byPackage]
    .map(([path, bytes]) => ({ path, bytes }))
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, count);
}

function packageOf(path: string): string {
  const at = path.lastIndexOf('node_modules/');
  if (at === -1) return '(project)';
  const [first = '', second = ''] = path.slice(at + 'node_modules/'.length).split('/');
  return first.startsWith('@') ? `${first}/${second}` : first;
}
