import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, expect } from 'vitest';
import { HousekeepingStack, type HousekeepingStackProps } from '../../infra/housekeeping-stack.ts';
import { CDK_CONTEXT, offlineEnv, run } from './offline.ts';

/** The account and region the stack tests synthesize for. */
export const ENV = { account: '123456789012', region: 'eu-west-1' };
export const SECRET_NAME = 'tokens/session-key';

export interface Synthesized {
  readonly app: App;
  readonly stack: HousekeepingStack;
  readonly template: Template;
}

/**
 * The synth of a stack test file: one app with one stack and the AWS Solutions checks registered,
 * as in infra/app.ts, from `defaults` and then the test's own props. Only a test that asks for it
 * (`bundle`) runs esbuild, to keep the files fast. Every synth's output folder is removed after the
 * file's tests: nothing is left in the temp dir.
 */
export function synthesizer(defaults: Partial<HousekeepingStackProps> = {}) {
  const outdirs: string[] = [];
  afterAll(() => {
    for (const dir of outdirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  return (props: Partial<HousekeepingStackProps> = {}, { bundle = false } = {}): Synthesized => {
    const outdir = mkdtempSync(join(tmpdir(), 'cdk.out-test-'));
    outdirs.push(outdir);
    const app = new App({
      outdir,
      context: { ...CDK_CONTEXT, ...(bundle ? {} : { 'aws:cdk:bundling-stacks': [] }) },
    });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
    const stack = new HousekeepingStack(app, 'Housekeeper', {
      env: ENV,
      tokensApiUrl: 'https://tokens.example.com',
      sessionKeySecret: SECRET_NAME,
      ...defaults,
      ...props,
    });
    // Throws with the full report if cdk-nag finds an unacknowledged error.
    const template = Template.fromStack(stack);
    return { app, stack, template };
  };
}

/** cdk-nag findings (errors and warnings) that are not acknowledged, as readable strings. */
export function nagFindings(app: App): string[] {
  const report = new AwsSolutionsChecks(undefined, { verbose: false }).validateScope(app);
  return report.violations.flatMap((violation) =>
    violation.violatingResources.map(
      (resource) => `${violation.severity} ${violation.ruleName} at ${resource.constructPath ?? '?'}`,
    ),
  );
}

/** One statement of an IAM policy document, as synthesized. */
export interface Statement {
  readonly Sid?: string;
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource: unknown;
  readonly Condition?: unknown;
}

export const actionsOf = (statement: Statement): string[] =>
  Array.isArray(statement.Action) ? statement.Action : [statement.Action];

/**
 * `retained` queues are encrypted (SQS-managed) and keep messages for 14 days, and `policies`
 * queue policies deny any request not over TLS.
 */
export function expectSafeQueues(template: Template, retained: number, policies: number): void {
  template.resourcePropertiesCountIs(
    'AWS::SQS::Queue',
    { SqsManagedSseEnabled: true, MessageRetentionPeriod: 14 * 24 * 3600 },
    retained,
  );
  template.resourcePropertiesCountIs(
    'AWS::SQS::QueuePolicy',
    {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    },
    policies,
  );
}

/** The statements of the identity policies attached to the role `roleRef` (as resolved). */
export function roleStatements(template: Template, roleRef: unknown): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy', {
    Properties: { Roles: Match.arrayWith([roleRef]) },
  });
  return Object.values(policies).flatMap(
    (policy) => policy.Properties.PolicyDocument.Statement as Statement[],
  );
}

/**
 * What every count alarm of the stack shares (infra/monitoring/alarms.ts): the sum over one period
 * of 5 minutes, one or more alarms, no data does not.
 */
export const COUNT_ALARM = {
  Statistic: 'Sum',
  Period: 300,
  EvaluationPeriods: 1,
  Threshold: 1,
  ComparisonOperator: 'GreaterThanOrEqualToThreshold',
  TreatMissingData: 'notBreaching',
} as const;

/** A metric the housekeeper emits itself: its namespace and its one dimension, the service. */
export const SERVICE_METRIC = {
  Namespace: 'TokensHousekeeper',
  Dimensions: [{ Name: 'service', Value: 'tokens-housekeeper' }],
} as const;

/** The body of the template's first dashboard, as a string to look for names in. */
export function dashboardBody(template: Template): string {
  const dashboards = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
  return JSON.stringify(dashboards[0]?.Properties.DashboardBody);
}

/** Expects the template's first dashboard to name each of `needles` (a widget title, a metric). */
export function expectDashboardShows(template: Template, needles: readonly string[]): void {
  const body = dashboardBody(template);
  for (const needle of needles) expect(body).toContain(needle);
}

/**
 * `cdk synth` as an operator runs it, on a machine with no AWS credentials: a fresh home for the
 * file's tests, removed after them. `synth(args)` runs `npx cdk synth --quiet --no-notices ...args`.
 */
export function offlineCdk(prefix: string) {
  let home = '';
  beforeAll(() => {
    home = mkdtempSync(join(tmpdir(), prefix));
  });
  afterAll(() => {
    rmSync(home, { recursive: true, force: true });
  });
  return {
    /** A path in the home, for an output folder. */
    path: (name: string): string => join(home, name),
    /** The offline environment of the home. */
    env: (): NodeJS.ProcessEnv => offlineEnv(home),
    synth: (args: readonly string[]) =>
      run('npx', ['cdk', 'synth', '--quiet', '--no-notices', ...args], offlineEnv(home)),
  };
}

/** What the cdk-nag plugin reported into `outdir` (an empty list when nothing was found). */
export function pluginReports(outdir: string): unknown[] {
  return (
    JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as { pluginReports: unknown[] }
  ).pluginReports;
}
