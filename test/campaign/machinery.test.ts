/**
 * The campaign's own machinery: a seed gives one schedule, and the judge sees what it must (a
 * judge that sees nothing passes every schedule). The store faults it adds to the proxy behave
 * as named.
 */
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lambda/app/config.ts';
import { LOCAL_AWS_ENV } from '../local/stack.ts';
import { BucketLedger } from './bucket-ledger.ts';
import { campaignProcessEnv } from './campaign.ts';
import { generateSchedule } from './generate.ts';
import { RunObserver } from './observer.ts';
import { refusedSettings } from './run-schedule.ts';
import { handlerRun } from './runs.ts';
import { CLEAN_RUN, type Schedule } from './schedule.ts';
import { BucketView } from './store-read.ts';
import { PREFIX, type Stage, settingsEnv, stageFor, startWorld, type World } from './world.ts';

campaignProcessEnv();

let world: World;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world.close();
});

/** One finished line of one file, nothing injected. */
function oneLine(seed: number): Schedule {
  const drawn = generateSchedule(seed);
  return {
    ...drawn,
    lines: [
      { id: '0f5e8f4c-5b1e-4c1a-9d7e-3a4b5c6d7e8f', status: 'finished', analysis: 'none', fileSize: 1000 },
    ],
    runs: [],
  };
}

async function withStage<T>(schedule: Schedule, work: (stage: Stage) => Promise<T>): Promise<T> {
  const stage = await stageFor(world, schedule);
  try {
    return await work(stage);
  } finally {
    await stage.close();
  }
}

describe('generateSchedule', () => {
  it('draws the same schedule from the same seed, and another from another seed', () => {
    expect(generateSchedule(42)).toEqual(generateSchedule(42));
    expect(generateSchedule(43)).not.toEqual(generateSchedule(42));
  });

  it("draws only settings the housekeeper's config accepts: every byte cap fits the read-ahead of the concurrency drawn with it", () => {
    // A schedule whose config is refused runs nothing, and its runs' errors are no violation.
    const stage = {
      ...LOCAL_AWS_ENV,
      TOKENS_API_URL: 'http://127.0.0.1:9',
      SESSION_KEY_SECRET_ID: 'tokens/session-key',
      ARCHIVE_BUCKET: 'tokens-archive',
      ARCHIVE_PREFIX: PREFIX,
    };
    const refused: string[] = [];
    const capped = new Set<string>();

    for (let seed = 0; seed < 2000; seed += 1) {
      const schedule = generateSchedule(seed, { modes: ['pass', 'fanout'] });
      try {
        loadConfig({ ...stage, ...settingsEnv(schedule) });
      } catch (error) {
        refused.push(`seed ${seed}: ${error instanceof Error ? error.message : String(error)}`);
      }
      const { lineConcurrency, fileConcurrency, maxBytesPerSecond } = schedule.settings;
      if (maxBytesPerSecond !== undefined)
        capped.add(`${lineConcurrency}x${fileConcurrency} ${maxBytesPerSecond}`);
    }

    expect(refused).toEqual([]);
    // Every concurrency the generator draws met every cap it draws: the tightest pair among them.
    expect(capped).toContain(`4x2 ${4 * 1024 * 1024}`);
  });
});

