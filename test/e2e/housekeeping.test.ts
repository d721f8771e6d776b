import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import type { LocalStack, LocalStackOptions } from '../local/stack.ts';
import { closeAfterEach, localStack as trackedStack } from '../reliability/harness.ts';
import { listKeys, objectDigest, objectJson, objectMetadata } from '../support/archive-inspect.ts';

const track = closeAfterEach();
const localStack = (options?: LocalStackOptions) => trackedStack(track, options);

/** Makes every download of line `id`'s file (`file`, or its only one) differ from its stated hash. */
const corruptForGood = (local: LocalStack, id: string, file?: string) =>
  local.tokens.inject({
    target: 'file',
    id,
    ...(file === undefined ? {} : { file }),
    fault: { kind: 'corrupt' },
    times: Infinity,
  });

describe('housekeeping pass over real HTTP', () => {
  it('archives every finished line byte-exact with manifest and receipt, then dismantles it', async () => {
    const local = await localStack({
      lines: [
        { status: 'finished', analysis: 'none', fileSize: 35_151 },
        { status: 'finished', analysis: 'metrics', fileSize: 20_000 },
        { status: 'requested' },
        { status: 'started' },
      ],
    });
    const [plain, metrics, requested, started] = [...local.tokens.lines.keys()] as [
      string,
      string,
      string,
      string,
    ];
    const handler = createHandler(local.env);
    const day = () => new Date().toISOString().slice(0, 10);
    // The report is dated by the run's start; a run across midnight UTC may end on the next day.
    const runDays = [day()];

    const summary = await handler({});
    runDays.push(day());

    expect(summary).toMatchObject({
      listed: 4,
      finished: 2,
      archived: 2,
      dismantled: 2,
      failed: [],
      filesUploaded: 5,
    });
    expect(summary.bytes).toBe(35_151 + 4 * 20_000);
    for (const id of [plain, metrics]) {
      const line = local.tokens.lines.get(id);
      expect(line?.status).toBe('deleted');
      expect(local.tokens.deleteCount(id)).toBe(1);
    }
    const keys = await listKeys(local.s3Client, local.bucket);
    const report = keys.filter((key) => key.startsWith('tokens/_runs/'));
    expect(report).toHaveLength(1);
    expect(runDays.map((date) => `tokens/_runs/${date}/${summary.runId}.json`)).toContain(report[0]);
    expect(keys.filter((key) => !report.includes(key))).toEqual(
      [
        `tokens/${plain}/data`,
        `tokens/${plain}/deleted.json`,
        `tokens/${plain}/manifest.json`,
        ...['analysis', 'data', 'deleted.json', 'delta', 'manifest.json', 'score'].map(
          (n) => `tokens/${metrics}/${n}`,
        ),
      ].sort(),
    );
    for (const id of [plain, metrics]) {
      const files = local.tokens.lines.get(id)?.files ?? new Map();
      for (const [name, stated] of files) {
        const stored = await objectDigest(local.s3Client, local.bucket, `tokens/${id}/${name}`);
        expect(stored).toEqual({ sha256: stated.sha256, size: stated.size });
        expect(await objectMetadata(local.s3Client, local.bucket, `tokens/${id}/${name}`)).toMatchObject({
          sha256: stated.sha256,
        });
      }
      const manifest = (await objectJson(local.s3Client, local.bucket, `tokens/${id}/manifest.json`)) as {
        lineId: string;
        runId: string;
        files: { name: string; sha256: string; size: number; key: string }[];
        lineDocument: { body: string; size: number; sha256: string };
      };
      expect(manifest.lineId).toBe(id);
      expect(manifest.runId).toBe(summary.runId);
      // The line's document, as received, held in the manifest with its size and SHA-256.
      const held = Buffer.from(manifest.lineDocument.body, 'utf8');
      expect({ sha256: createHash('sha256').update(held).digest('hex'), size: held.length }).toEqual({
        sha256: manifest.lineDocument.sha256,
        size: manifest.lineDocument.size,
      });
      const document = JSON.parse(manifest.lineDocument.body) as { data: { id: string } };
      expect(document.data.id).toBe(id);
      expect(manifest.files.map((f) => f.name).sort()).toEqual([...files.keys()].sort());
      const receipt = (await objectJson(local.s3Client, local.bucket, `tokens/${id}/deleted.json`)) as {
        reply: { status: number; body: string };
        confirmation: string;
      };
      expect(receipt.reply.status).toBe(200);
      expect(receipt.confirmation).toBe('the reply (200, status deleted)');
      expect(JSON.parse(receipt.reply.body).data).toMatchObject({ id, attributes: { status: 'deleted' } });
    }
    for (const id of [requested, started]) {
      expect(local.tokens.deleteCount(id)).toBe(0);
      expect(await listKeys(local.s3Client, local.bucket, `tokens/${id}/`)).toEqual([]);
    }
  });

  it('does not archive nor delete a line whose file bytes differ from the stated hash, and reports it', async () => {
    const local = await localStack({
      lines: [
        { status: 'finished', analysis: 'metrics', fileSize: 300_000 },
        { status: 'finished', fileSize: 5000 },
      ],
      env: { RETRY_ATTEMPTS: '3' },
    });
    const [bad, good] = [...local.tokens.lines.keys()] as [string, string];
    corruptForGood(local, bad, 'score');

    const summary = await createHandler(local.env)({});

    expect(summary.dismantled).toBe(1);
    expect(summary.failed).toEqual([{ id: bad, reason: expect.stringMatching(/file score.*SHA-256/) }]);
    // One file, refused on each of its three attempts.
    expect(summary).toMatchObject({ hashMismatches: 1, hashMismatchAttempts: 3 });
    expect(local.tokens.deleteCount(bad)).toBe(0);
    expect(local.tokens.lines.get(bad)?.status).toBe('finished');
    const keys = await listKeys(local.s3Client, local.bucket, `tokens/${bad}/`);
    expect(keys).not.toContain(`tokens/${bad}/score`);
    expect(keys).not.toContain(`tokens/${bad}/manifest.json`);
    expect(local.tokens.lines.get(good)?.status).toBe('deleted');
  });

  it('retries a 503, a 429 with Retry-After and a truncated body, and then succeeds', async () => {
    const local = await localStack({ lines: [{ status: 'finished', fileSize: 200_000 }] });
    const [id] = [...local.tokens.lines.keys()] as [string];
    local.tokens.inject({ target: 'list', fault: { kind: 'status', status: 503 } });
    local.tokens.inject({ target: 'get', id, fault: { kind: 'status', status: 429, retryAfterSeconds: 1 } });
    local.tokens.inject({ target: 'file', id, fault: { kind: 'truncate' } });
    local.tokens.inject({ target: 'delete', id, fault: { kind: 'status', status: 502 } });

    const summary = await createHandler(local.env)({});

    expect(summary).toMatchObject({ archived: 1, dismantled: 1, failed: [], retries: 4 });
    const stored = await objectDigest(local.s3Client, local.bucket, `tokens/${id}/data`);
    expect(stored.sha256).toBe(local.tokens.lines.get(id)?.files.get('data')?.sha256);
    const gets = local.tokens.requests.filter((r) => r.method === 'GET' && r.path === `/api/tokens/${id}`);
    // The 429, the read before work, and the read again right before the DELETE.
    expect(gets.map((r) => r.status)).toEqual([429, 200, 200]);
    const [refusedAt = 0, acceptedAt = 0] = gets.map((r) => r.at);
    expect(acceptedAt - refusedAt).toBeGreaterThanOrEqual(1000);
  });

  it('writes nothing and deletes nothing on a dry run, and plans files and bytes', async () => {
    const local = await localStack({
      lines: [
        { status: 'finished', analysis: 'metrics', fileSize: 1000, alphabet: 'DICE', digits: '5' },
        { status: 'finished', fileSize: 777, alphabet: 'LOWER_LATIN', digits: '3' },
        { status: 'started' },
      ],
    });
    const [metrics, plain] = [...local.tokens.lines.keys()] as [string, string];

    const summary = await createHandler(local.env)({ dryRun: true });

    expect(summary).toMatchObject({
      dryRun: true,
      listed: 3,
      finished: 2,
      archived: 0,
      dismantled: 0,
      bytes: 0,
    });
    expect(summary.plan).toEqual(
      [
        {
          id: metrics,
          alphabet: 'DICE',
          digits: '5',
          files: 4,
          bytes: 4000,
          action: 'archive-and-dismantle',
        },
        {
          id: plain,
          alphabet: 'LOWER_LATIN',
          digits: '3',
          files: 1,
          bytes: 777,
          action: 'archive-and-dismantle',
        },
      ].sort((a, b) => a.id.localeCompare(b.id)),
    );
    expect(await listKeys(local.s3Client, local.bucket)).toEqual([]);
    expect(local.tokens.requests.filter((r) => r.method === 'DELETE')).toEqual([]);
    expect(local.tokens.requests.filter((r) => /\/api\/tokens\/[^/]+\/[a-z]+$/.test(r.path))).toEqual([]);
  });

  it('restricts the pass to the given ids, read by id, and reports unknown or unfinished ids as skipped', async () => {
    const local = await localStack({
      lines: [{ status: 'finished' }, { status: 'finished' }, { status: 'started' }],
    });
    const [chosen, other, started] = [...local.tokens.lines.keys()] as [string, string, string];
    const unknown = '00000000-0000-4000-8000-000000000000';

    const summary = await createHandler(local.env)({ ids: [chosen, started, unknown] });

    expect(summary).toMatchObject({ listed: 3, finished: 1, archived: 1, dismantled: 1, failed: [] });
    expect(summary.skipped).toEqual(
      expect.arrayContaining([
        { id: started, reason: 'status is "started", not finished' },
        { id: unknown, reason: 'not found (404)' },
      ]),
    );
    expect(local.tokens.requests.some((r) => r.path === '/api/tokens')).toBe(false);
    expect(local.tokens.lines.get(chosen)?.status).toBe('deleted');
    expect(local.tokens.lines.get(other)?.status).toBe('finished');
  });

  it('archives without DELETE when archiveOnly, and a second run uploads nothing', async () => {
    const local = await localStack({ lines: [{ status: 'finished', analysis: 'metrics', fileSize: 3000 }] });
    const [id] = [...local.tokens.lines.keys()] as [string];
    const handler = createHandler(local.env);

    const first = await handler({ archiveOnly: true });
    const second = await handler({ archiveOnly: true });

    expect(first).toMatchObject({ archived: 1, dismantled: 0, filesUploaded: 4, filesReused: 0 });
    expect(second).toMatchObject({ archived: 1, dismantled: 0, filesUploaded: 0, filesReused: 4, bytes: 0 });
    expect(local.tokens.deleteCount(id)).toBe(0);
    // Four files and the manifest (which holds the line's document).
    expect(await listKeys(local.s3Client, local.bucket, `tokens/${id}/`)).toHaveLength(5);
    const puts = local.tokens.requests.filter((r) => r.path.startsWith(`/api/tokens/${id}/`));
    expect(puts).toHaveLength(4);
  });

  it('finds nothing to do on a second full run', async () => {
    const local = await localStack({ lines: [{ status: 'finished' }, { status: 'requested' }] });
    const handler = createHandler(local.env);
    await handler({});

    const second = await handler({});

    expect(second).toMatchObject({
      listed: 1,
      finished: 0,
      archived: 0,
      dismantled: 0,
      filesUploaded: 0,
      bytes: 0,
    });
  });

  it('streams a file above the multipart threshold in parts, and aborts the upload of a corrupted one', async () => {
    const mib = 1024 * 1024;
    const local = await localStack({
      lines: [
        { status: 'finished', fileSize: 12 * mib + 123 },
        { status: 'finished', fileSize: 11 * mib },
      ],
      env: {
        MULTIPART_THRESHOLD_BYTES: String(5 * mib),
        MULTIPART_PART_SIZE_BYTES: String(5 * mib),
        RETRY_ATTEMPTS: '2',
      },
    });
    const [good, bad] = [...local.tokens.lines.keys()] as [string, string];
    corruptForGood(local, bad, 'data');

    const summary = await createHandler(local.env)({});

    expect(summary.dismantled).toBe(1);
    expect(summary.failed.map((f) => f.id)).toEqual([bad]);
    const stored = await objectDigest(local.s3Client, local.bucket, `tokens/${good}/data`);
    expect(stored).toEqual({
      sha256: local.tokens.lines.get(good)?.files.get('data')?.sha256,
      size: 12 * mib + 123,
    });
    expect(await listKeys(local.s3Client, local.bucket, `tokens/${bad}/`)).toEqual([]);
  });

  it("leaves a run report with the summary and each line's outcome and duration", async () => {
    const local = await localStack({
      lines: [{ status: 'finished' }, { status: 'finished' }, { status: 'started' }],
    });
    const [ok, bad, started] = [...local.tokens.lines.keys()] as [string, string, string];
    corruptForGood(local, bad);

    const summary = await createHandler({ ...local.env, RETRY_ATTEMPTS: '1' })({ ids: [ok, bad, started] });

    const [key] = await listKeys(local.s3Client, local.bucket, 'tokens/_runs/');
    const report = (await objectJson(local.s3Client, local.bucket, key as string)) as {
      summary: { runId: string };
      lines: { id: string; outcome: string; durationMs: number; reason?: string }[];
    };
    expect(report.summary).toEqual(JSON.parse(JSON.stringify(summary)));
    expect(report.lines.map(({ id, outcome }) => ({ id, outcome }))).toEqual(
      [
        { id: ok, outcome: 'dismantled' },
        { id: bad, outcome: 'failed' },
        { id: started, outcome: 'skipped' },
      ].sort((a, b) => a.id.localeCompare(b.id)),
    );
    expect(report.lines.every((line) => line.durationMs >= 0)).toBe(true);
  });

  it('emits the run metrics once per run and publishes them, with a hash mismatch counted', async () => {
    const local = await localStack({
      lines: [{ status: 'finished', fileSize: 1000 }, { status: 'finished' }],
    });
    const [ok, bad] = [...local.tokens.lines.keys()] as [string, string];
    corruptForGood(local, bad);
    const recorded = new Map<string, { unit: string; value: number }>();
    let published = 0;
    const metrics = {
      addMetric: (name: string, unit: 'Count' | 'Bytes' | 'Milliseconds', value: number) => {
        recorded.set(name, { unit, value });
      },
      publishStoredMetrics: () => {
        published += 1;
      },
    };

    await createHandler({ ...local.env, RETRY_ATTEMPTS: '2' }, { metrics })({});

    expect(published).toBe(1);
    expect(Object.fromEntries([...recorded].map(([name, { value }]) => [name, value]))).toMatchObject({
      LinesArchived: 1,
      LinesDismantled: 1,
      LinesFailed: 1,
      LinesDeferred: 0,
      FilesArchived: 1,
      BytesArchived: 1000,
      HashMismatches: 1,
      Retries: 1,
    });
    expect(recorded.get('RunDuration')?.unit).toBe('Milliseconds');
    expect(local.tokens.lines.get(ok)?.status).toBe('deleted');
  });
});
