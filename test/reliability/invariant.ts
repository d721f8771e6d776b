import type { S3Client } from '@aws-sdk/client-s3';
import { expect } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import type { Summary } from '../../lambda/core/types.ts';
import { embeddedDocumentBytes } from '../../lambda/shared/records.ts';
import { localS3Client } from '../local/stack.ts';
import type { TokensService } from '../local/tokens-service.ts';
import { listKeys, objectDigest, objectJson } from '../support/archive-inspect.ts';
import type { CliResult } from './harness.ts';
import type { Scenario } from './ledger.ts';

/** A file as the simulator states it (the truth the archive is judged against). */
interface StatedFile {
  readonly size: number;
  readonly sha256: string;
}

interface LineBefore {
  readonly status: string;
  readonly deletes: number;
  readonly files: ReadonlyMap<string, StatedFile>;
}

/** The service's state before a run: what the run may and may not change. */
export interface Snapshot {
  readonly lines: ReadonlyMap<string, LineBefore>;
}

/** Takes the {@link Snapshot} to compare a run against; call it after arranging, before acting. */
export function snapshot(tokens: TokensService): Snapshot {
  const lines = new Map<string, LineBefore>();
  for (const [id, line] of tokens.lines) {
    lines.set(id, { status: line.status, deletes: tokens.deleteCount(id), files: new Map(line.files) });
  }
  return { lines };
}

/** How one run ended, as seen from outside. */
export interface RunOutcome {
  /** The summary the handler returned or the CLI printed. */
  readonly summary?: Summary;
  /** What the handler threw (a run-level failure). */
  readonly error?: unknown;
  /** CLI runs: the exit status (null when killed). */
  readonly exitCode?: number | null;
  /** The run was killed: it owes no summary and no receipts. */
  readonly killed?: boolean;
  /** CLI runs: everything printed, checked for secrets. */
  readonly output?: string;
}

/** Awaits an in-process run and records how it ended, without throwing. */
export async function settle(run: Promise<Summary>): Promise<RunOutcome> {
  try {
    return { summary: await run };
  } catch (error) {
    return { error };
  }
}

/** One in-process pass of the handler on `env` (a scheduled event), settled: see {@link settle}. */
export function runHandler(env: Readonly<Record<string, string | undefined>>): Promise<RunOutcome> {
  return settle(createHandler(env)({}));
}

/**
 * The act of most scenarios: the service's {@link Snapshot} just before one pass on `env` (the
 * stack's own unless given), and how the pass ended, for {@link checkInvariant}.
 */
export async function observedPass(
  local: { readonly tokens: TokensService; readonly env: Readonly<Record<string, string | undefined>> },
  env = local.env,
): Promise<{ readonly before: Snapshot; readonly run: RunOutcome }> {
  const before = snapshot(local.tokens);
  return { before, run: await runHandler(env) };
}

/** The {@link RunOutcome} of a CLI child process. */
export function cliOutcome(result: CliResult): RunOutcome {
  return {
    ...(result.summary === undefined ? {} : { summary: result.summary }),
    exitCode: result.code,
    killed: result.signal === 'SIGKILL',
    output: `${result.stdout}\n${result.stderr}`,
  };
}

/** Where the archive is and what must never be printed: a `LocalStack` fits. */
export interface ArchiveUnderTest {
  readonly tokens: TokensService;
  /** The local S3 server itself (not a proxy in front of it). */
  readonly s3: { readonly address: string };
  readonly s3Client: S3Client;
  readonly bucket: string;
  readonly sessionKey: string;
  readonly env: Readonly<Record<string, string>>;
}

