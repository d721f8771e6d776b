/**
 * Section 7 (issue 22): the exact requests of one line, in the order they were started, for a
 * line of one file and a line of four, on a first run with `VERIFY_READBACK=head`, and for the
 * plain copy. The requests of the run (the secret, the list, the run report) are in it too, named.
 */
import type { Measurement, RunOptions, Workload } from './measure.ts';
import type { TracedRequest } from './request-counter.ts';

/** One request of a sequence, named as the service's API names it. */
export interface SequenceStep {
  readonly service: string;
  readonly operation: string;
  /** The path, ids replaced by `{id}` (the line), `{uuid}` (others), `{sha256}` and `{date}`. */
  readonly target: string;
  /** `line` when the request names the line, else `run` (shared by every line of the run). */
  readonly per: 'line' | 'run';
}

export interface SequenceResult {
  readonly label: string;
  readonly tool: Measurement['tool'];
  readonly files: number;
  readonly steps: readonly SequenceStep[];
  /** Requests per service. */
  readonly counts: Readonly<Record<string, number>>;
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const DATE = /\d{4}-\d{2}-\d{2}(T[\d:.]+Z)?/g;
const SHA256 = /[0-9a-f]{64}/g;

/** The S3 operation a path-style request is (method, query). */
export function s3Operation(method: string, path: string): string {
  const query = new URLSearchParams(path.split('?')[1] ?? '');
  switch (method) {
    case 'GET':
      return query.get('list-type') === '2'
        ? 'ListObjectsV2'
        : query.has('uploadId')
          ? 'ListParts'
          : 'GetObject';
    case 'HEAD':
      return 'HeadObject';
    case 'PUT':
      return query.has('partNumber') ? 'UploadPart' : 'PutObject';
    case 'POST':
      return query.has('uploads')
        ? 'CreateMultipartUpload'
        : query.has('uploadId')
          ? 'CompleteMultipartUpload'
          : 'POST';
    case 'DELETE':
      return query.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
    default:
      return method;
  }
}

/** The tokens-service call a request is (GET list, GET line, GET file, DELETE line). */
export function tokensOperation(method: string, path: string): string {
  const parts =
    path
      .split('?')[0]
      ?.split('/')
      .filter((part) => part !== '') ?? [];
  // api, tokens, {id}, {file}
  if (parts.length <= 2) return `${method} list`;
  if (parts.length === 3) return `${method} line`;
  return `${method} file`;
}

/** The sequence of a traced run, the line's id (if one) made `{id}`. */
export function sequenceOf(trace: readonly TracedRequest[], lineId?: string): SequenceStep[] {
  return trace.map((request) => {
    let target = decodeURIComponent(request.path);
    if (lineId !== undefined) target = target.split(lineId).join('{id}');
    const per = target.includes('{id}') ? 'line' : 'run';
    target = target.replace(SHA256, '{sha256}').replace(UUID, '{uuid}').replace(DATE, '{date}');
    const operation =
      request.service === 's3'
        ? s3Operation(request.method, request.path)
        : request.service === 'tokens'
          ? tokensOperation(request.method, request.path)
          : `${request.method} (${request.service})`;
    return { service: request.service, operation, target, per };
  });
}

type Measure = (workload: Workload, tool: Measurement['tool'], options: RunOptions) => Promise<Measurement>;

/** Traces one run of each case: a one-file line and a four-file line (housekeeper), the one-file line copied (reference). */
export async function runRequestSequences(
  run: Measure,
  progress: (message: string) => void,
): Promise<SequenceResult[]> {
  const KIB = 1024;
  const cases = [
    { label: 'one line of one file (256 KiB), first run, head', tool: 'housekeeper', analysis: 'none' },
    {
      label: 'one analysed line of four files (256 KiB each), first run, head',
      tool: 'housekeeper',
      analysis: 'metrics',
    },
    { label: 'one line of one file (256 KiB)', tool: 'reference', analysis: 'none' },
  ] as const;
  const results: SequenceResult[] = [];
  for (const entry of cases) {
    progress(`requests: ${entry.tool}, ${entry.label}, traced`);
    const id = crypto.randomUUID();
    const m = await run(
      {
        lines: [{ id, status: 'finished', analysis: entry.analysis, fileSize: 256 * KIB }],
        env: { VERIFY_READBACK: 'head' },
      },
      entry.tool,
      { trace: true },
    );
    if (!m.ok) throw new Error(`requests: ${entry.tool} on ${entry.label} failed: ${m.check}`);
    const steps = sequenceOf(m.trace ?? [], id);
    const counts: Record<string, number> = {};
    for (const step of steps) counts[step.service] = (counts[step.service] ?? 0) + 1;
    progress(`  ${steps.map((step) => step.operation).join(', ')}`);
    results.push({ label: entry.label, tool: entry.tool, files: m.files, steps, counts });
  }
  return results;
}
