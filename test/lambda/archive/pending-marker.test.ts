import {
  GetObjectCommand,
  type GetObjectCommandOutput,
  NoSuchKey,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import type { PendingMarker } from '../../../lambda/archive/archive.ts';
import { archiveOver, LINE, mockedS3 } from '../../support/fake-s3.ts';

const KEY = `tokens/_pending/${LINE}.json`;
const STATED = [{ name: 'data', size: 3, sha256: 'ab'.repeat(32) }];

describe('Archive.amendPendingMarker', () => {
  const { client, s3 } = mockedS3();
  const archive = archiveOver(client);
  const stored = (marker: PendingMarker, etag: string) => ({
    // What the archive reads of a body: its text.
    Body: {
      transformToString: async () => JSON.stringify(marker),
    } as unknown as GetObjectCommandOutput['Body'],
    ETag: etag,
  });
  const older: PendingMarker = {
    lineId: LINE,
    runId: 'run-1',
    at: '2026-12-06T10:00:00.000Z',
    note: 'taken',
  };
  const newer: PendingMarker = {
    lineId: LINE,
    runId: 'run-2',
    at: '2026-12-06T11:00:00.000Z',
    note: 'taken again',
  };

  it('amends the marker another pass wrote meanwhile, and never puts the stale copy over it', async () => {
    s3.on(GetObjectCommand).resolvesOnce(stored(older, '"a"')).resolvesOnce(stored(newer, '"b"'));
    s3.on(PutObjectCommand).callsFake((input: { IfMatch?: string }) => {
      if (input.IfMatch !== '"b"')
        throw Object.assign(new Error('PreconditionFailed'), { $metadata: { httpStatusCode: 412 } });
      return {};
    });

    const noted = await archive.amendPendingMarker(LINE, (marker) => ({ ...marker, statedSince: STATED }));

    expect(noted).toBe('amended');
    const puts = s3.commandCalls(PutObjectCommand).map((call) => call.args[0].input);
    expect(puts.map((put) => put.IfMatch)).toEqual(['"a"', '"b"']);
    expect(puts.every((put) => put.Key === KEY)).toBe(true);
    expect(JSON.parse(String(puts[1]?.Body))).toEqual({ ...newer, statedSince: STATED });
  });

  it('writes nothing where there is no marker', async () => {
    s3.on(GetObjectCommand).rejects(new NoSuchKey({ message: 'no such key', $metadata: {} }));

    expect(await archive.amendPendingMarker(LINE, (marker) => marker)).toBe('absent');
    expect(s3.commandCalls(PutObjectCommand)).toHaveLength(0);
  });

  it('gives up after three looks that each lost the race, and says so', async () => {
    s3.on(GetObjectCommand).callsFake(() => stored(older, `"${Math.random()}"`));
    s3.on(PutObjectCommand).rejects(
      Object.assign(new Error('PreconditionFailed'), { $metadata: { httpStatusCode: 412 } }),
    );

    expect(await archive.amendPendingMarker(LINE, (marker) => marker)).toBe('contended');
    expect(s3.commandCalls(PutObjectCommand)).toHaveLength(3);
  });
});
