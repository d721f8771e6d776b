/**
 * Where a measured process spent its CPU (issue 22): a V8 `.cpuprofile` (from `npm run bench --
 * --cpu-prof DIR`) summarised by self time, each sample's function mapped through the bundle's
 * source map to its original file, then grouped by package or, for Node's own modules and the
 * project's files, by role.
 *
 *   npx tsx test/bench/profile.ts DIR/examples-housekeeper-1.cpuprofile [DIR/worker.mjs.map]
 *
 * The map defaults to `worker.mjs.map` beside the profile (the bench copies the bundle and its map
 * there). Prints Markdown on stdout. Profiling slows the process: the figures of a profiled bench
 * run are not the bench's figures.
 */
import { readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { table } from './table.ts';

/** The parts of V8's profile format read here. */
interface CpuProfile {
  readonly nodes: readonly {
    readonly id: number;
    readonly callFrame: {
      readonly functionName: string;
      readonly url: string;
      readonly lineNumber: number;
      readonly columnNumber: number;
    };
    readonly children?: readonly number[];
  }[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
  readonly startTime: number;
  readonly endTime: number;
}

/** Self time of one group or function, in ms and as a share of the busy (not idle) time. */
export interface Share {
  readonly name: string;
  readonly ms: number;
  readonly percent: number;
}

export interface ProfileSummary {
  /** From the first sample to the last. */
  readonly totalMs: number;
  /** Not `(idle)`: what the shares are of. */
  readonly busyMs: number;
  readonly groups: readonly Share[];
  readonly packages: readonly Share[];
  readonly functions: readonly Share[];
}

/** Node's own modules, by role. */
const NODE_GROUPS: readonly [RegExp, string][] = [
  [/^node:internal\/crypto|^node:crypto/, 'node: crypto (hashing)'],
  [/^node:internal\/streams|^node:stream|^node:internal\/webstreams/, 'node: streams (plumbing)'],
  [/^node:_http|^node:http|^node:internal\/http/, 'node: http (the SDK’s transport)'],
  [/^node:net|^node:internal\/stream_base_commons|^node:internal\/net|^node:internal\/dns/, 'node: sockets'],
  [/^node:internal\/(process\/task_queues|timers|async_hooks)|^node:timers/, 'node: event loop, timers'],
  [/^node:internal\/(url|querystring)|^node:url/, 'node: URLs'],
  [
    /^node:internal\/(util|errors|validators)|^node:util|^node:events|^node:internal\/event_target/,
    'node: events, util',
  ],
  [/^node:buffer|^node:internal\/buffer/, 'node: buffers'],
  [/^node:internal\/(abort_controller|per_context\/domexception)/, 'node: AbortSignal, DOMException'],
  [/^node:inspector/, 'the profiler itself (stopping it, node:inspector)'],
];

/**
 * A function without a script (C++ bindings and V8 builtins), by what it does: its name, and for
 * the ambiguous `parse` its caller's script (URL parsing is `parse` too).
 */
function nativeGroup(name: string, callerUrl: string): string | undefined {
  if (name.startsWith('(')) return name;
  if (/^write(v|Buffer|Latin1String|Utf8String|AsciiString|Ucs2String)$/.test(name)) return 'node: sockets';
  if (name === 'memoryUsage' || name === 'cpuUsage') return 'bench harness (request counter, heap sampler)';
  if (/^(decodeUTF8|encodeInto|encodeUtf8String|decode)$/.test(name)) return 'text encoding (native)';
  if ((name === 'parse' || name === 'stringify') && !callerUrl.startsWith('node:internal/url'))
    return 'JSON (parse, stringify)';
  if (name === 'parse' || name === 'canParse') return 'node: URLs';
  if (/^(update|digest|hash|Hash)$/.test(name)) return 'node: crypto (hashing)';
  return undefined;
}

function shortUrl(url: string): string {
  return url.startsWith('file:') ? url.slice(url.lastIndexOf('/') + 1) : url || '(native)';
}

/** Packages, by what they do for a line. */
function packageGroup(pkg: string): string {
  if (pkg.startsWith('@smithy/') || pkg === '@aws-sdk/core' || pkg.startsWith('@aws-sdk/middleware-'))
    return 'AWS SDK: smithy core, middleware, serde';
  if (pkg === '@aws-sdk/checksums' || pkg.startsWith('@aws-crypto/') || pkg.includes('crc'))
    return 'AWS SDK: checksums';
  if (pkg.startsWith('@aws-sdk/')) return 'AWS SDK: clients, signing, credentials';
  if (pkg.startsWith('@aws-lambda-powertools/')) return 'Powertools (logger, metrics)';
  if (pkg === 'undici') return 'undici (tokens service HTTP)';
  if (pkg === 'zod') return 'zod (parsing)';
  return `other package: ${pkg}`;
}

function packageOf(source: string): string | undefined {
  const at = source.lastIndexOf('node_modules/');
  if (at === -1) return undefined;
  const [first = '', second = ''] = source.slice(at + 'node_modules/'.length).split('/');
  return first.startsWith('@') ? `${first}/${second}` : first;
}

/** The project's files by folder: `ours: lambda/archive`, `bench harness`. */
function projectGroup(source: string): string {
  const lambda = /(?:^|\/)lambda\/([^/]+)\//.exec(source);
  if (lambda !== undefined && lambda !== null) return `ours: lambda/${lambda[1]}`;
  if (/(?:^|\/)test\/bench\//.test(source)) return 'bench harness (request counter, heap sampler)';
  if (!source.includes('/')) return source;
  return `ours: ${source}`;
}

/** Summarises `profile`; `map` is the source map of the bundle its frames point into. */
export function summariseProfile(
  profile: CpuProfile,
  map?: { bundleName: string; payload: unknown },
): ProfileSummary {
  const sourceMap = map === undefined ? undefined : new SourceMap(map.payload as never);
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map<number, CpuProfile['nodes'][number]>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) {
      const found = byId.get(child);
      if (found !== undefined) parents.set(found.id, node);
    }
  }
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const groups = new Map<string, number>();
  const packages = new Map<string, number>();
  const functions = new Map<string, number>();
  const add = (to: Map<string, number>, name: string, us: number) => to.set(name, (to.get(name) ?? 0) + us);
  let busyUs = 0;
  type Node = CpuProfile['nodes'][number];
  interface Place {
    readonly group: string;
    readonly pkg: string;
    readonly where: string;
  }
  const places = new Map<number, Place>();
  const placeOf = (node: Node): Place => {
    const known = places.get(node.id);
    if (known !== undefined) return known;
    const { functionName, url, lineNumber, columnNumber } = node.callFrame;
    let place: Place;
    if (url === '') {
      const parent = parents.get(node.id);
      const named = nativeGroup(functionName, parent?.callFrame.url ?? '');
      const where = `${functionName || '(anonymous builtin)'} (native, from ${shortUrl(parent?.callFrame.url ?? '')})`;
      // A native without a role of its own (a RegExp, a microtask run) counts to its caller's.
      const caller = named === undefined && parent !== undefined ? placeOf(parent) : undefined;
      place = {
        group: named ?? caller?.group ?? `native: ${functionName}`,
        pkg: named ?? caller?.pkg ?? `native: ${functionName}`,
        where,
      };
    } else if (url.startsWith('node:')) {
      place = {
        group: NODE_GROUPS.find(([pattern]) => pattern.test(url))?.[1] ?? `node: other (${url})`,
        pkg: url,
        where: `${functionName || '(anonymous)'} ${url}:${lineNumber + 1}`,
      };
    } else {
      const entry =
        sourceMap !== undefined && map !== undefined && url.endsWith(`/${map.bundleName}`)
          ? (sourceMap.findEntry(lineNumber, columnNumber) as {
              originalSource?: string;
              originalLine?: number;
              name?: string;
            })
          : {};
      // Unmapped places in the bundle are esbuild's own module wrappers (`__esm`, `__commonJS`).
      const source = entry.originalSource ?? 'esbuild module wrappers (unmapped)';
      const found = packageOf(source);
      const pkg = found ?? projectGroup(source);
      const file = source.slice(
        Math.max(0, source.lastIndexOf(found === undefined ? 'lambda/' : 'node_modules/')),
      );
      place = {
        group: found === undefined ? pkg : packageGroup(found),
        pkg,
        where: `${entry.name ?? (functionName || '(anonymous)')} ${file}:${(entry.originalLine ?? lineNumber) + 1}`,
      };
    }
    places.set(node.id, place);
    return place;
  };
  for (const node of profile.nodes) {
    const us = selfUs.get(node.id) ?? 0;
    if (us === 0 || node.callFrame.functionName === '(idle)') continue;
    busyUs += us;
    const place = placeOf(node);
    add(groups, place.group, us);
    add(packages, place.pkg, us);
    add(functions, place.where, us);
  }
  const shares = (from: Map<string, number>): Share[] =>
    [...from]
      .map(([name, us]) => ({
        name,
        ms: Math.round(us / 100) / 10,
        percent: Math.round((us / Math.max(1, busyUs)) * 1000) / 10,
      }))
      .sort((a, b) => b.ms - a.ms);
  return {
    totalMs: Math.round((profile.endTime - profile.startTime) / 1000),
    busyMs: Math.round(busyUs / 1000),
    groups: shares(groups),
    packages: shares(packages),
    functions: shares(functions),
  };
}

/** The summary as Markdown: groups, packages and the top functions by self time. */
export function renderProfile(title: string, summary: ProfileSummary, top = 15): string {
  const rows = (shares: readonly Share[], count: number) =>
    shares.slice(0, count).map((share) => [share.name, share.ms, `${share.percent} %`]);
  return [
    `### CPU profile: ${title}`,
    `${summary.busyMs} ms busy (not idle) of ${summary.totalMs} ms profiled; shares are of the busy time, self time only.`,
    table(['Group', 'Self ms', 'Share'], rows(summary.groups, summary.groups.length)),
    table(['Package or module', 'Self ms', 'Share'], rows(summary.packages, top)),
    table(['Function (original source)', 'Self ms', 'Share'], rows(summary.functions, top)),
    '',
  ].join('\n\n');
}

function main(argv: readonly string[]): void {
  const [profileFile, mapArg] = argv;
  if (profileFile === undefined) {
    process.stderr.write('usage: tsx test/bench/profile.ts FILE.cpuprofile [BUNDLE.mjs.map]\n');
    process.exitCode = 2;
    return;
  }
  const mapFile = mapArg ?? join(dirname(profileFile), 'worker.mjs.map');
  const profile = JSON.parse(readFileSync(profileFile, 'utf8')) as CpuProfile;
  const payload = JSON.parse(readFileSync(mapFile, 'utf8')) as unknown;
  // The profile names the bundle where it ran (a temporary directory): match it by file name.
  const bundleName = basename(mapFile).replace(/\.map$/, '');
  process.stdout.write(renderProfile(profileFile, summariseProfile(profile, { bundleName, payload })));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2));
}
