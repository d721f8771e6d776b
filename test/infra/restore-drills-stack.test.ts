import { Annotations, Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import type { HousekeepingStack } from '../../infra/housekeeping-stack.ts';
import { expectCountAlarm, expectDashboardShows, expectFunctionAlarm } from './alarms.ts';
import { CLI_TEST, offlineCdk, REQUIRED_CONTEXT, writtenResources } from './cdk-cli.ts';
import { acknowledgements, nagFindings } from './nag.ts';
import {
  actionsOf,
  bundleOf,
  expectScheduleRoleLimitedTo,
  FUNCTION_RUNTIME,
  functionResource,
  functionStatements,
  itRejects,
  type Synthesized,
  synthesizer,
} from './synth.ts';

/** One app with one stack and the AWS Solutions checks, as infra/app.ts; bundling only when asked. */
const synth = synthesizer();

describe('HousekeepingStack restore drills', () => {
  let main: Synthesized;
  let template: Template;
  let drill: NonNullable<HousekeepingStack['restoreDrills']>;

  beforeAll(() => {
    main = synth({}, { bundle: true });
    template = main.template;
    if (main.stack.restoreDrills === undefined) throw new Error('restore drills are on by default');
    drill = main.stack.restoreDrills;
  });

  describe('function', () => {
    it('bundles lambda/entries/drill-handler.ts on its own, without the tokens client or the secret reader', () => {
      const { code } = bundleOf(main.app, drill.fn);

      expect(code).toContain('DRILL_MAX_LINES');
      expect(code).not.toContain('GetSecretValue');
      // The tokens client's paths: the variables' table (and so the name TOKENS_API_URL) is in every bundle.
      expect(code).not.toContain('/api/tokens');
    });

    it('runs like the pass (Node.js 24, arm64, 1024 MB, 15 minutes, JSON logs), one at a time, failures to the failure queue', () => {
      expect(functionResource(main, drill.fn).Properties).toMatchObject({
        ...FUNCTION_RUNTIME,
        ReservedConcurrentExecutions: 1,
        LoggingConfig: { LogFormat: 'JSON' },
        Description: expect.stringMatching(/^Restore drill/),
      });
      template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
        FunctionName: main.stack.resolve(drill.fn.functionName),
        MaximumRetryAttempts: 0,
        DestinationConfig: {
          OnFailure: { Destination: main.stack.resolve(main.stack.failureQueue.queueArn) },
        },
      });
    });

    it('is given the archive and its drill settings, and neither the tokens service nor the session key', () => {
      const variables = functionResource(main, drill.fn).Properties.Environment.Variables;

      expect(variables).toEqual({
        ARCHIVE_BUCKET: main.stack.resolve(main.stack.bucket.bucketName),
        ARCHIVE_PREFIX: 'tokens/',
        DRILL_SAMPLE_SIZE: '20',
        DRILL_MAX_LINES: '200',
        DRILL_RECENT_LINES: 'true',
        POWERTOOLS_SERVICE_NAME: 'tokens-housekeeper',
        POWERTOOLS_METRICS_NAMESPACE: 'TokensHousekeeper',
        POWERTOOLS_LOG_LEVEL: 'INFO',
        NODE_OPTIONS: '--enable-source-maps',
      });
    });
  });

  describe('schedule', () => {
    it('invokes the drill function daily with an empty event, bounded retries, into the schedule dead-letter queue', () => {
      template.resourceCountIs('AWS::Scheduler::Schedule', 2);
      template.hasResourceProperties('AWS::Scheduler::Schedule', {
        ScheduleExpression: 'rate(1 day)',
        State: 'ENABLED',
        Description: Match.stringLikeRegexp('^Restore drill'),
        Target: Match.objectLike({
          Arn: main.stack.resolve(drill.fn.functionArn),
          Input: '{}',
          RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 3600 },
          DeadLetterConfig: { Arn: main.stack.resolve(main.stack.scheduleDeadLetterQueue.queueArn) },
        }),
      });
    });

    it('uses a scheduler role of its own that may invoke only the drill function', () => {
      expectScheduleRoleLimitedTo(main, drill.fn);
    });
  });

  describe('permissions', () => {
    it('lets the drill function read the archive and write only under _drills/, nothing else in S3', () => {
      const statements = functionStatements(main, drill.fn);
      const s3 = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('s3:')));

      expect(s3).toEqual([
        expect.objectContaining({
          Sid: 'ReadArchive',
          Action: 's3:GetObject',
          Resource: main.stack.resolve(main.stack.bucket.arnForObjects('tokens/*')),
        }),
        expect.objectContaining({
          Sid: 'WriteDrillReports',
          Action: 's3:PutObject',
          Resource: main.stack.resolve(main.stack.bucket.arnForObjects('tokens/_drills/*')),
        }),
        expect.objectContaining({
          Sid: 'ListArchivePrefix',
          Action: 's3:ListBucket',
          Condition: { StringLike: { 's3:prefix': ['tokens/*'] } },
        }),
      ]);
    });

    it('gives the drill function no secret, no delete, no wildcard action: only the archive, its logs and the failure queue', () => {
      const actions = functionStatements(main, drill.fn).flatMap(actionsOf).sort();

      expect(actions).toEqual(
        [
          's3:GetObject',
          's3:PutObject',
          's3:ListBucket',
          'logs:CreateLogStream',
          'logs:PutLogEvents',
          'sqs:SendMessage',
          'sqs:GetQueueAttributes',
          'sqs:GetQueueUrl',
        ].sort(),
      );
    });

    it('grants the archive key to the drill too when the archive is encrypted with KMS', () => {
      const synthesized = synth({ archiveEncryption: 'kms' });
      const kms = functionStatements(synthesized, synthesized.stack.restoreDrills?.fn).filter((s) =>
        actionsOf(s).some((a) => a.startsWith('kms:')),
      );

      expect(kms).toEqual([
        expect.objectContaining({
          Sid: 'UseArchiveKey',
          Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
          Condition: { StringEquals: { 'kms:ViaService': 's3.eu-west-1.amazonaws.com' } },
        }),
      ]);
      expect(nagFindings(synthesized.app)).toEqual([]);
    });
  });

  describe('alarms and dashboard', () => {
    it('alarms when a drill reports a finding: DrillFindings >= 1 over 5 minutes, missing data not breaching', () => {
      expectCountAlarm(main, 'DrillFindings', {
        AlarmName: 'Housekeeper-drill-findings',
        AlarmDescription: Match.stringLikeRegexp('docs/operations.md#restore-drills'),
      });
    });

    it('alarms when a drill does not reach every line it chose, so a stalled drill is not silent', () => {
      expectCountAlarm(main, 'DrillLinesNotReached', { AlarmName: 'Housekeeper-drill-lines-not-reached' });
    });

    it('alarms when a drill ends in an error', () => {
      expectFunctionAlarm(main, drill.fn, 'Errors', { AlarmName: 'Housekeeper-drill-errors' });
    });

    it('draws the drills: findings, lines audited and not reached, the drill runs', () => {
      expectDashboardShows(template, [
        'Restore drills (rate(1 day))',
        'DrillFindings',
        'DrillLinesAudited',
        'DrillLinesNotReached',
        'Restore drill runs',
      ]);
    });

    it('outputs the drill function and schedule names', () => {
      template.hasOutput('DrillFunctionName', { Value: main.stack.resolve(drill.fn.functionName) });
      template.hasOutput('DrillScheduleName', {});
    });
  });

  describe('cdk-nag', () => {
    it('reports no unacknowledged finding, and acknowledges exactly the drill role’s two wildcards, with reasons', () => {
      expect(nagFindings(main.app)).toEqual([]);
      const acknowledged = acknowledgements(drill.fn.role ? [drill.fn.role] : []);

      expect(acknowledged.map(([id]) => id)).toEqual([
        expect.stringMatching(
          /^Annotation::AwsSolutions-IAM5\[Resource::<ArchiveBucket.*\.Arn>\/tokens\/\*\]$/,
        ),
        expect.stringMatching(
          /^Annotation::AwsSolutions-IAM5\[Resource::<ArchiveBucket.*\.Arn>\/tokens\/_drills\/\*\]$/,
        ),
      ]);
      for (const [, reason] of acknowledged) expect(reason.length).toBeGreaterThan(40);
      expect(Annotations.fromStack(main.stack).findWarning('*', Match.anyValue())).toEqual([]);
    });

    it('stays clean with an existing bucket and another prefix', () => {
      const synthesized = synth({ bucketName: 'existing-archive', archivePrefix: 'archive/' });

      expect(functionStatements(synthesized, synthesized.stack.restoreDrills?.fn)).toContainEqual(
        expect.objectContaining({
          Sid: 'WriteDrillReports',
          Resource: 'arn:aws:s3:::existing-archive/archive/_drills/*',
        }),
      );
      expect(nagFindings(synthesized.app)).toEqual([]);
    });
  });
});

