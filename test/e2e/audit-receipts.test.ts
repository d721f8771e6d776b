import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import { type LocalStack, startLocalStack } from '../local/stack.ts';
import { objectJson } from '../support/archive-inspect.ts';
import { runCli } from '../support/run-cli.ts';

let stack: LocalStack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

const AUDIT = 'lambda/entries/audit-cli.ts';

interface Finding {
  id: string;
  file: string;
  key: string;
  problem: string;
}

interface AuditReport {
  lines: number;
  receipts: number;
  intactFiles: number;
  missing: Finding[];
  damaged: Finding[];
  discrepancies: Finding[];
  receiptMismatches: Finding[];
}

/** A local stack whose finished lines one pass archived and dismantled, each with a clean receipt. */
async function dismantledStack(count: number): Promise<{ local: LocalStack; ids: string[] }> {
  stack = await startLocalStack({
    lines: Array.from({ length: count }, () => ({ status: 'finished' as const, fileSize: 3000 })),
  });
  const ids = [...stack.tokens.lines.keys()];
  expect(await createHandler(stack.env)({})).toMatchObject({ dismantled: count, failed: [] });
  return { local: stack, ids };
}

async function receiptText(local: LocalStack, id: string): Promise<string> {
  const reply = await local.s3Client.send(
    new GetObjectCommand({ Bucket: local.bucket, Key: `tokens/${id}/deleted.json` }),
  );
  return (await reply.Body?.transformToString('utf8')) ?? '';
}

async function putReceipt(local: LocalStack, id: string, body: string): Promise<void> {
  await local.s3Client.send(
    new PutObjectCommand({ Bucket: local.bucket, Key: `tokens/${id}/deleted.json`, Body: body }),
  );
}

describe('npm run audit: receipts', () => {
  it('finds lines dismantled cleanly intact, their receipts read', async () => {
    const { local } = await dismantledStack(2);

    const result = await runCli([], local.env, AUDIT);

    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      lines: 2,
      receipts: 2,
      discrepancies: [],
      receiptMismatches: [],
    });
  });

  it('reports a line dismantled with a discrepancy recorded in its receipt, and exits 1', async () => {
    stack = await startLocalStack({ lines: [{ status: 'finished', fileSize: 3000 }] });
    const local = stack;
    const [id] = [...local.tokens.lines.keys()] as [string];
    // The line changes in the last moment: the DELETE reply states another data than the archive.
    local.tokens.onRequest((method, path) => {
      if (method === 'DELETE' && path === `/api/tokens/${id}`) local.tokens.restateFile(id, 'data');
    });
    expect(await createHandler(local.env)({})).toMatchObject({ dismantled: 1, conflicts: 1 });
    const receipt = (await objectJson(local.s3Client, local.bucket, `tokens/${id}/deleted.json`)) as {
      discrepancy: string;
    };

    const result = await runCli(['--ids', id], local.env, AUDIT);

    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as AuditReport;
    expect(report).toMatchObject({ lines: 1, receipts: 1, intactFiles: 1, missing: [], damaged: [] });
    expect(report.discrepancies).toEqual([
      {
        id,
        file: 'deleted.json',
        key: `tokens/${id}/deleted.json`,
        problem: `the line was dismantled with a discrepancy recorded: ${receipt.discrepancy}`,
      },
    ]);
  });

  it('reports a receipt whose recorded DELETE reply states other files than the manifest, and exits 1', async () => {
    const { local, ids } = await dismantledStack(1);
    const [id] = ids as [string];
    const stated = local.tokens.lines.get(id)?.files.get('data')?.sha256 ?? '';
    const other = stated.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    // A receipt rewritten by something else than the pass: its reply now states another hash for data.
    await putReceipt(local, id, (await receiptText(local, id)).replaceAll(stated, other));

    const result = await runCli(['--ids', id], local.env, AUDIT);

    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as AuditReport;
    expect(report.receiptMismatches).toEqual([
      expect.objectContaining({
        id,
        key: `tokens/${id}/deleted.json`,
        problem: expect.stringContaining(
          `the DELETE reply states other files than the manifest: data is archived as`,
        ),
      }),
    ]);
    expect(report.intactFiles).toBe(1);
  });

  it('reports the receipt of another line kept in a line’s folder, and exits 1', async () => {
    const { local, ids } = await dismantledStack(2);
    const [first, second] = ids as [string, string];
    await putReceipt(local, first, await receiptText(local, second));

    const result = await runCli([], local.env, AUDIT);

    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout) as AuditReport;
    expect(report.receiptMismatches).toEqual([
      expect.objectContaining({ id: first, problem: `the receipt is of line "${second}", not of this line` }),
    ]);
  });
});
