import { createWorkerHandler } from '../app/fanout-invoke.ts';
import { lambdaEntryTools } from './lambda-tools.ts';

/** Lambda entry of the fan-out worker: one SQS batch per invocation, partial batch responses. */
export const handler = createWorkerHandler(process.env, lambdaEntryTools());