describe('HousekeepingStack restore drill options', () => {
  it('takes the schedule, the sample size, the cap and the recent lines as props', () => {
    const synthesized = synth({
      restoreDrillSchedule: 'cron(30 3 * * ? *)',
      restoreDrillSampleSize: 5,
      restoreDrillMaxLines: 50,
      restoreDrillRecentLines: false,
    });

    synthesized.template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(30 3 * * ? *)',
      Target: Match.objectLike({
        Arn: synthesized.stack.resolve(synthesized.stack.restoreDrills?.fn.functionArn),
      }),
    });
    expect(
      functionResource(synthesized, synthesized.stack.restoreDrills?.fn).Properties.Environment.Variables,
    ).toMatchObject({
      DRILL_SAMPLE_SIZE: '5',
      DRILL_MAX_LINES: '50',
      DRILL_RECENT_LINES: 'false',
    });
  });

  it('creates none of it with restoreDrills: false, and leaves the pass exactly as it is with them', () => {
    const on = synth();
    const off = synth({ restoreDrills: false });

    expect(off.stack.restoreDrills).toBeUndefined();
    off.template.resourceCountIs('AWS::Scheduler::Schedule', 1);
    off.template.resourceCountIs('AWS::Lambda::Function', 1);
    expect(JSON.stringify(off.template.toJSON())).not.toMatch(/_drills|Drill/);
    // The pass: the same function, role policy and schedule, drills or not.
    expect(functionResource(on, on.stack.fn)).toEqual(functionResource(off, off.stack.fn));
    expect(functionStatements(on, on.stack.fn)).toEqual(functionStatements(off, off.stack.fn));
    const passSchedule = ({ stack, template }: Synthesized) =>
      template.findResources('AWS::Scheduler::Schedule', {
        Properties: { Target: { Arn: stack.resolve(stack.fn.functionArn) } },
      });
    expect(passSchedule(on)).toEqual(passSchedule(off));
    expect(nagFindings(off.app)).toEqual([]);
  });

  it('adds the drills beside the fan-out planner and worker, leaving both as they are', () => {
    const on = synth({ mode: 'fanout' });
    const off = synth({ mode: 'fanout', restoreDrills: false });

    expect(on.stack.restoreDrills).toBeDefined();
    expect(functionResource(on, on.stack.fanout?.worker)).toEqual(
      functionResource(off, off.stack.fanout?.worker),
    );
    expect(functionStatements(on, on.stack.fanout?.worker)).toEqual(
      functionStatements(off, off.stack.fanout?.worker),
    );
    expect(nagFindings(on.app)).toEqual([]);
  });

  itRejects(synth, [
    [
      { restoreDrills: false, restoreDrillSampleSize: 5 },
      /restoreDrillSampleSize applies only with restoreDrills/,
    ],
    [
      { restoreDrillSchedule: 'daily' },
      /restoreDrillSchedule must be rate\(\.\.\.\), cron\(\.\.\.\) or at\(\.\.\.\), got "daily"/,
    ],
    [{ restoreDrillSampleSize: 10_001 }, /restoreDrillSampleSize must be an integer between 0 and 10000/],
    [{ restoreDrillMaxLines: 0 }, /restoreDrillMaxLines must be an integer between 1 and 10000/],
    [
      { restoreDrillSampleSize: 30, restoreDrillMaxLines: 10 },
      /restoreDrillSampleSize 30 does not fit in restoreDrillMaxLines 10/,
    ],
    [
      { restoreDrillSampleSize: 0, restoreDrillRecentLines: false },
      /leaves a drill nothing to audit; use restoreDrills: false/,
    ],
  ]);
});

