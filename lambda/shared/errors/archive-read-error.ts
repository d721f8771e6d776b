import { HousekeepingError } from './base.ts';

/**
 * A read of the archive failed before it could judge anything: a HEAD or GET that got no reply,
 * a 5xx after the SDK's retries, a body that broke off or timed out. Inconclusive: the object may
 * be whole. It never justifies an overwrite, nor a DELETE.
 */
export class ArchiveReadError extends HousekeepingError {
  override readonly name = 'ArchiveReadError';
  override readonly retryable = true;
  constructor(
    readonly key: string,
    problem: string,
    options?: { cause?: unknown },
  ) {
    super(`s3 object ${key}: ${problem}`, options);
  }
}
