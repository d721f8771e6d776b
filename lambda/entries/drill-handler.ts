import { createDrillHandler } from '../app/drill-invoke.ts';
import { lambdaEntryTools } from './lambda-tools.ts';

/**
 * Lambda entry of the restore drill (its own function and schedule, with read access to the
 * archive and write access under `{prefix}_drills/` only). Configuration is read at cold start.
 */
export const handler = createDrillHandler(process.env, lambdaEntryTools());
