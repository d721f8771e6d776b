import { createWorkerHandler } from './app/fanout-invoke.ts';
import { lambdaEntryTools } from './entry.ts';

/** Lambda entry of the fan-out worker: one SQS batch per invocation, partial batch responses. */
export const handler = createWorkerHandler(process.env, lambdaEntryTools());
