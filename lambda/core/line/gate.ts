import { HousekeepingError } from '../../shared/errors.ts';
import { sameLineId } from '../../shared/ids.ts';
import type { DeleteReply, TokensApi, TokensLine } from '../../shared/ports/tokens.ts';
import type { Manifest } from '../../shared/records.ts';
import type { DismantleGuard } from '../dismantle-guard.ts';
import { describeFile, differences, sameFile } from './compare.ts';

// The one decision that may let a DELETE go: what is known, in; allow (a permit) or why not, out.
// `sendDelete` is the only code that sends a DELETE, and only with a permit of this gate.

/** A file's object as this line's processing verified it in S3 (uploaded and read back, or inspected). */
export interface VerifiedFile {
  readonly key: string;
  readonly size: number;
  readonly sha256: string;
}

/** Everything the gate judges, as known right before the DELETE. */
export interface DeleteFacts {
  /** The line, lower case. */
  readonly id: string;
  readonly request: { readonly dryRun: boolean; readonly archiveOnly: boolean };
  /** The line as read right before the DELETE, `gone` (404, 410, status deleted), or `not-read`. */
  readonly line: TokensLine | 'gone' | 'not-read';
  /** The manifest as written or found in this round; undefined when there is none. */
  readonly manifest: Manifest | undefined;
  /** The objects verified in this round, by key. */
  readonly verified: ReadonlyMap<string, VerifiedFile>;
  /** The run's deadline passed, or the line was stopped. */
  readonly stopped: boolean;
  /** The run's dismantle guard: asked last, for a line the gate would otherwise let go. */
  readonly guard: DismantleGuard;
}

/**
 * Why the gate keeps a line. `changed` alone means: archive what the line states now, then ask
 * again; `held`: the line may be dismantled, but the run's dismantle guard holds it.
 */
export type DenyKind =
  | 'dry-run'
  | 'archive-only'
  | 'stopped'
  | 'no-manifest'
  | 'gone'
  | 'other-line'
  | 'not-finished'
  | 'changed'
  | 'unverified'
  | 'held';

/** Leave to send one DELETE of one line: issued by {@link decideDelete} alone, spent by {@link sendDelete}. */
export interface DeletePermit {
  readonly id: string;
  /** The manifest the DELETE is sent on: every file the line stated, verified in S3. */
  readonly manifest: Manifest;
}

export type DeleteVerdict =
  | { readonly allow: true; readonly permit: DeletePermit }
  | { readonly allow: false; readonly why: DenyKind; readonly reason: string };

/** Permits issued and not yet spent: one DELETE each. */
const issued = new WeakSet<DeletePermit>();

/**
 * May the line be dismantled now? Only when it is asked for, the run is not stopped, the line as
 * read right before states exactly the files the manifest records (names, sizes, hashes), it is
 * this line and still finished, every file of the manifest was verified in S3 at its key in
 * this round, and the run's dismantle guard lets it go (asked last: it counts the lines let go).
 * Anything else keeps the line, with the reason.
 */
export function decideDelete(facts: DeleteFacts): DeleteVerdict {
  const deny = (why: DenyKind, reason: string): DeleteVerdict => ({ allow: false, why, reason });
  const { id, line, manifest } = facts;
  if (facts.request.dryRun) return deny('dry-run', 'a dry run dismantles nothing');
  if (facts.request.archiveOnly) return deny('archive-only', 'an archive-only run dismantles nothing');
  if (facts.stopped) return deny('stopped', 'the run was stopped before the DELETE');
  if (manifest === undefined || !sameLineId(manifest.lineId, id)) {
    return deny('no-manifest', 'no manifest of this line was written or found');
  }
  if (line === 'not-read') return deny('stopped', 'the line was not read again right before its DELETE');
  if (line === 'gone') {
    return deny('gone', 'not found (404 or 410, or status deleted) right before its DELETE: no DELETE sent');
  }
  if (!sameLineId(line.id, id)) return deny('other-line', `the re-read describes another line (${line.id})`);
  if (line.status !== 'finished') {
    return deny('not-finished', `status is now "${line.status}", no longer finished; not dismantled`);
  }
  const changed = differences(manifest.files, line.files);
  if (changed !== undefined) return deny('changed', `the line now states other files: ${changed}`);
  for (const entry of manifest.files) {
    const object = facts.verified.get(entry.key);
    if (object === undefined) return deny('unverified', `${entry.name} was not verified at ${entry.key}`);
    if (!sameFile(object, entry)) {
      return deny(
        'unverified',
        `${entry.name} was verified at ${entry.key} as ${describeFile(object)}, the manifest records ${describeFile(entry)}`,
      );
    }
  }
  const held = facts.guard.claim(id);
  if (held !== undefined) return deny('held', held);
  const permit: DeletePermit = Object.freeze({ id, manifest });
  issued.add(permit);
  return { allow: true, permit };
}

/** Sends the DELETE a permit allows, once: the only DELETE the housekeeper sends. */
export function sendDelete(api: Pick<TokensApi, 'deleteLine'>, permit: DeletePermit): Promise<DeleteReply> {
  if (!issued.delete(permit)) {
    throw new HousekeepingError(
      `line ${permit.id}: no DELETE without a permit of the gate (or a second one)`,
    );
  }
  return api.deleteLine(permit.id);
}
