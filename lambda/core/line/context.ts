import type { Archive } from '../../shared/ports/archive.ts';
import type { TokensApi } from '../../shared/ports/tokens.ts';
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

/** How often a line that changes while it is archived is archived again before the pass gives up on it. */
export const MAX_ROUNDS = 3;
