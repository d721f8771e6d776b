import type { Logger } from '@aws-lambda-powertools/logger';
import pLimit from 'p-limit';
import { deadlineReason, IntegrityError } from '../../shared/errors.ts';
import type { Manifest } from '../../shared/records.ts';
import type { FileCounts } from '../types.ts';
import type { LineContext } from './context.ts';
import type { FilePlan } from './plan.ts';

/** The files one line's processing uploaded, across its rounds, to count uploads and reuses once. */
export class Uploads {
  readonly #files = new Map<string, { readonly size: number; readonly sha256: string }>();

  /** `key` holds `file`'s bytes: uploaded through the verifier and read back. */
  add(key: string, file: { readonly size: number; readonly sha256: string }): void {
    this.#files.set(key, { size: file.size, sha256: file.sha256 });
  }

  /** What this line's work verified at `key`, if it uploaded it. */
  verified(key: string): { readonly size: number; readonly sha256: string } | undefined {
    return this.#files.get(key);
  }

  /** Uploaded and reused files of the line as the manifest states it. */
  counts(manifest: Manifest): FileCounts {
    let uploaded = 0;
    let bytes = 0;
    for (const file of manifest.files) {
      const size = this.#files.get(file.key)?.size;
      if (size === undefined) continue;
      uploaded += 1;
      bytes += size;
    }
    return { bytes, uploaded, reused: manifest.files.length - uploaded };
  }
}

/**
 * Downloads and uploads the files that need it. The first file that fails for good stops the
 * line at once: queued files are not started and the ones in flight are aborted.
 */
export async function uploadAll(
  ctx: LineContext,
  id: string,
  plans: readonly FilePlan[],
  uploads: Uploads,
  logger: Logger,
): Promise<void> {
  const { api, archive, retry, config } = ctx;
  const stopLine = new AbortController();
  const signal = ctx.signal === undefined ? stopLine.signal : AbortSignal.any([ctx.signal, stopLine.signal]);
  const limit = pLimit(config.fileConcurrency);
  let failure: unknown;
  await Promise.all(
    plans
      .filter((plan) => plan.upload)
      .map(({ file, key, condition }) =>
        limit(async () => {
          if (signal.aborted) return;
          let mismatched = false;
          try {
            await retry(async () => {
              const body = await api.openFile(api.fileUrl(id, file), signal);
              try {
                await archive.uploadVerified(id, file, body, { key, signal, condition });
              } catch (error) {
                if (error instanceof IntegrityError) {
                  ctx.tally.hashMismatchAttempts += 1;
                  if (!mismatched) ctx.tally.hashMismatches += 1;
                  mismatched = true;
                  logger.warn('file does not match its stated size or hash', {
                    file: file.name,
                    error: error.message,
                  });
                }
                throw error;
              }
            }, signal);
            uploads.add(key, file);
            logger.debug('file archived', { file: file.name, key, size: file.size });
          } catch (error) {
            if (failure === undefined) {
              failure = deadlineReason(ctx.signal) ?? error;
              // Queued files see the aborted signal and return at once (p-limit's clearQueue
              // would leave their promises unsettled, and the line with them).
              stopLine.abort(failure);
            }
          }
        }),
      ),
  );
  if (failure !== undefined) throw failure;
}