export interface InvariantOptions {
  readonly before: Snapshot;
  /** The runs since `before`; several only when they ran at the same time. */
  readonly runs: readonly RunOutcome[];
  /**
   * Keys known to hold bad bytes that no manifest vouches for (a failed line's leftover that the
   * store let through). Counted apart; anything else that does not hash right is a bad object.
   */
  readonly expectedBadObjects?: readonly string[];
  /**
   * `required` (default unless a run was killed): each line deleted by the runs has a receipt.
   * `optional`: the scenario broke receipt writing on purpose.
   */
  readonly receipts?: 'required' | 'optional';
  /** Texts that must appear in no summary, error or output (the session key is always included). */
  readonly secrets?: readonly string[];
  /**
   * Lines the scenario changed in the last moment of their DELETE (the reply states other files
   * than the manifest): deleted without the final statement archived, by design reported loudly.
   */
  readonly changedAtDelete?: readonly string[];
  /**
   * How the bucket is read; by default straight from the local S3 server (the randomized
   * campaign hands in one that reads each object once across its many checks).
   */
  readonly reader?: BucketReader;
}

/** What the checker reads of the bucket: its keys, an object's digest, an object as JSON. */
export interface BucketReader {
  keys(): Promise<readonly string[]>;
  digest(key: string): Promise<{ sha256: string; size: number }>;
  /** The object parsed as JSON; undefined when it is not JSON. */
  json(key: string): Promise<unknown>;
}

export interface InvariantReport {
  /** Lines deleted on the service since `before`. */
  readonly deleted: readonly string[];
  readonly problems: readonly string[];
  readonly objectsHashed: number;
  readonly linesLost: number;
  readonly badObjects: number;
  readonly expectedBadObjects: number;
}

interface ManifestShape {
  schemaVersion?: unknown;
  lineId?: unknown;
  lineDocument?: Record<string, unknown>;
  files?: { name?: unknown; key?: unknown; size?: unknown; sha256?: unknown }[];
}

/** `data` or `data.sha256-{hash}` (a newer version kept beside the original): the file's name and the hash its key names. */
function fileObjectName(name: string): { file: string; keyHash: string | undefined } {
  const match = /^([a-z0-9][a-z0-9_-]{0,31})\.sha256-([0-9a-f]{64})$/.exec(name);
  return match === null ? { file: name, keyHash: undefined } : { file: match[1] ?? '', keyHash: match[2] };
}

/**
 * A client of the local S3 server that hands back stored bytes unchecked: the SDK's own response
 * checksum check would throw on exactly the objects the invariant must measure (bad bytes under
 * a claimed checksum).
 */
function rawClient(address: string): S3Client {
  return localS3Client(address, { responseChecksumValidation: 'WHEN_REQUIRED' });
}

/** What one object of the local S3 server really holds, whatever checksum it claims. */
export async function storedDigest(
  address: string,
  bucket: string,
  key: string,
): Promise<{ sha256: string; size: number }> {
  const client = rawClient(address);
  try {
    return await objectDigest(client, bucket, key);
  } finally {
    client.destroy();
  }
}

/** A JSON object of the bucket, or undefined when it is not JSON. */
async function jsonObject(client: S3Client, bucket: string, key: string): Promise<unknown> {
  try {
    return await objectJson(client, bucket, key);
  } catch {
    return undefined;
  }
}

/** The default {@link BucketReader}: the SDK over the local S3 server, unchecked; close it after. */
function directReader(archive: ArchiveUnderTest): BucketReader & { close(): void } {
  const raw = rawClient(archive.s3.address);
  return {
    keys: () => listKeys(archive.s3Client, archive.bucket),
    digest: (key) => objectDigest(raw, archive.bucket, key),
    json: (key) => jsonObject(raw, archive.bucket, key),
    close: () => raw.destroy(),
  };
}

function isUuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}

function messagesOf(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 10; depth++) {
    parts.push(String(current));
    if (current instanceof Error) {
      parts.push(current.message, current.stack ?? '');
      current = current.cause;
    } else {
      current = undefined;
    }
  }
  return parts.join('\n');
}

