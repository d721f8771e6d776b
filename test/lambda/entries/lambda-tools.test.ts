import { afterEach, describe, expect, it, vi } from 'vitest';
import { lambdaEntryTools } from '../../../lambda/entries/lambda-tools.ts';

/** Every line written to stdout and stderr while `during` runs. */
function written(during: () => void): string[] {
  const chunks: string[] = [];
  const capture = (chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  };
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(capture);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(capture);
  try {
    during();
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  return chunks
    .join('')
    .split('\n')
    .filter((line) => line !== '');
}

describe('the Lambda entries’ logger and metrics', () => {
  afterEach(() => vi.unstubAllEnvs());

  it('write only JSON lines, the notice of an invocation with no metrics included', () => {
    vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'INFO');
    vi.stubEnv('POWERTOOLS_METRICS_DISABLED', 'false');

    const lines = written(() => {
      const { metrics } = lambdaEntryTools();
      // A dry run, a malformed payload or an empty batch emits no metric.
      metrics.publishStoredMetrics();
    });

    expect(lines.length).toBeGreaterThanOrEqual(2);
    const parsed = lines.map((line) => JSON.parse(line) as { message?: string; level?: string });
    expect(parsed.map((line) => line.message)).toContainEqual(
      expect.stringMatching(/^No application metrics to publish/),
    );
    expect(parsed.find((line) => line.message?.startsWith('No application metrics'))).toMatchObject({
      level: 'WARN',
      service: 'tokens-housekeeper',
    });
  });
});
