import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { createWorkerHandler } from './fanout-invoke.ts';
import { nodeRuntimeFacts } from './node-runtime.ts';

const logger = new Logger({ serviceName: 'tokens-housekeeper' });
// Once per cold start: shows the Node flags the function really runs with (infra/function-runtime.ts).
logger.info('node runtime', { ...nodeRuntimeFacts() });

// The same service dimension as the pass: the alarms on LinesFailed and HashMismatches see both.
const metrics = new Metrics({ namespace: 'TokensHousekeeper', serviceName: 'tokens-housekeeper' });

/** Lambda entry of the fan-out worker: one SQS batch per invocation, partial batch responses. */
export const handler = createWorkerHandler(process.env, { logger, metrics });
