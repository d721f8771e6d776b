import { HousekeepingError } from './errors/base.ts';

// The error family of the housekeeper, split by what happened. The kinds of a failed request to
// the tokens service and of a failed read of the archive live in errors/, one file each.
export { ArchiveReadError } from './errors/archive-read-error.ts';
export { HousekeepingError } from './errors/base.ts';
export { HttpStatusError } from './errors/http-status-error.ts';
export { NetworkError } from './errors/network-error.ts';
export { type RequestDetails, TokensApiError } from './errors/tokens-api-error.ts';
export { TokensTimeoutError } from './errors/tokens-timeout-error.ts';
export { UnreadableReplyError } from './errors/unreadable-reply-error.ts';

/** A configuration variable is missing or malformed. Thrown at cold start. */
export class ConfigError extends HousekeepingError {
  override readonly name = 'ConfigError';
  /** Every problem of the load, this one first (one when only one variable is at fault). */
  readonly all: readonly ConfigError[];
  constructor(
    /** The first variable at fault. */
    readonly variable: string,
    problem: string,
    others: readonly ConfigError[] = [],
  ) {
    super([`${variable}: ${problem}`, ...others.map((other) => other.message)].join('; '));
    this.all = [this, ...others];
  }

  /** One error for all the problems of a load: every variable named at once. */
  static of(problems: readonly ConfigError[]): ConfigError {
    const [first, ...others] = problems;
    if (first === undefined) throw new RangeError('no configuration problem to report');
    if (others.length === 0) return first;
    return new ConfigError(first.variable, first.message.slice(first.variable.length + 2), others);
  }

  /** The names of every variable at fault. */
  get variables(): readonly string[] {
    return this.all.map((error) => error.variable);
  }
}

/** The invocation payload is not a scheduled event nor a valid manual payload. Nothing is done. */
export class EventError extends HousekeepingError {
  override readonly name = 'EventError';
}

/** The session key could not be read from Secrets Manager. Names the secret id, never its value. */
export class SecretError extends HousekeepingError {
  override readonly name = 'SecretError';
  constructor(
    readonly secretId: string,
    problem: string,
    options?: { cause?: unknown },
  ) {
    super(`secret ${secretId}: ${problem}`, options);
  }
}

/** A document from the tokens service does not have the shape the API reference promises. */
export class DocumentError extends HousekeepingError {
  override readonly name = 'DocumentError';
  constructor(
    readonly where: string,
    problem: string,
  ) {
    super(`${where}: ${problem}`);
  }
}

/** A file's bytes do not match the line's stated size or SHA-256. The file is never archived. */
export class IntegrityError extends HousekeepingError {
  override readonly name = 'IntegrityError';
  // A corrupted or truncated transfer may come out right the next time.
  override readonly retryable = true;
  constructor(
    readonly lineId: string,
    readonly file: string,
    readonly expected: { readonly size: number; readonly sha256: string },
    readonly actual: { readonly size: number; readonly sha256?: string },
    problem: string,
  ) {
    super(`line ${lineId} file ${file}: ${problem}`);
  }
}

/** A file as one side states it: the service now, or the archive from an earlier run. */
export interface FileStatement {
  readonly size: number;
  readonly sha256: string;
}

/**
 * The service states a file (or a set of files) other than what is already archived for the line:
 * the archive is never overwritten and the line is not dismantled until an operator resolves it
 * (`onConflict: "keep-both"`). Not retryable: only a person can decide.
 */
export class ConflictError extends HousekeepingError {
  override readonly name = 'ConflictError';
  constructor(
    readonly lineId: string,
    readonly file: string,
    readonly archived: FileStatement | undefined,
    readonly stated: FileStatement | undefined,
    problem: string,
  ) {
    super(`line ${lineId} file ${file}: conflict: ${problem}`);
  }
}

/**
 * Another pass changed an archive object while this one planned against it (a conditional write
 * refused with 412): the line's files are planned again from what is there now.
 */
