import { createHash } from 'node:crypto';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Upload } from '@aws-sdk/lib-storage';
import type { Config } from '../../lambda/core/types.ts';
import type { Moved } from './plan.ts';

interface LineAttributes {
  readonly status: string;
  readonly filesizes?: Record<string, number>;
  readonly filehashes?: Record<string, string>;
}

interface ListDocument {
  readonly data: readonly { readonly id: string; readonly attributes: LineAttributes }[];
  readonly links?: { readonly next?: string };
}

/**
 * The same work done the obvious way, to show what the engineering buys: one line at a time,
 * each file downloaded whole into memory with `fetch`, hashed, put with PutObject, then the line
 * DELETEd. No manifest, no receipt, no read-back, no retry. (The local S3 refuses request bodies
 * above 11 MiB, so a file above the multipart threshold goes up from the same in-memory buffer
 * through lib-storage `Upload`; real S3 would take a PutObject up to 5 GB.)
 */
export async function naiveArchive(config: Config): Promise<Moved> {
  const secrets = new SecretsManagerClient({
    ...(config.secretsEndpointOverride === undefined ? {} : { endpoint: config.secretsEndpointOverride }),
  });
  const s3 = new S3Client({
    ...(config.s3EndpointOverride === undefined ? {} : { endpoint: config.s3EndpointOverride }),
    forcePathStyle: config.s3EndpointOverride !== undefined,
  });
  try {
    const secret = await secrets.send(new GetSecretValueCommand({ SecretId: config.sessionKeySecretId }));
    const sessionKey = (JSON.parse(secret.SecretString ?? '{}') as { sessionKey: string }).sessionKey;
    const headers = { 'session-key': sessionKey, accept: 'application/vnd.api+json' };
    const api = (path: string): string => new URL(path, config.tokensApiUrl).href;
    const getJson = async <T>(path: string): Promise<T> => {
      const response = await fetch(api(path), { headers });
      if (!response.ok) throw new Error(`GET ${path} answered ${response.status}`);
      return (await response.json()) as T;
    };

    const finished: string[] = [];
    let next: string | undefined = '/api/tokens';
    while (next !== undefined) {
      const page: ListDocument = await getJson<ListDocument>(next);
      for (const item of page.data) if (item.attributes.status === 'finished') finished.push(item.id);
      next = page.links?.next;
    }

    let files = 0;
    let bytes = 0;
    for (const id of finished) {
      const line = await getJson<{ data: { attributes: LineAttributes } }>(`/api/tokens/${id}`);
      const { filesizes = {}, filehashes = {} } = line.data.attributes;
      for (const [name, size] of Object.entries(filesizes)) {
        const response = await fetch(api(`/api/tokens/${id}/${name}`), { headers });
        if (!response.ok) throw new Error(`GET file ${name} of ${id} answered ${response.status}`);
        const body = Buffer.from(await response.arrayBuffer());
        const sha256 = createHash('sha256').update(body).digest('hex');
        if (body.length !== size || sha256 !== filehashes[name])
          throw new Error(`file ${name} of ${id} differs`);
        const params = { Bucket: config.archiveBucket, Key: `naive/${id}/${name}`, Body: body };
        if (size <= config.upload.multipartThresholdBytes) await s3.send(new PutObjectCommand(params));
        else await new Upload({ client: s3, params, partSize: config.upload.partSizeBytes }).done();
        files += 1;
        bytes += size;
      }
      const deleted = await fetch(api(`/api/tokens/${id}`), { method: 'DELETE', headers });
      await deleted.arrayBuffer();
      if (!deleted.ok) throw new Error(`DELETE ${id} answered ${deleted.status}`);
    }
    return { lines: finished.length, files, bytes };
  } finally {
    s3.destroy();
    secrets.destroy();
  }
}
