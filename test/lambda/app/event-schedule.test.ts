import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, describe, expect, it } from 'vitest';
import { HousekeepingStack } from '../../../infra/housekeeping-stack.ts';
import { parseDrillEvent } from '../../../lambda/app/drill-invoke.ts';
import { parseInvocation } from '../../../lambda/app/event.ts';
import { FULL_PASS } from '../../../lambda/core/request.ts';
import { EventError } from '../../../lambda/shared/errors.ts';
import { CDK_CONTEXT } from '../../infra/offline.ts';

/** The feature flags from cdk.json, so the stack is synthesized as `cdk deploy` would. */

const outdirs: string[] = [];
afterAll(() => {
  for (const dir of outdirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/**
 * The `Input` of the schedule of the pass (or planner) the stack deploys in this mode, or of the
 * restore drill's (bundling skipped: not needed).
 */
function scheduleInputs(mode: 'single' | 'fanout', of: 'pass' | 'drill' = 'pass'): string[] {
  const outdir = mkdtempSync(join(tmpdir(), 'cdk.out-test-'));
  outdirs.push(outdir);
  const app = new App({ outdir, context: { ...CDK_CONTEXT, 'aws:cdk:bundling-stacks': [] } });
  const stack = new HousekeepingStack(app, 'Housekeeper', {
    env: { account: '123456789012', region: 'eu-west-1' },
    tokensApiUrl: 'https://tokens.example.com',
    sessionKeySecret: 'tokens/session-key',
    mode,
  });
  const target = of === 'pass' ? stack.fn : stack.restoreDrills?.fn;
  const schedules = Template.fromStack(stack).findResources('AWS::Scheduler::Schedule', {
    Properties: { Target: { Arn: stack.resolve(target?.functionArn) } },
  });
  return Object.values(schedules).map((schedule) => schedule.Properties.Target.Input as string);
}

describe('parseInvocation', () => {
  // The schedule is the one caller that sends no request of its own: whatever it delivers must
  // stay a full pass, or a stricter parser would stop housekeeping without anyone asking.
  it.each(['single', 'fanout'] as const)(
    'reads the input the %s stack schedule delivers as a full pass',
    (mode) => {
      const inputs = scheduleInputs(mode);

      expect(inputs).toHaveLength(1);
      for (const input of inputs) {
        // Lambda hands the function the target's Input parsed as JSON.
        expect(parseInvocation(JSON.parse(input))).toEqual({ kind: 'pass', request: FULL_PASS });
      }
    },
  );
});

describe('parseDrillEvent', () => {
  it.each(['single', 'fanout'] as const)(
    'reads the input the %s stack drill schedule delivers as a drill, with nothing asked',
    (mode) => {
      const inputs = scheduleInputs(mode, 'drill');

      expect(inputs).toHaveLength(1);
      for (const input of inputs) expect(() => parseDrillEvent(JSON.parse(input))).not.toThrow();
    },
  );

  it.each([
    [{ sampleSize: 3 }, /a restore drill takes \{\} or nothing, got the fields "sampleSize"/],
    [[], /got an array/],
    ['drill', /got string/],
  ])('refuses %j, naming what it got', (event, message) => {
    expect(() => parseDrillEvent(event)).toThrow(EventError);
    expect(() => parseDrillEvent(event)).toThrow(message);
  });
});
