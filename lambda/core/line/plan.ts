import type { Logger } from '@aws-lambda-powertools/logger';
import { ConflictError } from '../../shared/errors.ts';
import type { LineFile } from '../../shared/ids.ts';
import type { StoredFile, WriteCondition } from '../../shared/ports/archive.ts';
import type { TokensLine } from '../../shared/ports/tokens.ts';
import type { Manifest, ManifestFile } from '../../shared/records.ts';
import { describeFile, sameFile } from './compare.ts';
import type { LineContext } from './context.ts';

/** Where one stated file goes, and whether it must be uploaded. */
export interface FilePlan {
  readonly file: LineFile;
  readonly key: string;
  readonly upload: boolean;
  /** The condition of its upload: what the plan saw at `key`. */
  readonly condition: WriteCondition;
  /** Earlier versions this file replaces in the manifest (keep-both only). */
  readonly supersedes: readonly ManifestFile[];
  /** What the object at `key` was inspected and verified to hold, when it need not be uploaded. */
  readonly verified?: { readonly size: number; readonly sha256: string };
}

/**
 * Where each stated file goes. A verified archive is never overwritten: a file the archive (its
 * manifest, or the object at the file's key) holds as another version is a conflict, unless the
 * operator asked to keep both, when the new version goes beside it at its own key.
 */
export async function planFiles(
  ctx: LineContext,
  line: TokensLine,
  manifest: Manifest | undefined,
  present: ReadonlySet<string>,
  logger: Logger,
): Promise<FilePlan[]> {
  const { archive, retry, request } = ctx;
  const keepBoth = request.onConflict === 'keep-both';
  const id = line.id;
  const stated = new Set(line.files.map((file) => file.name));
  const plans: FilePlan[] = [];
  const dropped = (manifest?.files ?? []).filter((entry) => !stated.has(entry.name));
  for (const entry of dropped) {
    if (!keepBoth) {
      throw new ConflictError(
        id,
        entry.name,
        entry,
        undefined,
        `archived as ${describeFile(entry)}, the service no longer states it`,
      );
    }
  }
  const inspect = (key: string): Promise<StoredFile> =>
    present.has(key.slice(archive.lineKey(id).length))
      ? retry(() => archive.inspect(key))
      : Promise.resolve({ kind: 'missing' });
  const planning: FilePlanning = { id, archive, keepBoth, inspect, logger };

  for (const file of line.files) {
    plans.push(await planFile(planning, file, manifest));
  }
  return plans;
}

/** What planning each file of one line shares. */
interface FilePlanning {
  readonly id: string;
  readonly archive: LineContext['archive'];
  readonly keepBoth: boolean;
  /** What the object at a key holds (missing when the line's listing showed no object there). */
  readonly inspect: (key: string) => Promise<StoredFile>;
  readonly logger: Logger;
}

/** The two keys a file may have: its name's, and (keep-both) its version's. */
interface FileKeys {
  readonly defaultKey: string;
  readonly newKey: string;
}

/**
 * Where one stated file goes: the key its manifest entry allows, then what the object there holds;
 * anything that is another version of the file, and not to be kept beside it, is a conflict.
 */
async function planFile(
  planning: FilePlanning,
  file: LineFile,
  manifest: Manifest | undefined,
): Promise<FilePlan> {
  const { id, archive, logger } = planning;
  const keys: FileKeys = {
    defaultKey: archive.fileKey(id, file.name),
    newKey: archive.versionKey(id, file.name, file.sha256),
  };
  const entry = manifest?.files.find((recorded) => recorded.name === file.name);
  const recorded = keyFromManifest(planning, file, entry, keys);
  const { supersedes } = recorded;
  const { key, state } = await inspectKey(planning, file, recorded.key, keys, supersedes);
  if (state.kind === 'damaged' && !sameFile(state.recorded, file)) {
    // It records another version of the file: damaged or not, never replaced by this one.
    throw new ConflictError(
      id,
      file.name,
      state.recorded,
      file,
      `${key} records ${describeFile(state.recorded)} (and does not hold it whole: ${state.problem}), the service states ${describeFile(file)}`,
    );
  }
  if (state.kind === 'damaged') {
    logger.warn('archived object does not hold what it recorded; uploading it again', {
      file: file.name,
      key,
      problem: state.problem,
    });
  }
  if (state.kind === 'verified' && !sameFile(state.recorded, file)) {
    throw new ConflictError(
      id,
      file.name,
      state.recorded,
      file,
      `${key} holds ${describeFile(state.recorded)}`,
    );
  }
  if (state.kind === 'unrecorded') {
    throw unrecorded(id, file, key);
  }
  return {
    file,
    key,
    upload: state.kind !== 'verified',
    // Only where the plan saw nothing, or only over the damaged object it saw.
    condition: state.kind === 'damaged' ? { mustMatch: state.version } : { mustNotExist: true },
    supersedes,
    ...(state.kind === 'verified' ? { verified: state.recorded } : {}),
  };
}

/**
 * The file's key as its manifest entry has it: the entry's own key for this version (one of the
 * two keys, or a conflict); with keep-both, the new key for another version, which it supersedes
 * (a conflict otherwise); the default key when the manifest has no entry.
 */
function keyFromManifest(
  planning: FilePlanning,
  file: LineFile,
  entry: ManifestFile | undefined,
  { defaultKey, newKey }: FileKeys,
): { key: string; supersedes: ManifestFile[] } {
  const { id, keepBoth } = planning;
  const supersedes: ManifestFile[] = [];
  let key = defaultKey;
  if (entry !== undefined && sameFile(entry, file)) {
    if (entry.key !== defaultKey && entry.key !== newKey) {
      throw new ConflictError(
        id,
        file.name,
        entry,
        file,
        `the manifest names an unexpected key ${entry.key}`,
      );
    }
    key = entry.key;
  } else if (entry !== undefined) {
    if (!keepBoth) {
      throw new ConflictError(
        id,
        file.name,
        entry,
        file,
        `archived as ${describeFile(entry)}, the service now states ${describeFile(file)}`,
      );
    }
    supersedes.push(entry);
    key = newKey;
  }
  return { key, supersedes };
}

/**
 * What the object at `key` holds. A verified other version, or an object this tool did not
 * record, at the default key moves a keep-both file to its new key (superseding the verified one),
 * which is inspected in turn; anywhere else, or without keep-both, it is a conflict.
 */
async function inspectKey(
  planning: FilePlanning,
  file: LineFile,
  key: string,
  { defaultKey, newKey }: FileKeys,
  supersedes: ManifestFile[],
): Promise<{ key: string; state: StoredFile }> {
  const { id, keepBoth, inspect } = planning;
  let state = await inspect(key);
  if (state.kind === 'verified' && !sameFile(state.recorded, file)) {
    // A verified archive of another version where this one belongs.
    if (!keepBoth || key !== defaultKey) {
      throw new ConflictError(
        id,
        file.name,
        state.recorded,
        file,
        `${key} holds a verified ${describeFile(state.recorded)}, the service states ${describeFile(file)}`,
      );
    }
    supersedes.push({ name: file.name, key, ...state.recorded });
    key = newKey;
    state = await inspect(key);
  } else if (state.kind === 'unrecorded') {
    if (!keepBoth || key !== defaultKey) {
      throw unrecorded(id, file, key);
    }
    key = newKey;
    state = await inspect(key);
  }
  return { key, state };
}

/** An object at `key` that this tool did not record: not ours to overwrite. */
function unrecorded(id: string, file: LineFile, key: string): ConflictError {
  return new ConflictError(id, file.name, undefined, file, `${key} holds an object this tool did not record`);
}