export class ArchiveChangedError extends HousekeepingError {
  override readonly name = 'ArchiveChangedError';
  constructor(
    readonly key: string,
    problem: string,
  ) {
    super(`s3 object ${key}: ${problem}`);
  }
}

/** The run's deadline passed (Lambda time, or `--max-duration`): in-flight work was stopped. */
export class DeadlineError extends HousekeepingError {
  override readonly name = 'DeadlineError';
}

/**
 * A line that is not to be touched: not finished when read by id (or gone), or invalid. Reported
 * as skipped with the reason, never as a failure.
 */
export class LineSkippedError extends HousekeepingError {
  override readonly name = 'LineSkippedError';
  constructor(
    reason: string,
    /** Not finished (or gone): the line does not count among the run's finished lines. */
    readonly notFinished: boolean,
  ) {
    super(reason);
  }
}

/** S3 refused a request, or what landed in S3 is not what was sent. */
export class ArchiveError extends HousekeepingError {
  override readonly name = 'ArchiveError';
  override readonly retryable: boolean;
  constructor(
    readonly key: string,
    problem: string,
    options?: { cause?: unknown; retryable?: boolean },
  ) {
    super(`s3 object ${key}: ${problem}`, options);
    this.retryable = options?.retryable ?? false;
  }
}

/** A remote value would become an unsafe URL or S3 key (another origin, path traversal). */
export class UnsafeReferenceError extends HousekeepingError {
  override readonly name = 'UnsafeReferenceError';
}

/** The work queue (fan-out mode) refused a message, a batch, or part of one. */
export class QueueError extends HousekeepingError {
  override readonly name = 'QueueError';
  override readonly retryable: boolean;
  constructor(problem: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(`work queue: ${problem}`, options);
    this.retryable = options?.retryable ?? false;
  }
}

/** A message for logs and summaries, from anything thrown. */
export function describeError(error: unknown): string {
  if (error instanceof HousekeepingError) return error.message;
  if (!(error instanceof Error)) return String(error);
  // A library's error (the AWS SDK's, undici's): its name and HTTP status say what happened.
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  if (error.name === 'Error' && status === undefined) return error.message;
  return `${error.name}${status === undefined ? '' : ` (HTTP ${status})`}: ${error.message}`;
}

/**
 * Why an aborted operation stopped, whatever it threw instead (an `AbortError`): the reason the
 * signal was aborted with when it is one of ours (the run's {@link DeadlineError}, or the failure
 * that stopped a line), a {@link DeadlineError} otherwise. Undefined while not aborted.
 */
export function deadlineReason(signal: AbortSignal | undefined): HousekeepingError | undefined {
  if (signal?.aborted !== true) return undefined;
  const reason: unknown = signal.reason;
  return reason instanceof HousekeepingError
    ? reason
    : new DeadlineError(`run stopped: ${describeError(reason)}`);
}

/**
 * The list of lines did not end within its bounds (too many pages, or too many empty pages in a
 * row). A run-level failure: nothing is archived or dismantled on the strength of a partial list.
 */
export class ListingError extends HousekeepingError {
  override readonly name = 'ListingError';
  constructor(
    readonly pages: number,
    problem: string,
  ) {
    super(`list of lines: ${problem} (after ${pages} pages); nothing is dismantled on a partial list`);
  }
}

/**
 * The service sent the session key back in a document the archive would keep (the line's
 * document): it is not stored, and the line is kept (no DELETE) until the service stops echoing
 * it. The message names the line and the document, never the key.
 */
export class SessionKeyEchoError extends HousekeepingError {
  override readonly name = 'SessionKeyEchoError';
  constructor(
    readonly lineId: string,
    readonly document: string,
  ) {
    super(`line ${lineId}: ${document} echoes the session key; not stored, and the line is kept (no DELETE)`);
  }
}
