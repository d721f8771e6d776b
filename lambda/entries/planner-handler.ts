import { createPlannerHandler } from '../app/fanout-invoke.ts';
import { lambdaEntryTools } from './lambda-tools.ts';

/**
 * Lambda entry of the fan-out planner (the scheduled function in fan-out mode). Configuration,
 * `QUEUE_URL` included, is read here at cold start, so a bad deployment fails loudly at init.
 */
export const handler = createPlannerHandler(process.env, lambdaEntryTools());
