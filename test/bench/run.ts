/**
 * `npm run bench`: the housekeeper against the local simulator and local S3 on loopback.
 * Prints Markdown tables on stdout, progress on stderr, and writes results/latest.json and
 * results/chart.svg (a complete, full-size run only; `--quick` and `--only` write results/quick.json
 * and results/quick-chart.svg, which git ignores).
 *
 *   npm run bench                      all sections, full sizes (under 10 minutes on 2 cores)
 *   npm run bench -- --quick           every section on small sizes (smoke run, under a minute)
 *   npm run bench -- --only memory,list
 *   npm run bench -- --only throughput --sets small,examples
 *                                      only these throughput sets (keys: small, examples, mid,
 *                                      large-2, large-1, large-2-full, large-1-full, small-rtt)
 *   npm run bench -- --only concurrency --levels 8,16,32 --rtt-only [--latency-lines 512]
 *                                      the sweep at these LINE_CONCURRENCY levels, +20 ms round
 *                                      trips only (no loopback points), with this many lines a run
 *   npm run bench -- --only memory --in-flight 8,16
 *                                      the memory section's large files in flight at these counts
 *                                      only (LINE_CONCURRENCY as many; no file-size runs)
 *   npm run bench -- --out DIR         where to write the JSON and the chart
 *   npm run bench -- --only throughput --sets examples --cpu-prof DIR
 *                                      a V8 CPU profile of each throughput run's work in DIR, with the
 *                                      bundle and its source map; summarise one with
 *                                      npx tsx test/bench/profile.ts DIR/examples-housekeeper-1.cpuprofile
 *
 * Any of --sets, --levels, --rtt-only, --latency-lines, --in-flight or --cpu-prof makes the run
 * partial (written as quick.json); a profiled process runs slower, so its figures are not
 * comparable with an unprofiled run.
 */
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { bundle, PROJECT_ROOT } from './bundles.ts';
import { renderChart } from './chart.ts';
import { describeMachine } from './machine.ts';
import { measure } from './measure.ts';
import { type BenchResults, renderTables, resultFiles } from './report.ts';
import { runRequestSequences } from './request-sequence.ts';
import {
  runColdStart,
  runConcurrency,
  runListScale,
  runMemory,
  runThroughput,
  SECTIONS,
  type Section,
  type SectionResults,
} from './sections.ts';
import { FULL, QUICK, type Sizes } from './sets.ts';

const NOTES = [
  'Everything on loopback: the simulator, local S3 (fauxqs) and local Secrets Manager run in the bench process; each measured tool runs in its own child process, from one bundle built like the Lambda function, started as Lambda starts it (the runtime flags for 1024 MB, the stack NODE_OPTIONS); each tool loads only its own modules.',
  'Each measurement starts a fresh local stack. MB = 10^6 bytes. Wall time runs from the start of the work to its end, process start-up excluded.',
  'Peak RSS is VmHWM of the child process (getrusage maxrss of a forked child would include the parent); RSS at start is taken once the tool is loaded, before the work.',
  'CPU s proc/servers: CPU seconds of the measured process / of the bench process (simulator + local S3) meanwhile.',
  'Requests/line: requests to the tokens service + to S3 over lines done (listings and the run report included, shared over the lines; the secret read left out).',
  'Fixed s: the median wall time of 3 runs of the same tool on an empty service (no finished line) under the same settings: what the command spends on its start and end within the work. Start-adj. ratio = (reference wall - its fixed) / (housekeeper wall - its fixed).',
  'CPU ms/line (less fixed): CPU of the measured process (process.cpuUsage, user + system) over lines done, and the same less the empty run CPU. CPU/line vs copy: the housekeeper less-fixed CPU per line over the reference one.',
  'Repeated runs keep the fastest: the machine is shared, the fastest run is the least disturbed; all repeats are in repeatsMs.',
  'reference = the plain copy script an operator would write (test/bench/reference-copy.ts): each file streamed from the service (undici request) into @aws-sdk/lib-storage Upload, 8 MiB parts, 4 in flight, as many files at once as the housekeeper run it is compared to (4 in the ratio sets), SDK checksums off; no line GET, hashing, read-back, manifest or DELETE. It shares no code with the product.',
  "rule-floor = the rule's requests done as plainly as the copy (test/bench/rule-floor.ts; undici request, client-s3 PutObject, p-limit): per line GET the line, GET each file whole and check size and SHA-256, PutObject it with that checksum, PutObject a manifest, GET the line again and compare, DELETE, PutObject the receipt; no retries, conditions, logging or read-back. Measured on the small, examples and +20 ms sets: what those requests cost with these libraries, whatever the product does.",
  'housekeeper = the CLI with the production defaults, but VERIFY_READBACK as the set says, LINE_CONCURRENCY as the set says (4 in the ratio sets, to match the reference), 30 s body timeout. Budget = UPLOAD_BUFFER_BYTES as the product reads it.',
  'baseline = one line at a time, each file fetched whole into memory, hashed, PutObject (lib-storage Upload from the buffer above the local S3 11 MiB request limit), then DELETE.',
  'Memory goal (issue 13): peak RSS <= RSS at start + UPLOAD_BUFFER_BYTES + 64 MB, flat as files grow (one in flight) and as large files in flight grow.',
];

