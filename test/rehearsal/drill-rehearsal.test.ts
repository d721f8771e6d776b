/**
 * The restore drill's deployed artifact, rehearsed as the pass's is (rehearsal.test.ts): its
 * bundle alone in a folder, started by the real Lambda Runtime Interface Client with the template's
 * environment, invoked with its schedule's exact Input, every S3 and Secrets Manager request judged
 * by the drill role's own statements.
 */
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandler } from '../../lambda/app/invoke.ts';
import type { DrillReport } from '../../lambda/core/drill.ts';
import { startLocalStack } from '../local/stack.ts';
import { listKeys, objectJson, replaceObject } from '../support/archive-inspect.ts';
import {
  type DeployedFunction,
  jsonLines,
  onlyFunction,
  requestIdOf,
  resolvedEnvironment,
  type Synthesized,
  startInvocable,
  synthesize,
} from './deployed.ts';
import { asRole, policyFronts, refusalOf } from './policy-fronts.ts';
import { RUNTIME_CLIENT_SETUP_MS, runtimeClient } from './ric.ts';

let ric: string;
let synthesized: Synthesized;
let drill: DeployedFunction;

beforeAll(async () => {
  // Restore drills are on by default: the stack as deployed without a setting.
  [ric, synthesized] = await Promise.all([runtimeClient(), synthesize()]);
  drill = onlyFunction(
    synthesized,
    (fn) => fn.description.startsWith('Restore drill'),
    'restore drill function',
  );
}, RUNTIME_CLIENT_SETUP_MS);

afterAll(async () => {
  await synthesized?.close();
});