describe('the judge of a run', () => {
  it('reports a run whose settings the housekeeper refused, which did nothing and would pass the invariants', async () => {
    // 1 MiB a second cannot hold the read-ahead of 4 lines of 2 downloads: refused at config load.
    const drawn = oneLine(3);
    const schedule: Schedule = {
      ...drawn,
      settings: { ...drawn.settings, lineConcurrency: 4, fileConcurrency: 2, maxBytesPerSecond: 1024 * 1024 },
    };

    const run = await withStage(schedule, (stage) => handlerRun(stage, {}));

    expect(refusedSettings(run.outcome)).toEqual([
      expect.stringMatching(/^the housekeeper refused the schedule's settings: .*LINE_CONCURRENCY/),
    ]);
    expect(
      refusedSettings({
        exitCode: 2,
        output: 'housekeep: run failed: ConfigError: LINE_CONCURRENCY: must be between 1 and 64, got 0\n',
      }),
    ).toEqual([
      "the housekeeper refused the schedule's settings: ConfigError: LINE_CONCURRENCY: must be between 1 and 64, got 0",
    ]);
    expect(
      refusedSettings(await withStage(oneLine(3), (stage) => handlerRun(stage, {})).then((r) => r.outcome)),
    ).toEqual([]);
  });
});

describe('RunObserver', () => {
  it('finds a DELETE that reaches the service while the store lacks the stated file', async () => {
    const schedule = oneLine(1);
    const id = schedule.lines[0]?.id ?? '';
    const moment = await withStage(schedule, async (stage) => {
      const observer = new RunObserver(stage, schedule, CLEAN_RUN, new Set());
      observer.install();
      await fetch(`${stage.tokens.url}/api/tokens/${id}`, {
        method: 'DELETE',
        headers: { 'Session-Key': stage.sessionKey },
      });
      observer.uninstall();
      return observer.moments[0];
    });

    expect(await moment).toMatchObject({
      id,
      live: true,
      race: false,
      problems: ['no readable manifest', expect.stringMatching(/^data: /)],
    });
  });
});

describe('BucketLedger', () => {
  it('finds a verified object overwritten after a pass archived it', async () => {
    const schedule = oneLine(2);
    const id = schedule.lines[0]?.id ?? '';
    const problems = await withStage(schedule, async (stage) => {
      const ledger = new BucketLedger();
      const view = new BucketView(world.s3Client, world.s3.address, stage.bucket);
      await handlerRun(stage, { archiveOnly: true });
      await view.refresh();
      const first = await ledger.update(stage, view);
      await world.s3Client.send(
        new PutObjectCommand({ Bucket: stage.bucket, Key: `${PREFIX}${id}/data`, Body: 'other bytes' }),
      );
      await view.refresh();
      return [first, await ledger.update(stage, view)];
    });

    expect(problems[0]).toEqual([]);
    expect(problems[1]).toEqual([
      expect.stringMatching(/\/data: a verified object \([0-9a-f]{64}\) was overwritten/),
    ]);
  });
});

describe('BucketLedger, on secrets', () => {
  it('finds the session key in any object of the bucket', async () => {
    const problems = await withStage(oneLine(4), async (stage) => {
      await world.s3Client.send(
        new PutObjectCommand({
          Bucket: stage.bucket,
          Key: `${PREFIX}_runs/report.json`,
          Body: JSON.stringify({ note: `echo ${stage.sessionKey}` }),
        }),
      );
      const view = new BucketView(world.s3Client, world.s3.address, stage.bucket);
      await view.refresh();
      return new BucketLedger().update(stage, view);
    });

    expect(problems).toEqual([`${PREFIX}_runs/report.json: holds the session key`]);
  });
});

describe('the store faults added to the S3 proxy', () => {
  it('stores a PUT whose reply it drops, and breaks off a GET body half way', async () => {
    await withStage(oneLine(3), async (stage) => {
      const client = new S3Client({
        endpoint: stage.proxy.url,
        forcePathStyle: true,
        region: 'us-east-1',
        credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
        maxAttempts: 1,
      });
      try {
        stage.proxy.decide = ({ operation }) => (operation === 'PutObject' ? 'drop-reply' : 'break-body');
        const put = client.send(
          new PutObjectCommand({ Bucket: stage.bucket, Key: 'k', Body: 'x'.repeat(1000) }),
        );
        await expect(put).rejects.toThrow();
        const view = new BucketView(world.s3Client, world.s3.address, stage.bucket);
        await view.refresh();
        expect((await view.object('k'))?.size).toBe(1000);

        const get = await fetch(`${stage.proxy.url}/${stage.bucket}/k`);
        await expect(get.arrayBuffer()).rejects.toThrow();
      } finally {
        client.destroy();
      }
    });
  });
});
