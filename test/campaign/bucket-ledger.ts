/**
 * Every object the campaign has seen in the bucket, by key: a verified one (its bytes are a
 * version the service stated for that file, and the SHA-256 it was recorded with) must stay
 * there with those bytes for good, and no object may hold the session key.
 */
import { objectOf } from './observer.ts';
import type { BucketView } from './store-read.ts';
import { PREFIX, type Stage } from './world.ts';

interface Seen {
  readonly tag: string;
  readonly sha256: string;
  readonly verified: boolean;
}

/** The file name an object key stands for, and the hash a versioned key names. */
function fileOf(key: string): { id: string; file: string; keyHash?: string } | undefined {
  const { kind, id } = objectOf(key);
  if (kind !== 'file' || id === undefined) return undefined;
  const name = key.slice(`${PREFIX}${id}/`.length);
  const match = /^([a-z0-9][a-z0-9_-]{0,31})\.sha256-([0-9a-f]{64})$/.exec(name);
  return match === null ? { id, file: name } : { id, file: match[1] ?? '', keyHash: match[2] ?? '' };
}

export class BucketLedger {
  readonly #seen = new Map<string, Seen>();
  /** Keys changed on purpose (tampering): no longer held to their bytes. */
  readonly #released = new Set<string>();
  /** Verified objects seen so far, for the figures. */
  verifiedObjects = 0;

  release(key: string): void {
    this.#released.add(key);
  }

  /** Looks at every new or changed object (the view just refreshed); returns what broke the rules since the last look. */
  async update(stage: Stage, view: BucketView): Promise<string[]> {
    const problems: string[] = [];
    const now = view.tags;
    for (const [key, seen] of this.#seen) {
      if (!now.has(key) && seen.verified && !this.#released.has(key)) {
        problems.push(`${key}: a verified object (${seen.sha256}) was deleted`);
      }
    }
    const secret = Buffer.from(stage.sessionKey);
    for (const [key, tag] of now) {
      const before = this.#seen.get(key);
      if (before?.tag === tag) continue;
      const object = await view.object(key);
      if (object === undefined) continue;
      if (object.bytes.includes(secret)) problems.push(`${key}: holds the session key`);
      const kept = before?.verified === true && before.sha256 === object.sha256;
      if (before?.verified === true && !kept && !this.#released.has(key)) {
        problems.push(`${key}: a verified object (${before.sha256}) was overwritten with ${object.sha256}`);
      }
      this.#seen.set(key, {
        tag,
        sha256: object.sha256,
        verified: kept || this.#verified(stage, key, object),
      });
      if (!kept && this.#seen.get(key)?.verified === true) this.verifiedObjects += 1;
    }
    for (const key of [...this.#seen.keys()]) if (!now.has(key)) this.#seen.delete(key);
    return problems;
  }

  #verified(
    stage: Stage,
    key: string,
    object: { sha256: string; size: number; metadata: Record<string, string> },
  ): boolean {
    const file = fileOf(key);
    if (file === undefined) return false;
    if (file.keyHash !== undefined && file.keyHash !== object.sha256) return false;
    const versions = stage.tokens.lines.get(file.id)?.history.get(file.file) ?? [];
    const stated = versions.some((v) => v.sha256 === object.sha256 && v.size === object.size);
    return stated && object.metadata.sha256 === object.sha256;
  }
}
