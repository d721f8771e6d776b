import type { RunRequest } from './types.ts';
export const FULL_PASS: RunRequest = Object.freeze({
  dryRun: false,
  ids: undefined,
  archiveOnly: false,
  maxLines: undefined,
  onConflict: 'fail',
  maxDurationSeconds: undefined,
  minAgeSeconds: undefined,
});
