import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { handlerFor } from '../../../lambda/app/invoke.ts';
import { capturingLogger } from '../../campaign/logs.ts';
import { fakeDeps, testConfig } from '../../support/fakes.ts';

const ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';

/** A Lambda context as the runtime passes it, for request `requestId`, with minutes left. */
function lambdaContext(requestId: string): Context {
  return {
    awsRequestId: requestId,
    functionName: 'TokensHousekeeper-Function',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:TokensHousekeeper-Function',
    memoryLimitInMB: '1024',
    logGroupName: '/aws/lambda/TokensHousekeeper-Function',
    logStreamName: 'stream',
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => 600_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

describe('the Lambda request id on log lines', () => {
  it('names the invocation on every log line of a run, a new one on each warm invocation', async () => {
    const lines: string[] = [];
    const { deps, tokens } = fakeDeps();
    tokens.listPages({ lines: [[ID, 'finished']] });
    tokens.line(ID, { files: { data: 'the tokens\n' } });
    const handler = handlerFor(testConfig(), { ...deps, logger: capturingLogger(lines) });

    await handler({ dryRun: true }, lambdaContext('request-1'));
    const first = lines.splice(0).map((line) => JSON.parse(line) as Record<string, unknown>);
    await expect(handler({ ids: 'not a list' }, lambdaContext('request-2'))).rejects.toThrow();
    const second = lines.splice(0).map((line) => JSON.parse(line) as Record<string, unknown>);

    expect(first.length).toBeGreaterThan(2);
    for (const line of first)
      expect(line).toMatchObject({
        function_request_id: 'request-1',
        function_name: 'TokensHousekeeper-Function',
      });
    expect(second.map((line) => line.message)).toContain('run failed');
    for (const line of second)
      expect(line).toMatchObject({ function_request_id: 'request-2', cold_start: false });
  });

  it('adds nothing outside Lambda (no request id)', async () => {
    const lines: string[] = [];
    const { deps, tokens } = fakeDeps();
    tokens.listPages({ lines: [] });
    const handler = handlerFor(testConfig(), { ...deps, logger: capturingLogger(lines) });

    await handler({ dryRun: true }, { getRemainingTimeInMillis: () => 600_000 });

    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(JSON.parse(line)).not.toHaveProperty('function_request_id');
  });
});