function parseOptions(argv: readonly string[]) {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      sets: { type: 'string' },
      levels: { type: 'string' },
      'rtt-only': { type: 'boolean', default: false },
      'latency-lines': { type: 'string' },
      'in-flight': { type: 'string' },
      'cpu-prof': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const only = values.only?.split(',').map((s) => s.trim()) ?? [...SECTIONS];
  for (const name of only) {
    if (!(SECTIONS as readonly string[]).includes(name)) {
      throw new Error(`--only: unknown section "${name}"; sections are ${SECTIONS.join(', ')}`);
    }
  }
  const base = values.quick ? QUICK : FULL;
  const sets = values.sets?.split(',').map((s) => s.trim());
  for (const key of sets ?? []) {
    if (!base.throughput.some((spec) => spec.key === key)) {
      throw new Error(
        `--sets: unknown set "${key}"; sets are ${base.throughput.map((spec) => spec.key).join(', ')}`,
      );
    }
  }
  const levels = values.levels?.split(',').map((level) => {
    const n = Number(level.trim());
    if (!Number.isInteger(n) || n < 1) throw new Error(`--levels: "${level}" is not a positive integer`);
    return n;
  });
  const inFlight = values['in-flight']?.split(',').map((level) => {
    const n = Number(level.trim());
    if (!Number.isInteger(n) || n < 1) throw new Error(`--in-flight: "${level}" is not a positive integer`);
    return n;
  });
  const latencyLines = values['latency-lines'] === undefined ? undefined : Number(values['latency-lines']);
  if (latencyLines !== undefined && !(Number.isInteger(latencyLines) && latencyLines > 0)) {
    throw new Error(`--latency-lines: "${values['latency-lines']}" is not a positive integer`);
  }
  const sizes: Sizes = {
    ...base,
    throughput:
      sets === undefined ? base.throughput : base.throughput.filter((spec) => sets.includes(spec.key)),
    memory: { ...base.memory, ...(inFlight === undefined ? {} : { sizes: [], inFlight }) },
    sweep: {
      ...base.sweep,
      ...(levels === undefined ? {} : { levels }),
      ...(values['rtt-only'] ? { latencies: [base.sweep.oneWayLatencyMs] } : {}),
      ...(latencyLines === undefined ? {} : { latencyLines }),
    },
  };
  return {
    quick: values.quick,
    sizes,
    sections: new Set(only as Section[]),
    out: values.out,
    cpuProf: values['cpu-prof'] === undefined ? undefined : resolve(values['cpu-prof']),
    help: values.help,
    partial:
      values.only !== undefined ||
      sets !== undefined ||
      levels !== undefined ||
      values['rtt-only'] ||
      latencyLines !== undefined ||
      inFlight !== undefined ||
      values['cpu-prof'] !== undefined,
  };
}

