/**
 * The contracts of the core and its callers: configuration, requests, dependencies, results.
 * A leaf: it imports only types, so no implementation imports another for a type.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import type { MetricName } from '../shared/contract.ts';
import type { Archive } from '../shared/ports/archive.ts';
import type { TokensApi } from '../shared/ports/tokens.ts';
import type { RetryListener } from '../shared/retry.ts';
import type { WorkMessage } from '../shared/work-message.ts';

/** The configuration's contracts live beside these, in their own leaf; named here for every caller. */
export type {
  ArchiveConfig,
  Config,
  DismantleLimits,
  DrillConfig,
  DrillSettings,
  FanoutConfig,
  PlannerConfig,
} from './config-types.ts';

/** What one invocation is asked to do, after parsing. */
export interface RunRequest {
  /** List and plan only: nothing is written to S3 and nothing is deleted. */
  readonly dryRun: boolean;
  /** Restrict the pass to these lines, read by id (no full listing). */
  readonly ids: readonly string[] | undefined;
  /** Archive, but do not send DELETE. */
  readonly archiveOnly: boolean;
  /** Start at most this many lines; the rest are deferred to the next run. */
  readonly maxLines: number | undefined;
  /**
   * `keep-both`: an operator resolves conflicts of the named lines: the new version of a file is
   * archived beside the old one (never over it), the manifest records both, then the line is
   * dismantled. Only with `ids`. Default `fail`: a conflict keeps the line.
   */
  readonly onConflict: 'fail' | 'keep-both';
  /** A hard deadline for the run, in seconds (the terminal's `--max-duration`). */
  readonly maxDurationSeconds: number | undefined;
  /** A grace period for this run, in seconds, instead of `MIN_AGE` (0: none). */
  readonly minAgeSeconds: number | undefined;
  /** The most lines this run may dismantle, instead of `MAX_DISMANTLES_PER_RUN`. */
  readonly maxDismantles?: number | undefined;
  /** The dismantle guard's share for this run, instead of `MAX_DISMANTLE_SHARE` (1: no check). */
  readonly maxDismantleShare?: number | undefined;
}

/** A sink for CloudWatch metrics; Powertools `Metrics` fits it. */
export interface MetricsSink {
  addMetric(name: MetricName, unit: 'Count' | 'Bytes' | 'Milliseconds', value: number): void;
}

/**
 * Everything the core talks to: adapters, built once per container by `createDeps()` (app/deps.ts)
 * or by a test. The core never builds a client.
 */
export interface Deps {
  /** The archive bucket. */
  readonly archive: Archive;
  /**
   * A tokens service client for one run: its retries reported to `onRetry`, its requests and
   * retries stopped by `signal` (the run's deadline). The session key, the HTTP agent and the
   * request cap behind it are the container's.
   */
  readonly tokens: (run: { readonly onRetry: RetryListener; readonly signal?: AbortSignal }) => TokensApi;
  readonly now: () => number;
  readonly logger: Logger;
  readonly metrics?: MetricsSink;
}

/** Per-invocation facts the pass cannot know by itself. */
export interface RunContext {
  /** Milliseconds left in this Lambda invocation; absent outside Lambda. */
  readonly remainingMs?: () => number;
  readonly runId?: string;
  /** Called after each line, for progress displays. */
  readonly onProgress?: (progress: Progress) => void;
}

export interface LineReport {
  readonly id: string;
  readonly reason: string;
  /** The service states files other than the archive holds (see "Conflicts" in docs/configuration.md). */
  readonly conflict?: true;
  /** Failed, and yet gone from the service (its DELETE reply disagreed with the archive). */
  readonly dismantled?: true;
}

/** One line of a dry-run plan. */
export interface PlannedLine {
  readonly id: string;
  readonly alphabet: string | null;
  readonly digits: string | null;
  readonly files: number;
  readonly bytes: number;
  /**
   * `wait`: finished less than the grace period ago; taken by a run at or after `until`.
   * `archive-and-hold`: would be archived, and kept on the service by the dismantle guard (`held` says why).
   */
  readonly action: 'archive' | 'archive-and-dismantle' | 'archive-and-hold' | 'wait';
  readonly until?: string;
  readonly held?: string;
}

