import { ListObjectsV2Command, type ListObjectsV2CommandInput } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { archiveOver, mockedS3 } from '../../support/fake-s3.ts';

const A = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
const B = 'b1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';
const C = 'c1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';
const D = 'f1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';
const T = (minute: number) => new Date(Date.UTC(2026, 4, 1, 10, minute));

describe('Archive.archivedLines', () => {
  const { client, s3 } = mockedS3();
  const archive = archiveOver(client);

  /** A bucket holding `objects`, listed as S3 lists them: by prefix, in key order, two per page. */
  function bucket(objects: Record<string, Date>) {
    const keys = Object.keys(objects).sort();
    const prefixes: string[] = [];
    s3.on(ListObjectsV2Command).callsFake((input: ListObjectsV2CommandInput) => {
      const prefix = input.Prefix ?? '';
      prefixes.push(prefix);
      const matching = keys.filter((key) => key.startsWith(prefix));
      const from = Number(input.ContinuationToken ?? 0);
      const page = matching.slice(from, from + 2);
      const more = from + 2 < matching.length;
      return {
        Contents: page.map((Key) => ({ Key, LastModified: objects[Key] })),
        IsTruncated: more,
        ...(more ? { NextContinuationToken: String(from + 2) } : {}),
      };
    });
    return prefixes;
  }

  it("lists each line with a manifest or a receipt, at the later of the two, and nothing else of the archive's", async () => {
    const listed = bucket({
      [`tokens/${A}/data`]: T(1),
      [`tokens/${A}/manifest.json`]: T(2),
      [`tokens/${B}/data`]: T(3),
      [`tokens/${B}/manifest.json`]: T(4),
      [`tokens/${B}/deleted.json`]: T(9),
      // A receipt and no manifest: dismantled with no record of what was archived; the audit says so.
      [`tokens/${C}/deleted.json`]: T(5),
      // Files and no manifest: an archive not finished yet.
      [`tokens/${D}/data`]: T(6),
      // Folders beside the lines, and keys that are not a line's records.
      [`tokens/_runs/2026-05-01/${A}.json`]: T(7),
      [`tokens/_drills/2026-05-01/${A}.json`]: T(7),
      [`tokens/_pending/${A}.json`]: T(7),
      [`tokens/_queued/${A}.json`]: T(7),
      [`tokens/_plans/2026-05-01/${A}.json`]: T(7),
      'tokens/0-not-a-line/manifest.json': T(7),
      [`tokens/${D}/nested/manifest.json`]: T(7),
      [`tokens/${D}.json`]: T(7),
      [`other/${A}/manifest.json`]: T(7),
    });

    const lines = await archive.archivedLines();

    expect(Object.fromEntries(lines)).toEqual({
      [A]: T(2).getTime(),
      [B]: T(9).getTime(),
      [C]: T(5).getTime(),
    });
    // The line folders only, one listing per first hex digit: the `_` folders are never read.
    expect([...new Set(listed)].sort()).toEqual([...'0123456789abcdef'].map((digit) => `tokens/${digit}`));
  });

  it('lists an empty archive as no lines', async () => {
    bucket({ 'tokens/_drills/2026-05-01/x.json': T(1) });

    expect((await archive.archivedLines()).size).toBe(0);
  });
});
