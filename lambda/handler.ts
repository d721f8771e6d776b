import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { createHandler } from './invoke.ts';
import { nodeRuntimeFacts } from './node-runtime.ts';

const logger = new Logger({ serviceName: 'tokens-housekeeper' });
// Once per cold start: shows the Node flags the function really runs with (infra/function-runtime.ts).
logger.info('node runtime', { ...nodeRuntimeFacts() });

const metrics = new Metrics({ namespace: 'TokensHousekeeper', serviceName: 'tokens-housekeeper' });

/**
 * Lambda entry. Configuration is read here, at cold start, so a bad deployment fails loudly at
 * init instead of on the first scheduled run.
 */
export const handler = createHandler(process.env, { logger, metrics });
