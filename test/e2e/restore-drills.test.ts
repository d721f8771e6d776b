import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createDrillHandler } from '../../lambda/app/drill-invoke.ts';
import { createHandler, type LambdaContext } from '../../lambda/app/invoke.ts';
import type { DrillReport } from '../../lambda/core/drill.ts';
import { lambdaEntryTools } from '../../lambda/entries/lambda-tools.ts';
import { type LocalStack, startLocalStack } from '../local/stack.ts';
import { type S3Proxy, startS3Proxy } from '../reliability/s3-proxy.ts';
import { listKeys, objectJson, replaceObject } from '../support/archive-inspect.ts';
import { runCli } from '../support/run-cli.ts';

let stack: LocalStack | undefined;
let proxy: S3Proxy | undefined;
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  await stack?.close();
  stack = undefined;
  vi.unstubAllEnvs();
});

const AUDIT = 'lambda/entries/audit-cli.ts';

/** A local stack whose `count` finished lines one pass archived and dismantled. */
async function startStack(count: number): Promise<LocalStack> {
  stack = await startLocalStack({
    lines: Array.from({ length: count }, () => ({ status: 'finished' as const, fileSize: 3000 })),
  });
  return stack;
}

async function archiveAndDismantle(local: LocalStack): Promise<string[]> {
  const ids = [...local.tokens.lines.keys()];
  expect(await createHandler(local.env)({})).toMatchObject({ dismantled: ids.length, failed: [] });
  return ids;
}

/**
 * The drill function's environment as the stack sets it: the archive and nothing of the tokens
 * service or its secret (plus the local endpoint and credentials).
 */
function drillEnv(local: LocalStack, env: Record<string, string> = {}): Record<string, string> {
  const { TOKENS_API_URL, SESSION_KEY_SECRET_ID, AWS_ENDPOINT_URL_SECRETS_MANAGER, ...archive } = local.env;
  return { ...archive, ...env };
}

/** A Lambda context with `ms` left, as the runtime hands it. */
function lambdaContext(ms: number): LambdaContext {
  const deadline = Date.now() + ms;
  return { getRemainingTimeInMillis: () => deadline - Date.now(), awsRequestId: crypto.randomUUID() };
}

/** The EMF line Powertools Metrics printed: the drill's metrics by name, and their namespace. */
interface Emf {
  readonly values: Record<string, unknown>;
  readonly namespace: string | undefined;
  readonly names: readonly string[];
}

/**
 * Invokes the drill as its Lambda entry does (the entry's real Powertools logger and metrics),
 * and reads the metrics it published off stdout.
 */
async function invokeDrill(
  env: Record<string, string>,
  context: LambdaContext = lambdaContext(300_000),
): Promise<{ report: DrillReport; emf: Emf }> {
  vi.stubEnv('POWERTOOLS_METRICS_DISABLED', 'false');
  const written: string[] = [];
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
  let report: DrillReport;
  try {
    report = await createDrillHandler(env, lambdaEntryTools())({}, context);
  } finally {
    out.mockRestore();
  }
  const lines = written
    .join('')
    .split('\n')
    .filter((line) => line.includes('"CloudWatchMetrics"'));
  expect(lines).toHaveLength(1);
  const values = JSON.parse(lines[0] as string) as Record<string, unknown> & {
    _aws: { CloudWatchMetrics: { Namespace: string; Metrics: { Name: string }[] }[] };
  };
  const directive = values._aws.CloudWatchMetrics[0];
  return {
    report,
    emf: { values, namespace: directive?.Namespace, names: directive?.Metrics.map((m) => m.Name) ?? [] },
  };
}