/** What a run did; returned by the handler and logged as one line. */
export interface Summary {
  readonly runId: string;
  readonly dryRun: boolean;
  readonly archiveOnly: boolean;
  /** Lines the run looked at: listed by the service, or named in `ids`. */
  readonly listed: number;
  /** Of those, lines in state `finished` (for `ids`: found finished when read). */
  readonly finished: number;
  /** Lines whose every file and manifest are verified in S3 by this run. */
  readonly archived: number;
  /** Lines dismantled (DELETE confirmed) by this run. */
  readonly dismantled: number;
  /** Bytes uploaded by this run. */
  readonly bytes: number;
  readonly filesUploaded: number;
  /** Files found already archived and verified, so not uploaded again. */
  readonly filesReused: number;
  /** Finished lines not started for lack of time or because of `maxLines`; the next run takes them. */
  readonly deferred: number;
  /** Finished lines younger than the grace period (`MIN_AGE`): a later run takes them. */
  readonly waiting: number;
  readonly retries: number;
  /** Files whose bytes did not match their stated size or SHA-256 (each once). */
  readonly hashMismatches: number;
  /** The downloads of those files that did not match, retries included. */
  readonly hashMismatchAttempts: number;
  /** Lines whose service statement differs from their archive; each is also in `failed`. */
  readonly conflicts: number;
  readonly skipped: readonly LineReport[];
  readonly failed: readonly LineReport[];
  /** Archived lines whose DELETE was taken (202) but not yet seen done; the next run confirms them. */
  readonly pending: readonly LineReport[];
  /** Archived lines the dismantle guard kept on the service (a later run dismantles them). */
  readonly held: readonly LineReport[];
  /**
   * Why the dismantle guard held lines in this run (for a dry run: would hold), the first reason
   * it gave; absent when it held none.
   */
  readonly guardTripped?: string;
  readonly plan?: readonly PlannedLine[];
  /** Lines planned, when `plan` holds only the first of them (a Lambda reply stays bounded). */
  readonly planLines?: number;
  /** Where the whole plan is then: `{prefix}_plans/{date}/{runId}.json`. */
  readonly planKey?: string;
  /**
   * Why the run looked at no line at all: the invocation started with no more than
   * `DEADLINE_RESERVE_MS` left, so not even the listing could be done. The next run takes them.
   * (A deadline reached while listing fails the run with a `DeadlineError`.)
   */
  readonly notStarted?: string;
  readonly durationMs: number;
}

/** Lines done so far, for progress displays. */
export interface Progress {
  readonly done: number;
  readonly total: number;
  readonly bytes: number;
}

/** The lines a run chose to work on, and what the listing skipped. */
export interface Selection {
  readonly listed: number;
  readonly finished: number;
  /** Of the listed lines, those with status `deleted` (a service may keep listing them); none for `ids`. */
  readonly deleted?: number;
  /** Line ids to process, in order. */
  readonly candidates: readonly string[];
  readonly skipped: readonly LineReport[];
  /** `timestamps.finished` of each listed candidate, as the list states it (none for `ids`). */
  readonly finishedAt?: ReadonlyMap<string, string | undefined>;
}

/**
 * What became of one line; never thrown, always reported. One vocabulary from the line's work to
 * the summary, the run report and the fan-out's line records.
 */
export type LineOutcome =
  | { readonly outcome: 'planned'; readonly plan: PlannedLine }
  | { readonly outcome: 'skipped'; readonly reason: string; readonly notFinished: boolean }
  /** Finished less than the grace period (`MIN_AGE`) ago: neither archived nor dismantled yet. */
  | { readonly outcome: 'waiting'; readonly until: string }
  | ({ readonly outcome: 'archived' | 'dismantled' } & FileCounts)
  /** Archived, and the DELETE was taken (202) but the line still shows: the next run confirms it. */
  | ({ readonly outcome: 'pending'; readonly reason: string } & FileCounts)
  /** Archived and verified, and kept on the service by the run's dismantle guard. */
  | ({ readonly outcome: 'held'; readonly reason: string } & FileCounts)
  | ({
      readonly outcome: 'failed';
      readonly reason: string;
      readonly errorName: string;
      /** The service's statement differs from the archive (a conflict, counted in `Conflicts`). */
      readonly conflict?: true;
      /** The line is gone from the service all the same (its DELETE reply disagreed with the archive). */
      readonly dismantled?: true;
    } & Partial<FileCounts>);