describe('the deployed restore drill under the Lambda runtime client', () => {
  it("reads back what a pass archived with its schedule's input, finds the tampered object, reports it under _drills/{date}/ and in DrillFindings, within its role; warm, the next drill starts where that report says", async () => {
    const local = await startLocalStack({
      lines: Array.from({ length: 3 }, () => ({ status: 'finished' as const, fileSize: 2000 })),
    });
    const fronts = await policyFronts(synthesized, drill, local);
    try {
      // A pass archived and dismantled the lines; then one archived object's bytes changed.
      const ids = [...local.tokens.lines.keys()];
      expect(await createHandler(local.env)({})).toMatchObject({ dismantled: 3, failed: [] });
      const [tampered] = ids as [string];
      await replaceObject(local.s3Client, local.bucket, `tokens/${tampered}/data`, Buffer.alloc(2000, 7));
      const tokensRequests = local.tokens.requests.length;
      // The template's environment: the archive, and nothing of the tokens service or its secret.
      const environment = {
        ...resolvedEnvironment(drill, { ARCHIVE_BUCKET: local.bucket }),
        ...fronts.endpoints,
      };
      const fn = await startInvocable(drill, { ric, environment });
      try {
        const day = new Date().toISOString().slice(0, 10);

        const first = await fn.invoke(drill.scheduleInput);
        // Warm, the next scheduled drill: it starts where the first one's report says.
        const second = await fn.invoke(drill.scheduleInput);

        expect(drill.scheduleInput).toEqual({});
        expect(first).toMatchObject({ kind: 'response' });
        expect(second).toMatchObject({ kind: 'response' });
        const [report, next] = [first, second].map((result) => (result as { body: DrillReport }).body) as [
          DrillReport,
          DrillReport,
        ];
        const damaged = [
          {
            id: tampered,
            file: 'data',
            key: `tokens/${tampered}/data`,
            problem: expect.stringMatching(
              /^holds 2000 bytes hashing to [0-9a-f]{64}; manifest says 2000 bytes/,
            ),
          },
        ];
        // The first drill: no earlier report, so no recent lines; the sample (20) takes all three.
        expect([...report.sampled].sort()).toEqual([...ids].sort());
        expect(report).toMatchObject({
          schemaVersion: 1,
          previousDrill: null,
          recent: [],
          notReached: [],
          unreadable: [],
          counts: { archivedLines: 3, audited: 3, findings: 1 },
        });
        expect(report.audit.damaged).toEqual(damaged);
        // Each report, where the next drill and an operator find it: the drill's day, its id.
        const keys = [report, next].map(
          (r) => `tokens/_drills/${r.startedAt.slice(0, 10)}/${r.drillId}.json`,
        ) as [string, string];
        expect([day, new Date().toISOString().slice(0, 10)]).toContain(report.startedAt.slice(0, 10));
        expect(await listKeys(local.s3Client, local.bucket, 'tokens/_drills/')).toEqual([...keys].sort());
        expect(await objectJson(local.s3Client, local.bucket, keys[0])).toEqual(report);
        // The second read the first one's report back: the lines archived since are its recent ones.
        expect([...next.recent].sort()).toEqual([...ids].sort());
        expect(next).toMatchObject({
          previousDrill: keys[0],
          since: report.nextSince,
          sampled: [],
          counts: { audited: 3, findings: 1 },
        });
        expect(next.audit.damaged).toEqual(damaged);

        const requestIds = [first, second].map((result) =>
          'invocation' in result ? result.invocation.requestId : undefined,
        );
        const lines = jsonLines(fn.fn);
        // The metrics lines (EMF) the drill-findings alarm reads, as CloudWatch receives them.
        const emf = lines.filter((line) => '_aws' in line);
        expect(emf).toEqual(
          requestIds.map((requestId) =>
            expect.objectContaining({
              _aws: expect.objectContaining({
                CloudWatchMetrics: [expect.objectContaining({ Namespace: 'TokensHousekeeper' })],
              }),
              service: 'tokens-housekeeper',
              DrillFindings: 1,
              DrillLinesAudited: 3,
              DrillLinesNotReached: 0,
              function_request_id: requestId,
            }),
          ),
        );
        expect(lines.filter((line) => line.message === 'drill finding')).toEqual(
          requestIds.map((requestId) =>
            expect.objectContaining({
              level: 'WARN',
              kind: 'damaged',
              id: tampered,
              function_request_id: requestId,
            }),
          ),
        );
        // After the cold start, every line names its invocation: the first's, then the second's.
        const later = lines.slice(lines.findIndex((line) => requestIdOf(line) !== undefined));
        const named = later.map((line) => requestIdOf(line));
        const split = named.indexOf(requestIds[1]);
        expect(split).toBeGreaterThan(3);
        for (const [i, line] of later.entries())
          expect(named[i], JSON.stringify(line)).toBe(requestIds[i < split ? 0 : 1]);

        // Every request the drill made was one its role allows: it lists and reads under the
        // prefix, writes its reports only, and never asks for the session key nor the service.
        expect(fronts.denied).toEqual([]);
        const actions = new Set(fronts.decisions.map((d) => d.action));
        expect([...actions].sort()).toEqual(['s3:GetObject', 's3:ListBucket', 's3:PutObject']);
        expect(fronts.decisions.filter((d) => d.action === 's3:PutObject').map((d) => d.resource)).toEqual(
          keys.map((key) => `arn:aws:s3:::${local.bucket}/${key}`),
        );
        expect(local.tokens.requests).toHaveLength(tokensRequests);
        expect(fn.fn.process.exitCode).toBeNull();
      } finally {
        await fn.close();
      }
    } finally {
      await fronts.close();
      await local.close();
    }
  }, 120_000);

  it('refuses through the policy front what the drill role must not do: a write outside _drills/, a delete, the session key', async () => {
    await asRole(synthesized, drill, async ({ local, fronts, s3, secrets }) => {
      const report = 'tokens/_drills/2026-12-06/drill.json';
      await s3.send(new PutObjectCommand({ Bucket: local.bucket, Key: report, Body: '{}' }));
      // An archived line's object: the pass may write it, the drill may not.
      const archived = 'tokens/11111111-2222-4333-8444-555555555555/data';
      expect(
        await refusalOf(s3.send(new PutObjectCommand({ Bucket: local.bucket, Key: archived, Body: 'x' }))),
      ).toBe('AccessDenied');
      expect(await refusalOf(s3.send(new DeleteObjectCommand({ Bucket: local.bucket, Key: report })))).toBe(
        'AccessDenied',
      );
      expect(await refusalOf(secrets.send(new GetSecretValueCommand({ SecretId: local.secretId })))).toBe(
        'AccessDeniedException',
      );

      expect(fronts.denied.map((d) => d.action).sort()).toEqual([
        's3:DeleteObject',
        's3:PutObject',
        'secretsmanager:GetSecretValue',
      ]);
      expect(await listKeys(local.s3Client, local.bucket)).toEqual([report]);
    });
  });
});
