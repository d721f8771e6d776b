/**
 * The work queue as the fan-out planner uses it: a port. `lambda/queue/` implements it over SQS;
 * the unit tests with a fake. Types only: a leaf, so the core and the adapters both import it.
 */

/** One message to send; `id` is unique within its batch. */
export interface QueueEntry {
  readonly id: string;
  readonly body: string;
}

/** An entry the queue did not accept, and whether sending it again may help. */
export interface SendFailure {
  readonly id: string;
  readonly reason: string;
  readonly retryable: boolean;
}

/** Where the planner sends work; SQS in production, a fake in unit tests. */
export interface WorkQueue {
  /**
   * Sends up to `SQS_BATCH_LIMIT` (shared/work-message.ts) entries in one request and returns those that
   * were not accepted. Throws when the request as a whole fails.
   */
  sendBatch(entries: readonly QueueEntry[]): Promise<readonly SendFailure[]>;
}
