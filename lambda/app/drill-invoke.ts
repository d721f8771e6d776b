import { randomBytes } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import { remainingOf, runDeadline } from '../core/deadline.ts';
import { type DrillReport, runRestoreDrill } from '../core/drill.ts';
import { EventError } from '../shared/errors.ts';
import { loadDrillConfig } from './config.ts';
import { createArchive, createS3Client, readKeptReply } from './deps.ts';
import { asRun, type LambdaContext, type PublishingMetrics } from './invoke.ts';
import { serviceLogger } from './logging.ts';

/**
 * Builds the restore drill's invocation function: configuration and the archive once (cold
 * start; no tokens client and no session key: a drill only reads the archive), then per
 * invocation one drill under a fresh id, within the invocation's time less `DEADLINE_RESERVE_MS`,
 * its report written under `{prefix}_drills/` and its metrics published.
 */
export function createDrillHandler(
  env: Readonly<Record<string, string | undefined>>,
  options: { readonly logger?: Logger; readonly metrics?: PublishingMetrics } = {},
): (event: unknown, context?: LambdaContext) => Promise<DrillReport> {
  const config = loadDrillConfig(env);
  const logger = options.logger ?? serviceLogger();
  const archive = createArchive(createS3Client(config, logger), config);
  return (event, context) =>
    asRun({ logger }, options.metrics, context, async (drillId) => {
      parseDrillEvent(event);
      const deadline = runDeadline(remainingOf(context), config, { maxDurationSeconds: undefined });
      try {
        const { report } = await runRestoreDrill({
          archive,
          readKeptReply,
          drillId,
          settings: config.drill,
          seed: randomBytes(32),
          now: Date.now,
          logger,
          signal: deadline.signal,
          writeReport: true,
          ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
        });
        return report;
      } finally {
        deadline.clear();
      }
    });
}

/**
 * A drill takes nothing from its payload: `{}` (what its schedule sends) or none. Anything else
 * is refused, naming the fields, rather than ignored: a drill asked for something it does not do.
 */
export function parseDrillEvent(event: unknown): void {
  if (event === undefined || event === null) return;
  if (typeof event !== 'object' || Array.isArray(event)) {
    throw new EventError(
      `event: a restore drill takes {} or nothing, got ${Array.isArray(event) ? 'an array' : typeof event}`,
    );
  }
  const fields = Object.keys(event);
  if (fields.length > 0) {
    throw new EventError(
      `event: a restore drill takes {} or nothing, got the fields ${fields.map((field) => JSON.stringify(field)).join(', ')} ` +
        '(to choose lines by hand, use npm run audit -- --sample N or --ids)',
    );
  }
}