/** A line's outcome, with its id and how long its work took. */
export type LineResult = { readonly id: string; readonly durationMs: number } & LineOutcome;

export interface FileCounts {
  readonly bytes: number;
  readonly uploaded: number;
  readonly reused: number;
}

/** Counters shared by the concurrent lines of one run. */
export interface Tally {
  retries: number;
  /** Files whose bytes did not match their stated size or SHA-256, each counted once. */
  hashMismatches: number;
  /** Downloads of those files that did not match (a file retried five times counts five). */
  hashMismatchAttempts: number;
}

/** What to do with a file the service now states differently from its verified archive. */
export type OnConflict = 'fail' | 'keep-both';

/** How lines are to be handled in this run. */
export interface LineWorkRequest {
  readonly dryRun: boolean;
  readonly archiveOnly: boolean;
  /** `keep-both`: an operator's explicit resolution of conflicts; `fail` (default) keeps the line. */
  readonly onConflict?: OnConflict;
  /** The grace period: a line finished less than this ago waits for a later run. */
  readonly minAgeMs?: number | undefined;
}

/** The per-line archive-then-dismantle, shared by the pass and the fan-out worker. */
export interface RunTools {
  readonly api: TokensApi;
  readonly archive: Archive;
  readonly tally: Tally;
  /**
   * Runs `operation` with the run's retry policy; each retry is counted in the tally and logged.
   * `signal` replaces the run's deadline (for what must finish past it).
   */
  retry<T>(operation: () => Promise<T>, signal?: AbortSignal): Promise<T>;
}

/** The per-line archive-then-dismantle of one run, shared by the pass and the fan-out worker. */
export interface LineWorker extends RunTools {
  /** Processes one line; every outcome, failures included, is returned, never thrown. */
  processLine(id: string, logger: Logger): Promise<LineResult>;
}

/** What the planner did; returned by the planner and kept in its run report. */
export interface FanoutPlan {
  readonly runId: string;
  readonly mode: 'fanout';
  readonly archiveOnly: boolean;
  /** Lines the planner looked at: listed by the service, or named in `ids`. */
  readonly listed: number;
  /** Of those, lines in state `finished` (for `ids`: as named; the worker reads each). */
  readonly finished: number;
  /** Lines sent to the work queue by this run. */
  readonly enqueued: number;
  /** Finished lines not sent because a message for them was sent less than the marker TTL ago. */
  readonly alreadyQueued: number;
  /** Finished lines not sent because of `maxLines` or the time budget; the next run takes them. */
  readonly deferred: number;
  /** Finished lines younger than the grace period (`MIN_AGE`): not sent; a later run sends them. */
  readonly waiting: number;
  /** Lines sent with the dismantle guard's hold: their worker archives them and keeps them on the service. */
  readonly held: number;
  /** Why the dismantle guard held lines in this run, the first reason; absent when it held none. */
  readonly guardTripped?: string;
  readonly retries: number;
  /** Malformed list items. */
  readonly skipped: readonly LineReport[];
  /** Lines that could not be enqueued; they stay on the service and the next run takes them. */
  readonly failed: readonly LineReport[];
  readonly durationMs: number;
}

/** One message of a worker's batch, read: its id in the queue and the work it names. */
export interface WorkItem {
  readonly messageId: string;
  readonly message: WorkMessage;
}

/** What a worker did with the work items of one batch. */
export interface WorkReport {
  /** The messages to leave in the queue (failed lines, lines not started for lack of time). */
  readonly retry: ReadonlySet<string>;
  /** One summary per run the batch's messages came from (usually one). */
  readonly summaries: readonly Summary[];
}

/** The record of one line kept by a worker, `{prefix}_runs/{date}/{runId}/lines/{lineId}.json`. */
export interface LineRecord {
  readonly schemaVersion: 1;
  readonly runId: string;
  readonly lineId: string;
  readonly at: string;
  readonly messageIds: readonly string[];
  readonly result: LineResult;
}
