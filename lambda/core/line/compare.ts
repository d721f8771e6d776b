import type { FilesStatement } from '../../shared/ports/tokens.ts';
import type { ManifestFile } from '../../shared/records.ts';

// How a line's statement of its files compares with what the archive records.

/** A file's size and hash, in words. */
export function describeFile(file: { readonly size: number; readonly sha256: string }): string {
  return `${file.size} bytes, sha256 ${file.sha256}`;
}

export function sameFile(
  a: { readonly size: number; readonly sha256: string },
  b: { readonly size: number; readonly sha256: string },
): boolean {
  return a.size === b.size && a.sha256 === b.sha256;
}

export function sameEntries(a: readonly ManifestFile[], b: readonly ManifestFile[]): boolean {
  const line = (file: ManifestFile) => `${file.name} ${file.key} ${file.size} ${file.sha256}`;
  return a.map(line).sort().join('\n') === b.map(line).sort().join('\n');
}

/** How `stated` differs from the archive's `recorded` files, in words; undefined when it does not. */
export function differences(
  recorded: readonly ManifestFile[],
  stated: readonly { readonly name: string; readonly size: number; readonly sha256: string }[],
): string | undefined {
  const problems: string[] = [];
  for (const file of stated) {
    const entry = recorded.find((candidate) => candidate.name === file.name);
    if (entry === undefined) problems.push(`${file.name} (${describeFile(file)}) is not archived`);
    else if (!sameFile(entry, file))
      problems.push(`${file.name} is archived as ${describeFile(entry)}, stated ${describeFile(file)}`);
  }
  for (const entry of recorded) {
    if (!stated.some((file) => file.name === entry.name)) problems.push(`${entry.name} is no longer stated`);
  }
  return problems.length === 0 ? undefined : problems.join('; ');
}

/**
 * How a confirming document's statement of the files differs from the archive's: undefined when it
 * states the same files, or none; files it states unreadably are a difference too.
 */
export function statedDifference(
  recorded: readonly ManifestFile[],
  stated: FilesStatement,
): string | undefined {
  if (stated.filesProblem !== undefined)
    return `it states files that cannot be read (${stated.filesProblem})`;
  return stated.files === undefined ? undefined : differences(recorded, stated.files);
}
