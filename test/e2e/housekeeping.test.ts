import { afterEach, describe, expect, it } from 'vitest';
import { createHandler } from '../../lambda/invoke.ts';
import { type LocalStack, startLocalStack } from '../local/stack.ts';
import { listKeys, objectDigest, objectJson, objectMetadata } from '../support/archive-inspect.ts';

let stack: LocalStack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function localStack(...args: Parameters<typeof startLocalStack>): Promise<LocalStack> {
  stack = await startLocalStack(...args);
  return stack;
}

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

    const summary = await handler({});

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
    expect(keys).toEqual(
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
        line: { data: { id: string } };
      };
      expect(manifest.lineId).toBe(id);
      expect(manifest.runId).toBe(summary.runId);
      expect(manifest.line.data.id).toBe(id);
      expect(manifest.files.map((f) => f.name).sort()).toEqual([...files.keys()].sort());
      const receipt = (await objectJson(local.s3Client, local.bucket, `tokens/${id}/deleted.json`)) as {
        reply: { data: { id: string; attributes: { status: string } } };
      };
      expect(receipt.reply.data).toMatchObject({ id, attributes: { status: 'deleted' } });
    }
    for (const id of [requested, started]) {
      expect(local.tokens.deleteCount(id)).toBe(0);
      expect(await listKeys(local.s3Client, local.bucket, `tokens/${id}/`)).toEqual([]);
    }
  });
});
