/**
 * A second fixed reference for issue 22: the requests the iron rule needs, written as plainly as
 * the copy script (undici `request`, `@aws-sdk/client-s3`, p-limit) and nothing else. For each
 * line: GET the line, GET each file whole and check its size and SHA-256, PutObject it with that
 * checksum, PutObject a manifest, GET the line again and compare what it states, DELETE it,
 * PutObject the receipt. No retries, no conditions, no logging, no budget, no read-back; lines of
 * small files only (a file is held whole). It borrows nothing from the product: it shows what
 * those requests cost with these libraries, so a goal below it is a goal for the libraries.
 */
import { createHash } from 'node:crypto';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { request } from 'undici';
import type { Moved, PlanLine } from './plan.ts';
import { plainS3Client, type ReferenceTarget } from './reference-copy.ts';

interface Statement {
  readonly filesizes?: Record<string, number>;
  readonly filehashes?: Record<string, string>;
}

/** Archives and dismantles every line of `lines`, one line per slot of `target.filesInFlight`. */
export async function ruleFloor(target: ReferenceTarget, lines: readonly PlanLine[]): Promise<Moved> {
  const s3 = plainS3Client(target);
  const limit = pLimit(target.filesInFlight);
  try {
    const done = await Promise.all(lines.map((line) => limit(() => archiveLine(s3, target, line.id))));
    return {
      lines: done.length,
      files: done.reduce((sum, line) => sum + line.files, 0),
      bytes: done.reduce((sum, line) => sum + line.bytes, 0),
    };
  } finally {
    s3.destroy();
  }
}

async function archiveLine(
  s3: S3Client,
  target: ReferenceTarget,
  id: string,
): Promise<{ files: number; bytes: number }> {
  const base = `${target.tokensApiUrl.replace(/\/+$/, '')}/api/tokens/${id}`;
  const headers = { 'session-key': target.sessionKey, accept: 'application/vnd.api+json' };
  const put = (key: string, body: Uint8Array | string, sha256?: string) =>
    s3.send(
      new PutObjectCommand({
        Bucket: target.bucket,
        Key: `rule-floor/${id}/${key}`,
        Body: body,
        ...(sha256 === undefined ? {} : { ChecksumSHA256: sha256 }),
      }),
    );
  const readLine = async (): Promise<{ text: string; statement: Statement }> => {
    const reply = await request(base, { headers });
    const text = await reply.body.text();
    if (reply.statusCode !== 200) throw new Error(`GET line ${id} answered ${reply.statusCode}`);
    return { text, statement: (JSON.parse(text) as { data: { attributes: Statement } }).data.attributes };
  };

  const line = await readLine();
  const { filesizes = {}, filehashes = {} } = line.statement;
  let bytes = 0;
  for (const [name, size] of Object.entries(filesizes)) {
    const reply = await request(`${base}/${name}`, { headers: { 'session-key': target.sessionKey } });
    const body = Buffer.from(await reply.body.arrayBuffer());
    if (reply.statusCode !== 200) throw new Error(`GET file ${name} of ${id} answered ${reply.statusCode}`);
    const digest = createHash('sha256').update(body).digest();
    if (body.length !== size || digest.toString('hex') !== filehashes[name]) {
      throw new Error(`file ${name} of line ${id} is not the stated one`);
    }
    await put(name, body, digest.toString('base64'));
    bytes += size;
  }
  await put('manifest.json', JSON.stringify({ line: line.text, filesizes, filehashes }));
  const again = await readLine();
  if (JSON.stringify(again.statement.filehashes) !== JSON.stringify(filehashes)) {
    throw new Error(`line ${id} changed its files`);
  }
  const deleted = await request(base, { method: 'DELETE', headers });
  const receipt = await deleted.body.text();
  if (deleted.statusCode >= 300) throw new Error(`DELETE ${id} answered ${deleted.statusCode}`);
  await put('receipt.json', JSON.stringify({ status: deleted.statusCode, body: receipt }));
  return { files: Object.keys(filesizes).length, bytes };
}
