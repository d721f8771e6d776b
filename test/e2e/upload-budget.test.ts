import { describe, expect } from 'vitest';
import { loadConfig } from '../../lambda/app/config.ts';
import { createDeps } from '../../lambda/app/deps.ts';
import { runHousekeeping } from '../../lambda/core/pass.ts';
import { FULL_PASS } from '../../lambda/core/request.ts';
import { closeAfterEach, localStack, MULTIPART_5_MIB, proxiedS3 } from '../reliability/harness.ts';
import { checkInvariant, settle, snapshot } from '../reliability/invariant.ts';
import { it } from '../reliability/ledger.ts';

const track = closeAfterEach();
const MIB = 1024 * 1024;

describe('the upload buffer budget', () => {
  it('keeps every part buffer of several large files in flight within UPLOAD_BUFFER_BYTES, and archives them all', async ({
    s,
  }) => {
    const local = await localStack(track, {
      lines: Array.from({ length: 4 }, () => ({ status: 'finished' as const, fileSize: 21 * MIB })),
      env: {
        ...MULTIPART_5_MIB,
        UPLOAD_BUFFER_BYTES: String(12 * MIB),
        UPLOAD_PARTS_IN_FLIGHT: '4',
        LINE_CONCURRENCY: '4',
      },
    });
    s.fault('four 21 MiB files at once in 5 MiB parts, with room for two parts in the whole process');
    const config = loadConfig(local.env);
    const deps = createDeps(config);
    const before = snapshot(local.tokens);

    const run = await settle(runHousekeeping(deps, config, FULL_PASS));

    expect(run.summary).toMatchObject({ dismantled: 4, failed: [] });
    const budget = deps.archive.uploadBudget;
    expect(budget.capacity).toBe(12 * MIB);
    // Parts were in flight side by side, and never more of them than the budget holds.
    expect(budget.peak).toBeGreaterThan(5 * MIB);
    expect(budget.peak).toBeLessThanOrEqual(12 * MIB);
    expect(budget.used).toBe(0);
    await checkInvariant(s, local, { before, runs: [run] });
  });

  it('sends each part its own bytes through part buffers used again and again, a retried part too', async ({
    s,
  }) => {
    const local = await localStack(track, {
      // Not whole parts: each file's last part is shorter, in a buffer of a whole part.
      lines: Array.from({ length: 2 }, () => ({ status: 'finished' as const, fileSize: 26 * MIB + 5 })),
      env: {
        ...MULTIPART_5_MIB,
        // Two part buffers for the whole process: 12 parts go through them.
        UPLOAD_BUFFER_BYTES: String(10 * MIB),
        UPLOAD_PARTS_IN_FLIGHT: '2',
        LINE_CONCURRENCY: '2',
      },
    });
    const { proxy, env } = await proxiedS3(track, local);
    // The SDK sends a refused part again, from the same buffer.
    proxy.decide = ({ operation, ordinal }) =>
      operation === 'UploadPart' && ordinal % 4 === 2 ? { fail: 500 } : 'forward';
    s.fault(
      'two files of 6 parts through 2 part buffers; every fourth UploadPart answered 500, then retried',
    );
    const config = loadConfig(env);
    const deps = createDeps(config);
    const before = snapshot(local.tokens);

    const run = await settle(runHousekeeping(deps, config, FULL_PASS));

    expect(run.summary).toMatchObject({ dismantled: 2, failed: [] });
    expect(proxy.requests.filter((r) => r.operation === 'UploadPart').length).toBeGreaterThan(12);
    expect(deps.archive.uploadBudget.peak).toBeLessThanOrEqual(10 * MIB);
    // Every stored file hashes to the file the service stated: each part carried its own bytes.
    await checkInvariant(s, local, { before, runs: [run] });
  });
});
