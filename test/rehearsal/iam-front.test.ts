import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { Upload } from '@aws-sdk/lib-storage';
import { describe, expect, it, onTestFinished } from 'vitest';
import { type LocalStack, startLocalStack } from '../local/stack.ts';
import {
  evaluate,
  IamFront,
  policyStatements,
  type RefMap,
  type Statement,
  UnresolvableIntrinsicError,
  UnsupportedPolicyError,
} from './iam-front.ts';

const REGION = 'us-east-1';
const ACCOUNT = '000000000000';
const CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };
const BUCKET = 'tokens-archive';
const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:tokens/session-key-AbCdEf';
const OTHER_SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:other/secret-XyZ123';

const bucketArn = { 'Fn::GetAtt': ['ArchiveBucket9DECBF5D', 'Arn'] };
const archiveGrants = [
  {
    Sid: 'ReadSessionKey',
    Effect: 'Allow',
    Action: 'secretsmanager:GetSecretValue',
    Resource: {
      'Fn::Join': [
        '',
        [
          'arn:',
          { Ref: 'AWS::Partition' },
          ':secretsmanager:eu-west-1:123456789012:secret:tokens/session-key-??????',
        ],
      ],
    },
  },
  {
    Sid: 'ArchiveObjects',
    Effect: 'Allow',
    Action: ['s3:AbortMultipartUpload', 's3:GetObject', 's3:ListMultipartUploadParts', 's3:PutObject'],
    Resource: { 'Fn::Join': ['', [bucketArn, '/tokens/*']] },
  },
  {
    Sid: 'ListArchivePrefix',
    Effect: 'Allow',
    Action: 's3:ListBucket',
    Resource: bucketArn,
    Condition: { StringLike: { 's3:prefix': ['tokens/*'] } },
  },
];

/** The planner and worker roles of the fan-out stack, in the shapes the synthesized template has. */
function template(extraPlannerStatements: unknown[] = []): Record<string, unknown> {
  const policy = (role: string, statements: unknown[]) => ({
    Type: 'AWS::IAM::Policy',
    Properties: {
      PolicyDocument: { Statement: statements, Version: '2012-10-17' },
      PolicyName: `${role}DefaultPolicy`,
      Roles: [{ Ref: role }],
    },
  });
  return {
    Resources: {
      ArchiveBucket9DECBF5D: { Type: 'AWS::S3::Bucket' },
      WorkQueue: { Type: 'AWS::SQS::Queue' },
      FailureQueue: { Type: 'AWS::SQS::Queue' },
      PlannerRole: { Type: 'AWS::IAM::Role' },
      WorkerRole: { Type: 'AWS::IAM::Role' },
      PlannerRoleDefaultPolicy: policy('PlannerRole', [
        ...archiveGrants,
        {
          Sid: 'EnqueueWork',
          Effect: 'Allow',
          Action: 'sqs:SendMessage',
          Resource: { 'Fn::GetAtt': ['WorkQueue', 'Arn'] },
        },
        {
          Effect: 'Allow',
          Action: ['sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage'],
          Resource: { 'Fn::GetAtt': ['FailureQueue', 'Arn'] },
        },
        ...extraPlannerStatements,
      ]),
      WorkerRoleDefaultPolicy: policy('WorkerRole', [
        ...archiveGrants,
        {
          Effect: 'Allow',
          Action: [
            'sqs:ChangeMessageVisibility',
            'sqs:DeleteMessage',
            'sqs:GetQueueAttributes',
            'sqs:GetQueueUrl',
            'sqs:ReceiveMessage',
          ],
          Resource: { 'Fn::GetAtt': ['WorkQueue', 'Arn'] },
        },
      ]),
    },
  };
}

const REFS: RefMap = {
  ArchiveBucket9DECBF5D: { ref: BUCKET, arn: `arn:aws:s3:::${BUCKET}` },
  WorkQueue: { ref: 'tokens-work', arn: `arn:aws:sqs:${REGION}:${ACCOUNT}:tokens-work` },
  FailureQueue: { ref: 'tokens-failed', arn: `arn:aws:sqs:${REGION}:${ACCOUNT}:tokens-failed` },
};

