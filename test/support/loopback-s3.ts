import type { S3Client } from '@aws-sdk/client-s3';
import { loadArchiveConfig } from '../../lambda/app/config.ts';
import { createS3Client } from '../../lambda/app/deps.ts';
import { serviceLogger } from '../../lambda/app/logging.ts';

/**
 * The archive's S3 client as the function builds it (bucket `archive`), pointed at a test's
 * server on loopback, with dummy credentials: what the store receives is the function's request.
 */
export function archiveS3At(url: string, maxSockets?: number): S3Client {
  const s3 = createS3Client(
    loadArchiveConfig({ ARCHIVE_BUCKET: 'archive', AWS_ENDPOINT_URL_S3: url, AWS_REGION: 'us-east-1' }),
    serviceLogger(),
    maxSockets,
  );
  s3.config.credentials = async () => ({ accessKeyId: 'test', secretAccessKey: 'test' });
  return s3;
}