describe('cdk synth -c restoreDrills...', () => {
  const cdk = offlineCdk('housekeeper-drills-synth-');

  it('reads the drill settings from context', CLI_TEST, async () => {
    const { code, output, outdir } = await cdk.synth(
      {
        ...REQUIRED_CONTEXT,
        restoreDrillSchedule: 'cron(0 4 * * ? *)',
        restoreDrillSampleSize: '7',
        restoreDrillMaxLines: '70',
        restoreDrillRecentLines: 'off',
      },
      'cdk.out.settings',
    );

    expect(code, output).toBe(0);
    const all = writtenResources(outdir);
    expect(
      all.filter((r) => r.Type === 'AWS::Scheduler::Schedule').map((r) => r.Properties.ScheduleExpression),
    ).toContain('cron(0 4 * * ? *)');
    const drill = all.find(
      (r) =>
        r.Type === 'AWS::Lambda::Function' && String(r.Properties.Description).startsWith('Restore drill'),
    );
    expect(drill?.Properties.Environment?.Variables).toMatchObject({
      DRILL_SAMPLE_SIZE: '7',
      DRILL_MAX_LINES: '70',
      DRILL_RECENT_LINES: 'false',
    });
  });

  it('leaves the drills out with -c restoreDrills=off', CLI_TEST, async () => {
    const { code, output, outdir } = await cdk.synth(
      { ...REQUIRED_CONTEXT, restoreDrills: 'off' },
      'cdk.out.off',
    );

    expect(code, output).toBe(0);
    expect(writtenResources(outdir).filter((r) => r.Type === 'AWS::Scheduler::Schedule')).toHaveLength(1);
    expect(writtenResources(outdir).filter((r) => r.Type === 'AWS::Lambda::Function')).toHaveLength(1);
  });

  it('fails naming a switch value it does not know', CLI_TEST, async () => {
    const { code, output } = await cdk.synth(
      { ...REQUIRED_CONTEXT, restoreDrills: 'sometimes' },
      'cdk.out.bad',
    );

    expect(code).not.toBe(0);
    expect(output).toMatch(/context "restoreDrills" must be on or off, got "sometimes"/);
  });
});