describe('a scheduled restore drill', () => {
  it('finds a tampered object and a receipt discrepancy among the lines archived since the last drill, reports them under _drills/{date}/{id}.json and raises DrillFindings', async () => {
    const local = await startStack(3);
    const env = drillEnv(local);
    // A first drill, before anything is archived: nothing to find, and where the next one starts.
    const first = await invokeDrill(env);
    expect(first.report).toMatchObject({ since: null, counts: { archivedLines: 0, findings: 0 } });
    expect(first.emf.values.DrillFindings).toBe(0);
    const ids = await archiveAndDismantle(local);
    const [tampered, discrepant] = ids as [string, string, string];
    // An archived object's bytes changed behind the archive's back, and a receipt that records a
    // discrepancy (the line's statement changed at its DELETE).
    await replaceObject(local.s3Client, local.bucket, `tokens/${tampered}/data`, Buffer.alloc(3000, 7));
    const receiptKey = `tokens/${discrepant}/deleted.json`;
    const receipt = (await objectJson(local.s3Client, local.bucket, receiptKey)) as Record<string, unknown>;
    const discrepancy = 'the DELETE reply states data as 3001 bytes, 9f86…; the archive holds 3000 bytes';
    await replaceObject(
      local.s3Client,
      local.bucket,
      receiptKey,
      JSON.stringify({ ...receipt, discrepancy }),
    );

    const { report, emf } = await invokeDrill(env);

    expect([...report.recent].sort()).toEqual([...ids].sort());
    expect(report).toMatchObject({
      schemaVersion: 1,
      since: first.report.nextSince,
      previousDrill: expect.stringMatching(
        new RegExp(`^tokens/_drills/\\d{4}-\\d{2}-\\d{2}/${first.report.drillId}\\.json$`),
      ),
      sampled: [],
      notReached: [],
      unreadable: [],
      counts: { archivedLines: 3, recent: 3, audited: 3, findings: 2 },
    });
    expect(report.audit.damaged).toEqual([
      {
        id: tampered,
        file: 'data',
        key: `tokens/${tampered}/data`,
        problem: expect.stringMatching(/^holds 3000 bytes hashing to [0-9a-f]{64}; manifest says 3000 bytes/),
      },
    ]);
    expect(report.audit.discrepancies).toEqual([
      {
        id: discrepant,
        file: 'deleted.json',
        key: receiptKey,
        problem: `the line was dismantled with a discrepancy recorded: ${discrepancy}`,
      },
    ]);
    expect(report.audit).toMatchObject({ lines: 3, receipts: 3, intactFiles: 2, missing: [] });
    // The report, in the bucket where the next drill and an operator find it.
    const key = `tokens/_drills/${report.startedAt.slice(0, 10)}/${report.drillId}.json`;
    expect(await listKeys(local.s3Client, local.bucket, 'tokens/_drills/')).toContain(key);
    expect(await objectJson(local.s3Client, local.bucket, key)).toEqual(report);
    // The metric the alarm watches, as CloudWatch receives it.
    expect(emf.namespace).toBe('TokensHousekeeper');
    expect(emf.names).toEqual(['DrillFindings', 'DrillLinesAudited', 'DrillLinesNotReached']);
    expect(emf.values).toMatchObject({
      service: 'tokens-housekeeper',
      DrillFindings: 2,
      DrillLinesAudited: 3,
      DrillLinesNotReached: 0,
    });
  });

  it('finds a line document the manifest holds altered to other text of the same size', async () => {
    const local = await startStack(2);
    const [tampered] = (await archiveAndDismantle(local)) as [string, string];
    const key = `tokens/${tampered}/manifest.json`;
    const manifest = (await objectJson(local.s3Client, local.bucket, key)) as {
      lineDocument: { body: string };
    };
    manifest.lineDocument.body = manifest.lineDocument.body.replace(/"finished"/, '"FINISHED"');
    await local.s3Client.send(
      new PutObjectCommand({ Bucket: local.bucket, Key: key, Body: JSON.stringify(manifest) }),
    );

    const { report, emf } = await invokeDrill(drillEnv(local, { DRILL_SAMPLE_SIZE: '2' }));

    // A manifest whose document is not the one it records is not read as a manifest at all: the
    // line counts without one, and its receipt stands with no record of what was archived.
    expect(report.audit.withoutManifest).toEqual([tampered]);
    expect(report.audit.receiptMismatches).toEqual([
      expect.objectContaining({ id: tampered, problem: expect.stringMatching(/no readable manifest/) }),
    ]);
    expect(report.counts).toMatchObject({ sampled: 2, findings: 2 });
    expect(emf.values.DrillFindings).toBe(2);
  });

  it('fails, rather than start afresh and skip the lines archived since, when the newest drill reports cannot be read', async () => {
    const local = await startStack(2);
    const env = drillEnv(local);
    await invokeDrill(env);
    await archiveAndDismantle(local);
    // Newer objects under _drills/ that are not drill reports (hand-placed, or a later release's).
    for (let n = 0; n < 5; n += 1) {
      await replaceObject(
        local.s3Client,
        local.bucket,
        `tokens/_drills/2099-01-01/${crypto.randomUUID()}.json`,
        JSON.stringify({ schemaVersion: 2 }),
      );
    }

    await expect(invokeDrill(env)).rejects.toThrow(/tokens\/_drills\/.*cannot be read as a drill report/);
  });

  it('samples lines archived before it at random, and never a line whose archive is not finished', async () => {
    const local = await startStack(3);
    const ids = await archiveAndDismantle(local);
    // Objects of a line whose manifest was never written: an interrupted archive, not yet archived.
    const interrupted = '11111111-2222-4333-8444-555555555555';
    await local.s3Client.send(
      new PutObjectCommand({ Bucket: local.bucket, Key: `tokens/${interrupted}/data`, Body: 'part' }),
    );

    const { report, emf } = await invokeDrill(drillEnv(local, { DRILL_SAMPLE_SIZE: '10' }));

    // No earlier drill: no recent lines; the sample takes what there is.
    expect(report).toMatchObject({
      since: null,
      previousDrill: null,
      recent: [],
      counts: { archivedLines: 3 },
    });
    expect([...report.sampled].sort()).toEqual([...ids].sort());
    expect(report.seed).toMatch(/^[0-9a-f]{64}$/);
    expect(report.counts.findings).toBe(0);
    expect(emf.values.DrillFindings).toBe(0);
  });

  it('reports a line it could not read back as a finding of its own, apart from damage, and audits the others', async () => {
    const local = await startStack(2);
    const [unreachable, readable] = (await archiveAndDismantle(local)) as [string, string];
    proxy = await startS3Proxy(local.s3.address);
    proxy.decide = ({ operation, key }) =>
      operation === 'GetObject' && key === `tokens/${unreachable}/data`
        ? { fail: 403, code: 'AccessDenied' }
        : 'forward';

    const { report, emf } = await invokeDrill(
      drillEnv(local, { AWS_ENDPOINT_URL_S3: proxy.url, DRILL_SAMPLE_SIZE: '2' }),
    );

    expect(report.unreadable).toEqual([
      { id: unreachable, problem: expect.stringContaining(`tokens/${unreachable}/data`) },
    ]);
    expect(report.audit).toMatchObject({ lines: 1, intactFiles: 1, damaged: [], missing: [] });
    expect(report.counts).toMatchObject({ audited: 1, unreadable: 1, findings: 1 });
    expect(report.sampled).toContain(readable);
    expect(emf.values.DrillFindings).toBe(1);
  });

  it('stops at its deadline: a line still being read is not reached, the report is still written, and the next drill takes the line', async () => {
    const local = await startStack(3);
    const env = drillEnv(local, { DEADLINE_RESERVE_MS: '1000' });
    await invokeDrill(env);
    const ids = await archiveAndDismantle(local);
    const [slow] = ids as [string];
    proxy = await startS3Proxy(local.s3.address);
    // One object's read never answers: only the deadline ends it.
    proxy.decide = ({ operation, key }) =>
      operation === 'GetObject' && key === `tokens/${slow}/data` ? 'hold' : 'forward';

    // 3 s of the invocation left, 1 s of them kept to write the report.
    const { report, emf } = await invokeDrill(
      { ...env, AWS_ENDPOINT_URL_S3: proxy.url },
      lambdaContext(3000),
    );

    expect(report.notReached).toEqual([slow]);
    expect(report.deadline).toMatch(/run deadline reached/);
    expect(report.counts).toMatchObject({ recent: 3, audited: 2, notReached: 1, unreadable: 0, findings: 0 });
    expect(emf.values).toMatchObject({ DrillFindings: 0, DrillLinesAudited: 2, DrillLinesNotReached: 1 });
    expect(await listKeys(local.s3Client, local.bucket, 'tokens/_drills/')).toContain(
      `tokens/_drills/${report.startedAt.slice(0, 10)}/${report.drillId}.json`,
    );
    // The line left is where the next drill's recent lines start: at its own archive time (its
    // receipt, written last), not at this drill's listing.
    const listing = await local.s3Client.send(
      new ListObjectsV2Command({ Bucket: local.bucket, Prefix: `tokens/${slow}/deleted.json` }),
    );
    expect(report.nextSince).toBe(listing.Contents?.[0]?.LastModified?.toISOString());
    const next = await invokeDrill(env);
    expect(next.report.since).toBe(report.nextSince);
    expect(next.report.recent).toContain(slow);
    expect(next.report.counts).toMatchObject({ notReached: 0, findings: 0 });
  });

  it.each([
    ['receipt', 'deleted.json'],
    ['manifest', 'manifest.json'],
  ])(
    'stops at its deadline a line whose %s hangs mid-body, and still writes the report in time',
    async (_what, name) => {
      const local = await startStack(2);
      const env = drillEnv(local, { DEADLINE_RESERVE_MS: '1000' });
      await invokeDrill(env);
      const [slow] = (await archiveAndDismantle(local)) as [string, string];
      proxy = await startS3Proxy(local.s3.address);
      // The store answers and sends half the object, then nothing more: only the deadline ends it.
      proxy.decide = ({ operation, key }) =>
        operation === 'GetObject' && key === `tokens/${slow}/${name}` ? 'stall-body' : 'forward';
      const started = Date.now();

      // 3 s of the invocation left, 1 s of them kept to write the report.
      const { report } = await invokeDrill({ ...env, AWS_ENDPOINT_URL_S3: proxy.url }, lambdaContext(3000));

      expect(Date.now() - started).toBeLessThan(3000);
      expect(report.notReached).toEqual([slow]);
      expect(report.counts).toMatchObject({ recent: 2, audited: 1, notReached: 1, findings: 0 });
      expect(await listKeys(local.s3Client, local.bucket, 'tokens/_drills/')).toContain(
        `tokens/_drills/${report.startedAt.slice(0, 10)}/${report.drillId}.json`,
      );
    },
  );
});

