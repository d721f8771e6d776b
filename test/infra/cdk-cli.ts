import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { offlineEnv, run } from './offline.ts';
import { SECRET_NAME } from './synth.ts';

/** `cdk synth` run as an operator runs it, and what it wrote. */

/** What the CLI needs to synthesize the stack: the two required context keys. */
export const REQUIRED_CONTEXT = { tokensApiUrl: 'https://tokens.example.com', sessionKeySecret: SECRET_NAME };

/** A test that runs the cdk CLI, which bundles every function: a minute or more on a busy machine. */
export const CLI_TEST = { timeout: 120_000 } as const;

/**
 * `cdk synth` as an operator runs it, on a machine with no AWS credentials: a fresh home for the
 * file's tests, removed after them. `synth(context, out)` runs
 * `npx cdk synth --quiet --no-notices -c key=value ... -o <home>/<out>`.
 */
export function offlineCdk(prefix: string) {
  let home = '';
  beforeAll(() => {
    home = mkdtempSync(join(tmpdir(), prefix));
  });
  afterAll(() => {
    rmSync(home, { recursive: true, force: true });
  });
  return {
    /** The offline environment of the home. */
    env: (): NodeJS.ProcessEnv => offlineEnv(home),
    /** What the CLI printed and how it exited, and the output folder it wrote. */
    synth: async (context: Readonly<Record<string, string>>, out: string) => {
      const outdir = join(home, out);
      const contextArgs = Object.entries(context).flatMap(([key, value]) => ['-c', `${key}=${value}`]);
      const { code, output } = await run(
        'npx',
        ['cdk', 'synth', '--quiet', '--no-notices', ...contextArgs, '-o', outdir],
        offlineEnv(home),
      );
      return { code, output, outdir };
    },
  };
}

/** What the cdk-nag plugin reported into `outdir` (an empty list when nothing was found). */
export function pluginReports(outdir: string): unknown[] {
  return (
    JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as { pluginReports: unknown[] }
  ).pluginReports;
}

/** A resource of a template `cdk synth` wrote. */
export interface WrittenResource {
  readonly Type: string;
  readonly Metadata?: Record<string, string>;
  readonly Properties: Record<string, unknown> & {
    Description?: string;
    Environment?: { Variables?: Record<string, string> };
  };
}

/** The resources of the stack's template that `cdk synth` wrote into `outdir`. */
export function writtenResources(outdir: string): WrittenResource[] {
  const template = JSON.parse(readFileSync(join(outdir, 'TokensHousekeeper.template.json'), 'utf8')) as {
    Resources: Record<string, WrittenResource>;
  };
  return Object.values(template.Resources);
}