/** What a client of the fronts is configured with: the front's URL, and no retries. */
interface ThroughFront {
  endpoint: string;
  region: string;
  credentials: typeof CREDENTIALS;
  maxAttempts: number;
  forcePathStyle?: boolean;
}

/** A `Client` that sends through `front` once per request, destroyed when the test ends. */
function clientThrough<C extends { destroy(): void }>(
  Client: new (config: ThroughFront) => C,
  front: IamFront,
  extra: Partial<ThroughFront> = {},
): C {
  const client = new Client({
    endpoint: front.url,
    region: REGION,
    credentials: CREDENTIALS,
    maxAttempts: 1,
    ...extra,
  });
  onTestFinished(() => client.destroy());
  return client;
}

interface Fronted {
  readonly local: LocalStack;
  readonly front: IamFront;
  readonly s3: S3Client;
}

/** The local stack with an IAM front before its S3 (and SQS) server, closed when the test ends. */
async function frontedS3(statements: readonly Statement[]): Promise<Fronted> {
  const local = await startLocalStack();
  onTestFinished(() => local.close());
  const front = await IamFront.start({
    upstream: local.s3.address,
    statements,
    region: REGION,
    account: ACCOUNT,
  });
  onTestFinished(() => front.close());
  const s3 = clientThrough(S3Client, front, { forcePathStyle: true });
  return { local, front, s3 };
}

const plannerStatements = (extra: unknown[] = []) => policyStatements(template(extra), 'PlannerRole', REFS);

async function rejection(promise: Promise<unknown>): Promise<{ name: string; status: number | undefined }> {
  const error = await promise.then(
    () => {
      throw new Error('expected the request to be refused');
    },
    (reason: unknown) => reason as { name: string; $metadata?: { httpStatusCode?: number } },
  );
  return { name: error.name, status: error.$metadata?.httpStatusCode };
}

async function text(s3: S3Client, key: string): Promise<string> {
  const reply = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return (await reply.Body?.transformToString()) ?? '';
}

describe('policyStatements', () => {
  it('collects the statements of the policies attached to the role, with their references resolved', () => {
    const statements = policyStatements(template(), 'WorkerRole', REFS);

    expect(statements.map((s) => s.sid)).toEqual([
      'ReadSessionKey',
      'ArchiveObjects',
      'ListArchivePrefix',
      undefined,
    ]);
    expect(statements[0]?.resource.patterns).toEqual([
      'arn:aws:secretsmanager:eu-west-1:123456789012:secret:tokens/session-key-??????',
    ]);
    expect(statements[1]?.resource.patterns).toEqual([`arn:aws:s3:::${BUCKET}/tokens/*`]);
    expect(statements[2]?.conditions).toEqual([
      { operator: 'StringLike', key: 's3:prefix', values: ['tokens/*'] },
    ]);
    expect(statements[3]?.resource.patterns).toEqual([`arn:aws:sqs:${REGION}:${ACCOUNT}:tokens-work`]);
  });

  it('throws naming an intrinsic the map does not resolve', () => {
    const withUnknown = template([
      {
        Effect: 'Allow',
        Action: 'logs:PutLogEvents',
        Resource: { 'Fn::GetAtt': ['LogGroupF5B46931', 'Arn'] },
      },
    ]);

    expect(() => policyStatements(withUnknown, 'PlannerRole', REFS)).toThrow(UnresolvableIntrinsicError);
    expect(() => policyStatements(withUnknown, 'PlannerRole', REFS)).toThrow(/LogGroupF5B46931/);
    expect(() =>
      policyStatements(
        template([{ Effect: 'Allow', Action: 'sqs:*', Resource: { Ref: 'AWS::Region' } }]),
        'PlannerRole',
        REFS,
      ),
    ).toThrow(/AWS::Region/);
  });

  it('throws naming a condition operator it does not evaluate', () => {
    const withDate = template([
      {
        Effect: 'Allow',
        Action: 's3:GetObject',
        Resource: '*',
        Condition: { DateGreaterThan: { 'aws:CurrentTime': '2020-01-01' } },
      },
    ]);

    expect(() => policyStatements(withDate, 'PlannerRole', REFS)).toThrow(UnsupportedPolicyError);
    expect(() => policyStatements(withDate, 'PlannerRole', REFS)).toThrow(/DateGreaterThan/);
  });
});

