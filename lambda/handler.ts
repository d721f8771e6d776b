import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { createHandler } from './invoke.ts';

const logger = new Logger({ serviceName: 'tokens-housekeeper' });
const metrics = new Metrics({ namespace: 'TokensHousekeeper', serviceName: 'tokens-housekeeper' });

/**
 * Lambda entry. Configuration is read here, at cold start, so a bad deployment fails loudly at
 * init instead of on the first scheduled run.
 */
export const handler = createHandler(process.env, { logger, metrics });