/**
 * The iron rule, checked against the simulator and the bucket after a scenario:
 * - every line deleted since `before` was finished, and has every file in the bucket, streamed
 *   back and hashed byte-exact against the stated SHA-256, and a manifest that states them;
 * - no line that was not finished has an object or a DELETE;
 * - every object in the bucket belongs to a finished line, and every file object hashes to the
 *   line's stated hash; a receipt exists only for a deleted line;
 * - each run's summary and exit status tell the truth, and nothing printed holds the session key.
 *
 * Records what it found in the scenario's ledger, then fails the test on any problem.
 */
export async function checkInvariant(
  scenario: Scenario,
  archive: ArchiveUnderTest,
  options: InvariantOptions,
): Promise<InvariantReport> {
  const report = await inspectInvariant(archive, options);
  const ledger = scenario.ledger;
  ledger.invariantChecks += 1;
  ledger.linesDeleted += report.deleted.length;
  ledger.objectsHashed += report.objectsHashed;
  ledger.linesLost += report.linesLost;
  ledger.badObjects += report.badObjects;
  ledger.expectedBadObjects += report.expectedBadObjects;
  expect(report.problems, 'the invariant').toEqual([]);
  return report;
}

/** The checks of {@link checkInvariant}, reporting instead of asserting (to test the checker itself). */
export async function inspectInvariant(
  archive: ArchiveUnderTest,
  options: InvariantOptions,
): Promise<InvariantReport> {
  const { before, runs } = options;
  const expectedBad = new Set(options.expectedBadObjects ?? []);
  const secrets = [archive.sessionKey, ...(options.secrets ?? [])];
  const prefix = archive.env.ARCHIVE_PREFIX ?? 'tokens/';
  const problems: string[] = [];
  let objectsHashed = 0;
  let badObjects = 0;
  let expectedBadObjects = 0;

  const deleted = [...archive.tokens.lines.values()]
    .filter((line) => line.status === 'deleted' && before.lines.get(line.id)?.status !== 'deleted')
    .map((line) => line.id)
    .sort();
  const deletedNow = new Set(deleted);

  // Every object in the bucket, judged on its own.
  const direct = options.reader === undefined ? directReader(archive) : undefined;
  const reader = options.reader ?? (direct as BucketReader);
  /** `{key} {sha256}` of every file object holding a stated version. */
  const goodFiles = new Set<string>();
  const manifestsOf = new Map<string, ManifestShape>();
  const manifests = new Set<string>();
  const receipts = new Set<string>();
  try {
    for (const key of await reader.keys()) {
      // Run reports live beside the lines, under {prefix}_runs/, and hold no file bytes.
      if (key.startsWith(`${prefix}_runs/`) && key.endsWith('.json')) continue;
      // Fan-out mode's queued markers likewise: a line id and a run id, no file bytes.
      if (key.startsWith(`${prefix}_queued/`) && key.endsWith('.json')) continue;
      // Pending-DELETE markers: the service's 202 reply, no file bytes.
      if (key.startsWith(`${prefix}_pending/`) && key.endsWith('.json')) continue;
      const parts = key.startsWith(prefix) ? key.slice(prefix.length).split('/') : [];
      const [id = '', name = ''] = parts;
      const line = before.lines.get(id);
      if (parts.length !== 2 || line === undefined) {
        problems.push(`${key}: object outside any known line's prefix`);
        continue;
      }
      // A line deleted before this stage was finished then (the previous check saw to that).
      if (line.status !== 'finished' && line.status !== 'deleted') {
        problems.push(`${key}: object of a line that was ${line.status}, not finished`);
        continue;
      }
      // A file object must hold a version the service stated for that file at some point (it can
      // change its mind), and a versioned key must hold the version its name says.
      const { file, keyHash } = fileObjectName(name);
      const versions = archive.tokens.lines.get(id)?.history.get(file) ?? [];
      if (versions.length > 0 || line.files.has(file)) {
        const stored = await reader.digest(key);
        objectsHashed += 1;
        const stated = versions.find((v) => v.sha256 === stored.sha256 && v.size === stored.size);
        if (stated !== undefined && (keyHash === undefined || keyHash === stored.sha256)) {
          goodFiles.add(`${key} ${stored.sha256}`);
        } else if (expectedBad.has(key)) {
          expectedBadObjects += 1;
        } else {
          badObjects += 1;
          problems.push(
            `${key}: holds ${stored.size} bytes hashing to ${stored.sha256}, never stated for ${file} (${versions.map((v) => v.sha256).join(', ')})`,
          );
        }
      } else if (name === 'manifest.json') {
        const manifest = ((await reader.json(key)) ?? {}) as ManifestShape;
        manifestsOf.set(id, manifest);
      } else if (/^line\.sha256-[0-9a-f]{64}\.json$/.test(name)) {
        // The line's document as the service sent it: JSON, describing this line.
        const document = (await reader.json(key)) as { data?: { id?: unknown } } | undefined;
        if (String(document?.data?.id).toLowerCase() !== id)
          problems.push(`${key}: not the document of line ${id}`);
        const { sha256 } = await reader.digest(key);
        if (!name.includes(sha256)) problems.push(`${key}: holds a document hashing to ${sha256}`);
      } else if (name === 'deleted.json') {
        const receipt = ((await reader.json(key)) ?? {}) as { lineId?: unknown };
        if (archive.tokens.lines.get(id)?.status !== 'deleted') {
          problems.push(`${key}: receipt for a line the service still has`);
        } else if (receipt.lineId !== id) {
          problems.push(`${key}: receipt names line ${String(receipt.lineId)}`);
        } else {
          receipts.add(id);
        }
      } else {
        problems.push(`${key}: unexpected object in a line's prefix`);
      }
    }
  } finally {
    direct?.close();
  }

  // A manifest states the line's files as the service states them now (or stated them last, for
  // a deleted line), each at a key that holds those very bytes.
  const changedAtDelete = new Set(options.changedAtDelete ?? []);
  for (const [id, manifest] of manifestsOf) {
    const key = `${prefix}${id}/manifest.json`;
    const files = Array.isArray(manifest.files) ? manifest.files : [];
    const listed = files.map((f) => `${String(f.name)} ${String(f.size)} ${String(f.sha256)}`).sort();
    const current = archive.tokens.lines.get(id);
    const truth = [...(current?.files ?? [])]
      .map(([file, { size, sha256 }]) => `${file} ${size} ${sha256}`)
      .sort();
    // Version 3 holds the line's document: its bytes must be the ones it records.
    const documentHeld =
      manifest.schemaVersion !== 3 ||
      (manifest.lineDocument !== undefined && 'bytes' in embeddedDocumentBytes(manifest.lineDocument));
    const wellFormed =
      [1, 2, 3].includes(manifest.schemaVersion as number) && manifest.lineId === id && documentHeld;
    const where = files.every((f) => {
      const fileKey = String(f.key);
      return (
        (fileKey === `${prefix}${id}/${String(f.name)}` ||
          fileKey === `${prefix}${id}/${String(f.name)}.sha256-${String(f.sha256)}`) &&
        goodFiles.has(`${fileKey} ${String(f.sha256)}`)
      );
    });
    const deletedLine = current?.status === 'deleted';
    // A manifest of a newer schema is not this checker's to judge while its line stays.
    if (typeof manifest.schemaVersion === 'number' && manifest.schemaVersion > 3 && !deletedLine) continue;
    const statesNow = listed.join('\n') === truth.join('\n');
    if (!wellFormed || !where) {
      problems.push(
        `${key}: manifest is malformed or names a key that does not hold its file (${JSON.stringify(listed)})`,
      );
    } else if (deletedLine && !statesNow && !changedAtDelete.has(id)) {
      problems.push(`${key}: manifest does not state the deleted line's files (${JSON.stringify(listed)})`);
    } else if (statesNow || changedAtDelete.has(id)) {
      manifests.add(id);
    }
  }

  // Every deleted line is archived, complete and byte-exact.
  let linesLost = 0;
  const receiptsRequired = (options.receipts ?? 'required') === 'required' && !runs.some((run) => run.killed);
  for (const id of deleted) {
    const line = before.lines.get(id);
    const missing: string[] = [];
    if (line?.status !== 'finished') problems.push(`line ${id}: deleted, but it was ${line?.status}`);
    // The line's files as it stated them when it was deleted (it may have changed since `before`).
    const final = changedAtDelete.has(id) ? new Map() : (archive.tokens.lines.get(id)?.files ?? new Map());
    const manifest = manifestsOf.get(id);
    for (const [name, stated] of final) {
      const entry = (manifest?.files ?? []).find((f) => f.name === name);
      if (entry === undefined || !goodFiles.has(`${String(entry.key)} ${stated.sha256}`)) missing.push(name);
    }
    if (!manifests.has(id)) missing.push('manifest.json');
    if (missing.length > 0) {
      linesLost += 1;
      problems.push(`line ${id}: deleted, but its archive lacks a verified ${missing.join(', ')}`);
    }
    // A run that ended normally keeps a receipt of each line it dismantled.
    if (receiptsRequired && !receipts.has(id)) problems.push(`line ${id}: deleted, but no receipt was kept`);
  }

  // No DELETE for a line that was not finished.
  for (const [id, line] of before.lines) {
    if (line.status === 'finished' || line.status === 'deleted') continue;
    const deletes = archive.tokens.deleteCount(id) - line.deletes;
    if (deletes > 0) problems.push(`line ${id}: ${deletes} DELETE sent for a line that was ${line.status}`);
  }

  problems.push(...checkRuns(runs, deletedNow, before, secrets, archive.tokens, changedAtDelete));

  return { deleted, problems, objectsHashed, linesLost, badObjects, expectedBadObjects };
}