describe('evaluate', () => {
  const statements = plannerStatements([
    {
      Sid: 'NoReceipts',
      Effect: 'Deny',
      Action: 'S3:Put*',
      Resource: `arn:aws:s3:::${BUCKET}/tokens/_receipts/*`,
    },
  ]);

  it('matches actions case-insensitively and resources with * and ?', () => {
    expect(
      evaluate(statements, { action: 'S3:getobject', resource: `arn:aws:s3:::${BUCKET}/tokens/a/b` }),
    ).toEqual({
      allowed: true,
      explicitDeny: false,
      sid: 'ArchiveObjects',
    });
    expect(
      evaluate(statements, { action: 'secretsmanager:GetSecretValue', resource: SECRET_ARN }).allowed,
    ).toBe(true);
    expect(
      evaluate(statements, { action: 'secretsmanager:GetSecretValue', resource: `${SECRET_ARN}x` }).allowed,
    ).toBe(false);
  });

  it('lets an explicit Deny win over an Allow', () => {
    expect(
      evaluate(statements, { action: 's3:PutObject', resource: `arn:aws:s3:::${BUCKET}/tokens/_receipts/r` }),
    ).toEqual({ allowed: false, explicitDeny: true, sid: 'NoReceipts' });
  });

  it('holds a StringLike condition only when the key is present and matches', () => {
    const list = { action: 's3:ListBucket', resource: `arn:aws:s3:::${BUCKET}` };

    expect(evaluate(statements, { ...list, keys: { 's3:prefix': 'tokens/x' } }).allowed).toBe(true);
    expect(evaluate(statements, { ...list, keys: { 's3:prefix': 'other/' } }).allowed).toBe(false);
    expect(evaluate(statements, list).allowed).toBe(false);
  });
});

