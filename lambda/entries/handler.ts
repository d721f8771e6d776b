import { createHandler } from '../app/invoke.ts';
import { lambdaEntryTools } from './lambda-tools.ts';

/**
 * Lambda entry. Configuration is read here, at cold start, so a bad deployment fails loudly at
 * init instead of on the first scheduled run.
 */
export const handler = createHandler(process.env, lambdaEntryTools());
