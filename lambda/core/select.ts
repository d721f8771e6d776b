import type { Logger } from '@aws-lambda-powertools/logger';
import { VARIABLES } from '../shared/environment.ts';
import { DocumentError, describeError, ListingError } from '../shared/errors.ts';
import type { ListedLine, TokensApi } from '../shared/ports/tokens.ts';
import type { LineReport, LineWorker, RunRequest, Selection } from './types.ts';
/**
 * Adds the lines whose DELETE an earlier run saw taken (202) but not done, so that this run
 * confirms them and keeps their receipt even when the service no longer lists them.
 */
export async function withPendingLines(
  worker: Pick<LineWorker, 'archive' | 'retry'>,
  selection: Selection,
  request: RunRequest,
  logger: Logger,
): Promise<Selection> {
  if (request.dryRun || request.archiveOnly || request.ids !== undefined) return selection;
  const known = new Set(selection.candidates);
  let extra: string[];
  try {
    extra = (await worker.retry(() => worker.archive.pendingLineIds())).filter((id) => !known.has(id));
  } catch (error) {
    // Only confirmations wait: the listed lines are still worth the run.
    logger.error('pending DELETE markers could not be listed; they are confirmed by a later run', {
      reason: describeError(error),
    });
    return selection;
  }
  if (extra.length === 0) return selection;
  logger.info('lines with a pending DELETE to confirm', { lines: extra.length });
  return {
    ...selection,
    listed: selection.listed + extra.length,
    finished: selection.finished + extra.length,
    candidates: [...selection.candidates, ...extra],
  };
}

/** How far {@link select} follows the list (`Config['listing']`), and when it stops. */
export interface SelectOptions {
  /** Most pages of one listing; default `LIST_MAX_PAGES`'s. */
  readonly maxPages?: number;
  /** Most pages without items in a row; default `LIST_MAX_EMPTY_PAGES`'s. */
  readonly maxEmptyPages?: number;
  /** Stops the listing before the next page (the run's deadline). */
  readonly signal?: AbortSignal;
}

/**
 * Chooses the lines of this run: the ids asked for, or every finished line of the list. A list
 * that loops, or goes on past the page cap or the run of empty pages, throws: the run fails whole.
 */
export async function select(
  api: TokensApi,
  request: RunRequest,
  logger: Logger,
  options: SelectOptions = {},
): Promise<Selection> {
  const {
    maxPages = VARIABLES.LIST_MAX_PAGES.default,
    maxEmptyPages = VARIABLES.LIST_MAX_EMPTY_PAGES.default,
    signal,
  } = options;
  if (request.ids !== undefined) {
    // Read by id later, one by one; a line that is not finished is then reported as skipped.
    return { listed: request.ids.length, finished: request.ids.length, candidates: request.ids, skipped: [] };
  }
  const seen = new Map<string, ListedLine>();
  const skipped: LineReport[] = [];
  let next: string | undefined;
  let pages = 0;
  let emptyInARow = 0;
  // At most one cursor per page, so bounded by maxPages.
  const visited = new Set<string>();
  do {
    signal?.throwIfAborted();
    const page = await api.listPage(next);
    pages += 1;
    emptyInARow = page.lines.length + page.invalid.length === 0 ? emptyInARow + 1 : 0;
    for (const item of page.invalid) {
      skipped.push({ id: item.id ?? '(no valid id)', reason: `malformed list item: ${item.reason}` });
    }
    for (const line of page.lines) {
      if (seen.has(line.id)) {
        logger.warn('line listed twice; processed once', { lineId: line.id });
        continue;
      }
      seen.set(line.id, line);
    }
    next = page.next;
    if (next !== undefined) {
      if (visited.has(next)) throw new DocumentError('list', `links.next repeats ${next}: the listing loops`);
      if (pages >= maxPages) {
        throw new ListingError(pages, `the list went on for more than ${maxPages} pages (LIST_MAX_PAGES)`);
      }
      if (emptyInARow >= maxEmptyPages) {
        throw new ListingError(pages, `${emptyInARow} empty pages in a row (LIST_MAX_EMPTY_PAGES)`);
      }
      visited.add(next);
    }
  } while (next !== undefined);
  const candidates: string[] = [];
  let deleted = 0;
  for (const line of seen.values()) {
    if (line.status === 'finished') candidates.push(line.id);
    else if (line.status === 'deleted') deleted += 1;
    else if (line.unknownStatus) {
      skipped.push({ id: line.id, reason: `unknown status "${line.status}"` });
    }
  }
  logger.info('lines listed', {
    pages,
    listed: seen.size,
    finished: candidates.length,
    malformed: skipped.length,
  });
  const finishedAt = new Map(candidates.map((id) => [id, seen.get(id)?.finishedAt]));
  return { listed: seen.size, finished: candidates.length, deleted, candidates, skipped, finishedAt };
}
