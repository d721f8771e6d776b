import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import type { Asset } from 'aws-cdk-lib/aws-s3-assets';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, expect, it } from 'vitest';
import { HousekeepingStack, type HousekeepingStackProps } from '../../infra/housekeeping-stack.ts';
import { CDK_CONTEXT } from './offline.ts';

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

/** A function of the stack (the pass, the planner, the worker, the drill), by its construct. */
export type StackFunction = HousekeepingStack['fn'];

/** What every function of the stack runs as by default: Node.js 24 on arm64, 1024 MB, 15 minutes. */
export const FUNCTION_RUNTIME = {
  Runtime: 'nodejs24.x',
  Architectures: ['arm64'],
  Handler: 'index.handler',
  MemorySize: 1024,
  Timeout: 900,
} as const;

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
