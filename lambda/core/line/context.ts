import { HttpStatusError } from '../../shared/errors.ts';
import type { Archive } from '../../shared/ports/archive.ts';
import type { JsonReply, TokensApi } from '../../tokens/api.ts';
import type { TokensLine } from '../../tokens/document.ts';
import type { DismantleGuard } from '../dismantle-guard.ts';
import type { Config, LineWorker, LineWorkRequest, Tally } from '../types.ts';

/** What every step of one line shares: the run's adapters, settings, request and clock. */
export interface LineContext {
  readonly api: TokensApi;
  readonly archive: Archive;
  readonly config: Config;
  readonly request: LineWorkRequest;
  readonly runId: string;
  readonly now: () => number;
  readonly retry: LineWorker['retry'];
  readonly tally: Tally;
  readonly signal: AbortSignal | undefined;
  /** The run's dismantle guard: the gate asks it last; a dry run asks it for its plan. */
  readonly guard: DismantleGuard;
}

/** A line as read by id: validated, with its document exactly as the service sent it. */
export interface ReadLine {
  readonly line: TokensLine;
  readonly bytes: Buffer;
}

/** How often a line that changes while it is archived is archived again before the pass gives up on it. */
export const MAX_ROUNDS = 3;

/**
 * `GET` of the line: its document, or the status that says it is gone (404, 410). `signal`
 * replaces the run's deadline (see {@link TokensApi.getLine}).
 */
export async function getLineOrGone(
  ctx: LineContext,
  id: string,
  signal?: AbortSignal,
): Promise<JsonReply | 404 | 410> {
  try {
    return await ctx.api.getLine(id, signal === undefined ? {} : { signal });
  } catch (error) {
    // Only a reply with a status says the line is gone; a failure of any other kind proves nothing.
    const status = error instanceof HttpStatusError ? error.status : undefined;
    // ...and only for the line's own URL: a redirect that ends in a 404 says nothing of the line.
    const own = error instanceof HttpStatusError && error.details.redirectedTo === undefined;
    if (own && (status === 404 || status === 410)) return status;
    throw error;
  }
}
