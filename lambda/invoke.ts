import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import { Archive } from './archive.ts';
import { type AuditReport, auditArchive } from './audit.ts';
import { loadConfig } from './config.ts';
import { createDeps } from './deps.ts';
import { describeError } from './errors.ts';
import { parseInvocation } from './event.ts';
import { type MetricsSink, type RunContext, runHousekeeping, type Summary } from './housekeeping.ts';

/** A metrics sink that also knows how to flush (Powertools `Metrics`). */
export interface PublishingMetrics extends MetricsSink {
  publishStoredMetrics(): void;
}

type LambdaContext = Pick<Context, 'getRemainingTimeInMillis'>;

/** The invocation function: `{"audit": true}` audits the archive; anything else is a pass. */
export interface Handler {
  (
    event: { readonly audit: true; readonly ids?: readonly string[] },
    context?: LambdaContext,
  ): Promise<AuditReport>;
  (event: unknown, context?: LambdaContext): Promise<Summary>;
}

/**
 * Builds the invocation function: config and dependencies once (cold start), then per event:
 * parse it, run the pass (or the audit), publish metrics, return the summary (or the report).
 */
export function createHandler(
  env: Readonly<Record<string, string | undefined>>,
  options: { logger?: Logger; metrics?: PublishingMetrics; onProgress?: RunContext['onProgress'] } = {},
): Handler {
  const config = loadConfig(env);
  const deps = createDeps(config, options);
  const archive = new Archive({
    s3: deps.s3,
    bucket: config.archiveBucket,
    prefix: config.archivePrefix,
    ...config.upload,
  });
  const invoke = async (event: unknown, context?: LambdaContext): Promise<Summary | AuditReport> => {
    const runId = randomUUID();
    // Every log line of this invocation, the SDK's and the failure's included, carries the run id.
    deps.logger.appendPersistentKeys({ runId });
    try {
      const invocation = parseInvocation(event);
      if (invocation.kind === 'audit') {
        const report = await auditArchive({
          s3: deps.s3,
          archive,
          bucket: config.archiveBucket,
          prefix: config.archivePrefix,
          ...(invocation.ids === undefined ? {} : { ids: invocation.ids }),
          now: deps.now,
        });
        deps.logger.info('audit report', { report });
        return report;
      }
      return await runHousekeeping(deps, config, invocation.request, {
        runId,
        ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
        ...(context === undefined ? {} : { remainingMs: () => context.getRemainingTimeInMillis() }),
      });
    } catch (error) {
      deps.logger.error('run failed', {
        errorName: error instanceof Error ? error.name : 'unknown',
        reason: describeError(error),
      });
      throw error;
    } finally {
      options.metrics?.publishStoredMetrics();
    }
  };
  return invoke as Handler;
}
