import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, type Stack, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import type { Asset } from 'aws-cdk-lib/aws-s3-assets';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, expect, it } from 'vitest';
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

/** Synthesizes the stack with `props` over the file's defaults; esbuild runs only with `bundle`. */
export type Synth = (props?: Partial<HousekeepingStackProps>, options?: { bundle?: boolean }) => Synthesized;

/**
 * The synth of a stack test file: one app with one stack and the AWS Solutions checks registered,
 * as in infra/app.ts, from `defaults` and then the test's own props. Only a test that asks for it
 * (`bundle`) runs esbuild, to keep the files fast. Every synth's output folder is removed after the
 * file's tests: nothing is left in the temp dir.
 */
export function synthesizer(defaults: Partial<HousekeepingStackProps> = {}): Synth {
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

/** One test a case: the stack refuses the props with an error that matches the message. */
export function itRejects(
  synth: Synth,
  cases: readonly (readonly [Partial<HousekeepingStackProps>, RegExp])[],
): void {
  it.each(cases)('rejects %o', (props, message) => {
    expect(() => synth(props)).toThrow(message);
  });
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

/** A function of the stack (the pass, the planner, the worker, the drill), by its construct. */
type StackFunction = HousekeepingStack['fn'];

/** The files of a function's bundle and the code of its `index.mjs`, as esbuild wrote them. */
export function bundleOf(app: App, fn: StackFunction | undefined): { files: string[]; code: string } {
  const asset = fn?.node.findChild('Code') as Asset;
  const dir = join(app.outdir, asset.assetPath);
  return { files: readdirSync(dir).sort(), code: readFileSync(join(dir, 'index.mjs'), 'utf8') };
}

/** A function's resource as synthesized, by its construct. */
export function functionResource({ stack, template }: Synthesized, fn: StackFunction | undefined) {
  const logicalId = stack.getLogicalId(fn?.node.defaultChild as never);
  return template.toJSON().Resources[logicalId] as {
    Properties: Record<string, unknown> & { Environment: { Variables: Record<string, unknown> } };
  };
}

/** The acknowledged cdk-nag rules of `constructs`, as `[rule id, reason]`. */
export function acknowledgements(constructs: readonly IConstruct[]): [string, string][] {
  return constructs
    .flatMap((construct) => construct.node.metadata)
    .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
    .flatMap((entry) => Object.entries(entry.data as Record<string, string>));
}

/** Expects the stack to carry no CDK error and no CDK warning annotation at all. */
export function expectNoCdkErrorOrWarning(stack: Stack): void {
  expect(Annotations.fromStack(stack).findError('*', Match.anyValue())).toEqual([]);
  expect(Annotations.fromStack(stack).findWarning('*', Match.anyValue())).toEqual([]);
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

/** The statements of the policies attached to a function's role. */
export const functionStatements = (
  { stack, template }: Synthesized,
  fn: StackFunction | undefined,
): Statement[] => roleStatements(template, stack.resolve(fn?.role?.roleName));

/**
 * Expects the schedule that targets `fn` to run as a role of its own that may invoke only `fn` and
 * send only to the schedule dead-letter queue.
 */
export function expectScheduleRoleLimitedTo({ stack, template }: Synthesized, fn: StackFunction): void {
  const schedule = Object.values(
    template.findResources('AWS::Scheduler::Schedule', {
      Properties: { Target: { Arn: stack.resolve(fn.functionArn) } },
    }),
  )[0];
  const roleArn = schedule?.Properties.Target.RoleArn as { 'Fn::GetAtt': [string, string] } | undefined;
  const roleId = roleArn?.['Fn::GetAtt'][0];

  template.hasResourceProperties('AWS::IAM::Policy', {
    Roles: [{ Ref: roleId }],
    PolicyDocument: {
      Statement: [
        Match.objectLike({ Action: 'lambda:InvokeFunction', Resource: stack.resolve(fn.functionArn) }),
        Match.objectLike({
          Action: 'sqs:SendMessage',
          Resource: stack.resolve(stack.scheduleDeadLetterQueue.queueArn),
        }),
      ],
    },
  });
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

/**
 * Expects a count alarm (see {@link COUNT_ALARM}) on `metricName`, a metric the housekeeper emits
 * itself, that notifies the alarm topic, with `props` (its name, OK actions, description) besides.
 */
export function expectCountAlarm(
  { stack, template }: Synthesized,
  metricName: string,
  props: Record<string, unknown> = {},
): void {
  template.hasResourceProperties(
    'AWS::CloudWatch::Alarm',
    Match.objectLike({
      ...SERVICE_METRIC,
      MetricName: metricName,
      ...COUNT_ALARM,
      AlarmActions: [stack.resolve(stack.alarmTopic.topicArn)],
      ...props,
    }),
  );
}

/**
 * Expects an alarm on the Lambda metric `metricName` of `fn` (one or more), that notifies the alarm
 * topic, with `props` (its name) besides.
 */
export function expectFunctionAlarm(
  { stack, template }: Synthesized,
  fn: StackFunction | undefined,
  metricName: string,
  props: Record<string, unknown> = {},
): void {
  template.hasResourceProperties('AWS::CloudWatch::Alarm', {
    Namespace: 'AWS/Lambda',
    MetricName: metricName,
    Dimensions: [{ Name: 'FunctionName', Value: stack.resolve(fn?.functionName) }],
    Threshold: 1,
    ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    AlarmActions: [stack.resolve(stack.alarmTopic.topicArn)],
    ...props,
  });
}

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

/** What the CLI needs to synthesize the stack: the two required context keys. */
export const REQUIRED_CONTEXT = { tokensApiUrl: 'https://tokens.example.com', sessionKeySecret: SECRET_NAME };

/** A test that runs the cdk CLI, which bundles every function: a minute or more on a busy machine. */
export const CLI_TEST = { timeout: 120_000 } as const;

/**
 * `cdk synth` as an operator runs it, on a machine with no AWS credentials: a fresh home for the
 * file's tests, removed after them. `synth(context, out)` runs
 * `npx cdk synth --quiet --no-notices -c key=value ... -o <home>/<out>`.
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
    /** The offline environment of the home. */
    env: (): NodeJS.ProcessEnv => offlineEnv(home),
    /** What the CLI printed and how it exited, and the output folder it wrote. */
    synth: async (context: Readonly<Record<string, string>>, out: string) => {
      const outdir = join(home, out);
      const contextArgs = Object.entries(context).flatMap(([key, value]) => ['-c', `${key}=${value}`]);
      const { code, output } = await run(
        'npx',
        ['cdk', 'synth', '--quiet', '--no-notices', ...contextArgs, '-o', outdir],
        offlineEnv(home),
      );
      return { code, output, outdir };
    },
  };
}

/** What the cdk-nag plugin reported into `outdir` (an empty list when nothing was found). */
export function pluginReports(outdir: string): unknown[] {
  return (
    JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as { pluginReports: unknown[] }
  ).pluginReports;
}

/** A resource of a template `cdk synth` wrote. */
export interface WrittenResource {
  readonly Type: string;
  readonly Metadata?: Record<string, string>;
  readonly Properties: Record<string, unknown> & {
    Description?: string;
    Environment?: { Variables?: Record<string, string> };
  };
}

/** The resources of the stack's template that `cdk synth` wrote into `outdir`. */
export function writtenResources(outdir: string): WrittenResource[] {
  const template = JSON.parse(readFileSync(join(outdir, 'TokensHousekeeper.template.json'), 'utf8')) as {
    Resources: Record<string, WrittenResource>;
  };
  return Object.values(template.Resources);
}