describe('IamFront before S3', () => {
  it('forwards PutObject and GetObject under the granted prefix, and the object round-trips', async () => {
    const { local, front, s3 } = await frontedS3(plannerStatements());

    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'tokens/a b/ü.json', Body: '{"ok":true}' }));

    expect(await text(s3, 'tokens/a b/ü.json')).toBe('{"ok":true}');
    expect(await text(local.s3Client, 'tokens/a b/ü.json')).toBe('{"ok":true}');
    expect(front.decisions).toEqual([
      {
        service: 's3',
        action: 's3:PutObject',
        resource: `arn:aws:s3:::${BUCKET}/tokens/a b/ü.json`,
        allowed: true,
        sid: 'ArchiveObjects',
        status: 200,
      },
      {
        service: 's3',
        action: 's3:GetObject',
        resource: `arn:aws:s3:::${BUCKET}/tokens/a b/ü.json`,
        allowed: true,
        sid: 'ArchiveObjects',
        status: 200,
      },
    ]);
    expect(front.denied).toEqual([]);
  });

  it('streams a large object through unchanged, both ways', async () => {
    const { local, s3 } = await frontedS3(plannerStatements());
    const body = Buffer.alloc(3 * 1024 * 1024, 'xyz');

    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'tokens/big', Body: body }));

    const direct = await local.s3Client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'tokens/big' }));
    expect(Buffer.from((await direct.Body?.transformToByteArray()) ?? []).equals(body)).toBe(true);
    const fronted = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'tokens/big' }));
    expect(Buffer.from((await fronted.Body?.transformToByteArray()) ?? []).equals(body)).toBe(true);
  });

  it('forwards a multipart upload under the prefix as PutObject, and refuses one outside it', async () => {
    const { local, front, s3 } = await frontedS3(plannerStatements());
    const body = Buffer.alloc(6 * 1024 * 1024, 'mp');

    await new Upload({
      client: s3,
      params: { Bucket: BUCKET, Key: 'tokens/mp', Body: body },
      partSize: 5 * 1024 * 1024,
    }).done();
    const refused = await rejection(
      new Upload({
        client: s3,
        params: { Bucket: BUCKET, Key: 'other/mp', Body: body },
        partSize: 5 * 1024 * 1024,
      }).done(),
    );

    const stored = await local.s3Client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'tokens/mp' }));
    expect(Buffer.from((await stored.Body?.transformToByteArray()) ?? []).equals(body)).toBe(true);
    expect(refused).toEqual({ name: 'AccessDenied', status: 403 });
    expect(front.decisions.filter((d) => d.allowed).map((d) => [d.action, d.sid])).toEqual(
      Array.from({ length: 4 }, () => ['s3:PutObject', 'ArchiveObjects']),
    );
    expect(front.denied.map((d) => [d.action, d.resource])).toEqual([
      ['s3:PutObject', `arn:aws:s3:::${BUCKET}/other/mp`],
    ]);
  });

  it('refuses a PutObject outside the prefix with AccessDenied, and the upstream never sees it', async () => {
    const { local, front, s3 } = await frontedS3(plannerStatements());

    const refused = await rejection(
      s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'other/x', Body: 'no' })),
    );

    expect(refused).toEqual({ name: 'AccessDenied', status: 403 });
    expect(
      await rejection(local.s3Client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'other/x' }))),
    ).toEqual({
      name: 'NotFound',
      status: 404,
    });
    expect(front.denied).toEqual([
      {
        service: 's3',
        action: 's3:PutObject',
        resource: `arn:aws:s3:::${BUCKET}/other/x`,
        allowed: false,
        status: 403,
      },
    ]);
  });

  it('refuses DeleteObject, which no statement grants, and the object stays', async () => {
    const { local, front, s3 } = await frontedS3(plannerStatements());
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'tokens/keep', Body: 'kept' }));

    const refused = await rejection(s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'tokens/keep' })));

    expect(refused).toEqual({ name: 'AccessDenied', status: 403 });
    expect(await text(local.s3Client, 'tokens/keep')).toBe('kept');
    expect(front.denied.map((d) => d.action)).toEqual(['s3:DeleteObject']);
  });

  it('answers 404 for a missing key under the listable prefix, and 403 outside it', async () => {
    const { front, s3 } = await frontedS3(plannerStatements());

    const inside = await rejection(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'tokens/missing' })));
    const outside = await rejection(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'other/missing' })));

    expect(inside).toEqual({ name: 'NotFound', status: 404 });
    expect(outside.status).toBe(403);
    expect(front.decisions.map((d) => [d.action, d.allowed, d.status])).toEqual([
      ['s3:GetObject', true, 404],
      ['s3:ListBucket', true, 404],
      ['s3:GetObject', false, 403],
    ]);
  });

  it('answers 403 for a missing key the caller may read but not list, as S3 does', async () => {
    const statements = policyStatements(
      template([
        { Sid: 'ReadAll', Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${BUCKET}/*` },
      ]),
      'PlannerRole',
      REFS,
    );
    const { local, front, s3 } = await frontedS3(statements);
    await local.s3Client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'other/present', Body: 'here' }));

    const missing = await rejection(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'other/missing' })));

    expect(missing).toEqual({ name: 'AccessDenied', status: 403 });
    expect(await text(s3, 'other/present')).toBe('here');
    expect(front.denied).toEqual([
      {
        service: 's3',
        action: 's3:ListBucket',
        resource: `arn:aws:s3:::${BUCKET}`,
        allowed: false,
        status: 403,
      },
    ]);
  });

  it('forwards ListObjectsV2 with the granted prefix and refuses another prefix', async () => {
    const { local, front, s3 } = await frontedS3(plannerStatements());
    await local.s3Client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'tokens/one', Body: '1' }));

    const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'tokens/' }));
    const refused = await rejection(s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'other/' })));

    expect(listed.Contents?.map((o) => o.Key)).toEqual(['tokens/one']);
    expect(refused).toEqual({ name: 'AccessDenied', status: 403 });
    expect(front.decisions.map((d) => [d.action, d.resource, d.allowed, d.sid])).toEqual([
      ['s3:ListBucket', `arn:aws:s3:::${BUCKET}`, true, 'ListArchivePrefix'],
      ['s3:ListBucket', `arn:aws:s3:::${BUCKET}`, false, undefined],
    ]);
  });

  it('refuses with an explicit Deny even where an Allow applies, and names the Deny', async () => {
    const { local, front, s3 } = await frontedS3(
      plannerStatements([
        {
          Sid: 'NoReceipts',
          Effect: 'Deny',
          Action: 's3:PutObject',
          Resource: `arn:aws:s3:::${BUCKET}/tokens/_receipts/*`,
        },
      ]),
    );

    const refused = await rejection(
      s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'tokens/_receipts/r.json', Body: '{}' })),
    );

    expect(refused).toEqual({ name: 'AccessDenied', status: 403 });
    expect(
      await rejection(
        local.s3Client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'tokens/_receipts/r.json' })),
      ),
    ).toMatchObject({ status: 404 });
    expect(front.denied).toEqual([
      {
        service: 's3',
        action: 's3:PutObject',
        resource: `arn:aws:s3:::${BUCKET}/tokens/_receipts/r.json`,
        allowed: false,
        sid: 'NoReceipts',
        status: 403,
      },
    ]);
  });
});

describe('IamFront before SQS', () => {
  it('forwards SendMessage (and its batch) to the granted queue and refuses ReceiveMessage', async () => {
    const { local, front } = await frontedS3(plannerStatements());
    local.s3.createQueue('tokens-work');
    const queueUrl = `${local.s3.address}/${ACCOUNT}/tokens-work`;
    const sqs = clientThrough(SQSClient, front);

    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: 'one' }));
    await sqs.send(
      new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: [{ Id: 'b', MessageBody: 'two' }] }),
    );
    const refused = await rejection(sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl })));

    expect(
      local.s3
        .inspectQueue('tokens-work')
        ?.messages.ready.map((m) => m.body)
        .sort(),
    ).toEqual(['one', 'two']);
    expect(refused).toEqual({ name: 'AccessDenied', status: 400 });
    expect(front.decisions.map((d) => [d.service, d.action, d.resource, d.allowed, d.sid, d.status])).toEqual(
      [
        ['sqs', 'sqs:SendMessage', `arn:aws:sqs:${REGION}:${ACCOUNT}:tokens-work`, true, 'EnqueueWork', 200],
        ['sqs', 'sqs:SendMessage', `arn:aws:sqs:${REGION}:${ACCOUNT}:tokens-work`, true, 'EnqueueWork', 200],
        ['sqs', 'sqs:ReceiveMessage', `arn:aws:sqs:${REGION}:${ACCOUNT}:tokens-work`, false, undefined, 400],
      ],
    );
  });
});

describe('IamFront before Secrets Manager', () => {
  it('forwards GetSecretValue on the granted secret and refuses another secret', async () => {
    const local = await startLocalStack();
    onTestFinished(() => local.close());
    local.secrets.setSecret('other/secret', 'not yours');
    const front = await IamFront.start({
      upstream: local.secrets.url,
      statements: plannerStatements(),
      region: REGION,
      account: ACCOUNT,
      secrets: { [local.secretId]: SECRET_ARN, 'other/secret': OTHER_SECRET_ARN },
    });
    onTestFinished(() => front.close());
    const secrets = clientThrough(SecretsManagerClient, front);

    const granted = await secrets.send(new GetSecretValueCommand({ SecretId: local.secretId }));
    const refused = await rejection(secrets.send(new GetSecretValueCommand({ SecretId: 'other/secret' })));

    expect(JSON.parse(granted.SecretString ?? '{}')).toEqual({ sessionKey: local.sessionKey });
    expect(refused).toEqual({ name: 'AccessDeniedException', status: 400 });
    expect(local.secrets.requests.map((r) => r.secretId)).toEqual([local.secretId]);
    expect(front.decisions).toEqual([
      {
        service: 'secretsmanager',
        action: 'secretsmanager:GetSecretValue',
        resource: SECRET_ARN,
        allowed: true,
        sid: 'ReadSessionKey',
        status: 200,
      },
      {
        service: 'secretsmanager',
        action: 'secretsmanager:GetSecretValue',
        resource: OTHER_SECRET_ARN,
        allowed: false,
        status: 400,
      },
    ]);
  });
});