/** What each run reported, against what the service and the bucket show. */
function checkRuns(
  runs: readonly RunOutcome[],
  deletedNow: ReadonlySet<string>,
  before: Snapshot,
  secrets: readonly string[],
  tokens: TokensService,
  changedAtDelete: ReadonlySet<string>,
): string[] {
  const problems: string[] = [];
  const alone = runs.length === 1;
  const deleteRequestsSince = [...before.lines].reduce(
    (sum, [id, line]) => sum + tokens.deleteCount(id) - line.deletes,
    0,
  );
  for (const [index, run] of runs.entries()) {
    const label = alone ? 'the run' : `run ${index + 1}`;
    const printed = [
      run.summary === undefined ? '' : JSON.stringify(run.summary),
      run.error === undefined ? '' : messagesOf(run.error),
      run.output ?? '',
    ].join('\n');
    for (const secret of secrets) {
      if (printed.includes(secret)) problems.push(`${label}: its summary, error or output contains a secret`);
    }
    if (run.killed === true) continue;

    const summary = run.summary;
    if (summary === undefined) {
      // A run-level failure: it stops before any line is touched.
      if (run.exitCode !== undefined && run.exitCode !== 2) {
        problems.push(`${label}: failed without a summary but exited ${run.exitCode}, not 2`);
      }
      if (run.error === undefined && run.exitCode === undefined)
        problems.push(`${label}: neither summary nor error`);
      if (alone && deletedNow.size > 0) problems.push(`${label}: failed as a whole, yet lines were deleted`);
      if (alone && deleteRequestsSince > 0) problems.push(`${label}: failed as a whole, yet sent DELETE`);
      continue;
    }
    if (run.exitCode !== undefined) {
      const expected = summary.failed.length > 0 ? 1 : 0;
      if (run.exitCode !== expected) problems.push(`${label}: exited ${run.exitCode}, expected ${expected}`);
    }
    if (summary.archived < summary.dismantled) {
      problems.push(`${label}: archived ${summary.archived} < dismantled ${summary.dismantled}`);
    }
    const failedKept = summary.failed.filter((line) => line.dismantled !== true).length;
    if (summary.archived + failedKept + summary.deferred > summary.finished) {
      problems.push(`${label}: archived + failed + deferred exceeds the ${summary.finished} finished lines`);
    }
    // Items without a readable id are each reported as "(no valid id)"; a line id appears once.
    const reported = [...summary.failed, ...summary.skipped].map((line) => line.id).filter(isUuid);
    if (new Set(reported).size !== reported.length) problems.push(`${label}: a line is reported twice`);
    if (summary.dryRun || summary.archiveOnly) {
      if (summary.dismantled !== 0)
        problems.push(`${label}: dismantled ${summary.dismantled} on a dry/archive-only run`);
      if (alone && deleteRequestsSince > 0) problems.push(`${label}: sent DELETE on a dry/archive-only run`);
    }
    if (summary.dryRun && (summary.archived !== 0 || summary.filesUploaded !== 0)) {
      problems.push(`${label}: archived on a dry run`);
    }
    for (const { id, dismantled } of summary.failed) {
      if (!deletedNow.has(id) || dismantled === true) continue;
      // With passes side by side, a line one pass failed on may have been dismantled by another.
      const other = runs.some(
        (o, i) =>
          i !== index &&
          o.summary !== undefined &&
          !o.summary.failed.some((l) => l.id === id) &&
          !o.summary.skipped.some((l) => l.id === id),
      );
      if (!other) problems.push(`${label}: reports line ${id} failed, but it is deleted`);
    }
    if (alone) {
      for (const { id } of summary.skipped) {
        if (deletedNow.has(id)) problems.push(`${label}: reports line ${id} skipped, but it is deleted`);
      }
      if (summary.dismantled !== deletedNow.size) {
        problems.push(
          `${label}: summary says ${summary.dismantled} dismantled, the service lost ${deletedNow.size}`,
        );
      }
      // A line changed at its DELETE states other files now than were archived: not counted here.
      const settled = [...deletedNow].every((id) => !changedAtDelete.has(id));
      if (!summary.archiveOnly && summary.archived === deletedNow.size && settled) {
        // The archived lines are exactly the deleted ones: their files are all accounted for.
        let files = 0;
        let bytes = 0;
        for (const id of deletedNow) {
          // As the line stated its files when deleted: it may have gained some during the run.
          for (const file of tokens.lines.get(id)?.files.values() ?? []) {
            files += 1;
            bytes += file.size;
          }
        }
        if (summary.filesUploaded + summary.filesReused !== files) {
          problems.push(
            `${label}: ${summary.filesUploaded} uploaded + ${summary.filesReused} reused, but the lines have ${files} files`,
          );
        }
        if (summary.bytes > bytes || (summary.filesReused === 0 && summary.bytes !== bytes)) {
          problems.push(`${label}: ${summary.bytes} bytes reported, the lines hold ${bytes}`);
        }
      }
    }
  }
  // Several passes side by side (with none, there is no account to check).
  if (runs.length > 1 && runs.every((run) => run.summary !== undefined && run.killed !== true)) {
    const total = runs.reduce((sum, run) => sum + (run.summary?.dismantled ?? 0), 0);
    if (total < deletedNow.size)
      problems.push(`the runs dismantled ${total} in all, the service lost ${deletedNow.size}`);
    for (const [index, run] of runs.entries()) {
      if ((run.summary?.dismantled ?? 0) > deletedNow.size) {
        problems.push(
          `run ${index + 1}: dismantled ${run.summary?.dismantled}, more than the ${deletedNow.size} deleted`,
        );
      }
    }
  }
  return problems;
}