/** A read-only git query, or undefined outside a repository. */
function git(args: readonly string[]): string | undefined {
  try {
    // trimEnd: porcelain lines start with a status column that may be a space.
    return execFileSync('git', [...args], { cwd: PROJECT_ROOT, encoding: 'utf8' }).trimEnd();
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options.help) {
    process.stdout.write(
      `${(await import('node:fs')).readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]}*/\n`,
    );
    return;
  }
  const { sizes } = options;
  const started = performance.now();
  const progress = (message: string) => {
    const elapsed = Math.round((performance.now() - started) / 1000);
    process.stderr.write(
      `[${String(Math.floor(elapsed / 60)).padStart(2, '0')}:${String(elapsed % 60).padStart(2, '0')}] ${message}\n`,
    );
  };
  const machine = describeMachine();
  const commit = git(['rev-parse', '--short', 'HEAD']);
  // Read before bundling: the figures are for the tree the measured process was built from, even
  // if commits land while the bench runs. Product files that differ from the commit are listed.
  const uncommitted = git([
    'status',
    '--porcelain',
    '--',
    'lambda',
    'infra',
    'package.json',
    'package-lock.json',
  ]);
  progress(
    `bench on ${machine.nproc} CPUs (${machine.cpuModel}), ${machine.memoryGiB} GiB, Node ${machine.node}${options.quick ? ', QUICK sizes' : ''}`,
  );

  const work = await mkdtemp(join(tmpdir(), 'tokens-housekeeper-bench-'));
  const results: SectionResults = {};
  try {
    progress('bundling the measured process (test/bench/worker.ts, CDK bundling options)');
    const worker = (await bundle('test/bench/worker.ts', work, 'worker')).file;
    if (options.cpuProf !== undefined) {
      // Kept beside the profiles: the bundle's temporary directory goes at the end of the run.
      await mkdir(options.cpuProf, { recursive: true });
      await copyFile(worker, join(options.cpuProf, 'worker.mjs'));
      await copyFile(`${worker}.map`, join(options.cpuProf, 'worker.mjs.map'));
      progress(`CPU profiles of the throughput runs go to ${options.cpuProf}`);
    }
    const has = (section: Section) => options.sections.has(section);

    if (has('throughput') || has('baseline')) {
      const { throughput, baseline } = await runThroughput(
        worker,
        sizes,
        has('baseline'),
        has('throughput'),
        progress,
        options.cpuProf,
      );
      if (has('throughput')) results.throughput = throughput;
      if (has('baseline')) results.baseline = baseline;
    }
    if (has('memory')) results.memory = await runMemory(worker, sizes, results.throughput ?? [], progress);
    if (has('list')) results.listScale = await runListScale(worker, sizes, progress);
    if (has('cold-start')) results.coldStart = await runColdStart(work, sizes, progress);
    if (has('concurrency')) results.concurrency = await runConcurrency(worker, sizes, progress);
    if (has('requests')) {
      results.requestSequences = await runRequestSequences(
        (workload, tool, runOptions) => measure(worker, workload, tool, [], runOptions),
        progress,
      );
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }

  const report: BenchResults = {
    schemaVersion: 2,
    generatedAt: new Date().toISOString(),
    commit,
    uncommittedProductFiles: (uncommitted ?? '')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => line.slice(3)),
    quick: options.quick,
    durationS: Math.round((performance.now() - started) / 1000),
    machine,
    notes: NOTES,
    ...results,
  };
  process.stdout.write(renderTables(report));

  // Smoke and partial runs write beside the official results, under names git ignores.
  const { dir: outDir, json: jsonFile, chart: chartFile } = resultFiles(PROJECT_ROOT, options);
  await mkdir(outDir, { recursive: true });
  await writeFile(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(chartFile, renderChart(report));
  // Only the committed results need biome's layout (quick.json is ignored by git and by biome).
  if (jsonFile.endsWith('latest.json')) formatJson(jsonFile);
  progress(`wrote ${jsonFile} and ${chartFile} in ${report.durationS} s`);
  const failures = [
    ...(report.throughput ?? []).flatMap((t) => [t.reference, t.housekeeper]),
    ...(report.baseline ?? []).map((b) => b.baseline),
    ...(report.memory ?? []).map((m) => m.housekeeper),
    ...(report.listScale ?? []).map((l) => l.housekeeper),
    ...(report.concurrency ?? []).map((c) => c.housekeeper),
  ].filter((m) => !m.ok);
  if (failures.length > 0) {
    progress(`${failures.length} measurement(s) did not complete their work: see the Check column`);
    process.exitCode = 1;
  }
}

/** The results file is committed: give it the layout `biome ci` expects. */
function formatJson(file: string): void {
  if (!file.startsWith(PROJECT_ROOT)) return;
  try {
    execFileSync(join(PROJECT_ROOT, 'node_modules/.bin/biome'), ['format', '--write', file], {
      stdio: 'ignore',
    });
  } catch {
    process.stderr.write(`could not format ${file} with biome; run npx biome format --write on it\n`);
  }
}

await main();