describe('npm run audit -- --sample', () => {
  it('drills by hand: draws the lines, exits 1 on a finding, writes nothing unless --write-report', async () => {
    const local = await startStack(3);
    const [tampered] = (await archiveAndDismantle(local)) as [string];
    await replaceObject(local.s3Client, local.bucket, `tokens/${tampered}/data`, Buffer.alloc(3000, 7));

    const printed = await runCli(['--sample', '3'], drillEnv(local), AUDIT);

    expect(printed.code).toBe(1);
    const report = JSON.parse(printed.stdout) as DrillReport;
    expect(report.sampled).toHaveLength(3);
    expect(report.audit.damaged).toEqual([expect.objectContaining({ id: tampered, file: 'data' })]);
    expect(report.counts.findings).toBe(1);
    expect(await listKeys(local.s3Client, local.bucket, 'tokens/_drills/')).toEqual([]);

    const written = await runCli(['--sample', '3', '--write-report'], drillEnv(local), AUDIT);

    expect(written.code).toBe(1);
    const stored = JSON.parse(written.stdout) as DrillReport;
    expect(await listKeys(local.s3Client, local.bucket, 'tokens/_drills/')).toEqual([
      `tokens/_drills/${stored.startedAt.slice(0, 10)}/${stored.drillId}.json`,
    ]);
  });

  it('draws the same line again with the seed of an earlier report', async () => {
    const local = await startStack(6);
    await archiveAndDismantle(local);

    const first = JSON.parse((await runCli(['--sample', '2'], drillEnv(local), AUDIT)).stdout) as DrillReport;
    const again = await runCli(['--sample', '2', '--seed', first.seed], drillEnv(local), AUDIT);

    expect(again.code).toBe(0);
    expect((JSON.parse(again.stdout) as DrillReport).sampled).toEqual(first.sampled);
  });
});
