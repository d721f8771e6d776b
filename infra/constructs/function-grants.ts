import { Arn, ArnFormat, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { ARCHIVE_FOLDERS } from '../../lambda/shared/contract.ts';

/**
 * The functions' permissions besides their logs, each as narrow as the code allows: one statement
 * per need, with a `sid` that says which.
 */

/** The construct id of the imported secret: imported once per stack, every function is granted the same. */
const SECRET_ID = 'SessionKeySecret';

/** Secrets Manager appends "-" and 6 random characters to the name in a secret's full ARN. */
const FULL_SECRET_ARN_SUFFIX = /-[A-Za-z0-9]{6}$/;

/**
 * GetSecretValue on the one secret (a name or an ARN), nothing else (grantRead would add
 * DescribeSecret).
 */
export function grantSecretRead(role: iam.IRole, secretRef: string): void {
  const stack = Stack.of(role);
  const secret =
    (stack.node.tryFindChild(SECRET_ID) as secretsmanager.ISecret | undefined) ??
    importSecret(stack, secretRef);
  // A name or partial ARN matches the full ARN only with the 6-character suffix wildcard.
  const resource = secret.secretFullArn ?? `${secret.secretArn}-??????`;
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: 'ReadSessionKey',
      actions: ['secretsmanager:GetSecretValue'],
      resources: [resource],
    }),
  );
}

/**
 * Object access under the prefix only, listing only within it, and never a delete. The
 * conditioned ListBucket also makes a missing key under the prefix answer 404 instead of 403
 * (S3 evaluates `s3:prefix` as the requested key), which the function's existence checks need.
 */
export function grantArchiveAccess(role: iam.Role, bucket: s3.IBucket, prefix: string): void {
  const objects = bucket.arnForObjects(`${prefix}*`);
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: 'ArchiveObjects',
      actions: ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
      resources: [objects],
    }),
  );
  grantArchiveKey(role, bucket);
  grantListArchivePrefix(role, bucket, prefix);
  Validations.of(role).acknowledge({
    id: `AwsSolutions-IAM5[Resource::${nagFlatten(Stack.of(role).resolve(objects))}]`,
    reason:
      'Object keys are created at run time (one per archived file, manifest and receipt); the wildcard is ' +
      `limited to the archive prefix "${prefix}" of the one bucket, and no delete action is granted.`,
  });
}

/**
 * The restore drill's access: read any object under the prefix and list within it (as the pass
 * may), and write only its reports under `{prefix}_drills/`; no delete, no multipart upload.
 */
export function grantDrillAccess(role: iam.Role, bucket: s3.IBucket, prefix: string): void {
  const objects = bucket.arnForObjects(`${prefix}*`);
  const reports = bucket.arnForObjects(`${prefix}${ARCHIVE_FOLDERS.drills}*`);
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({ sid: 'ReadArchive', actions: ['s3:GetObject'], resources: [objects] }),
  );
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({ sid: 'WriteDrillReports', actions: ['s3:PutObject'], resources: [reports] }),
  );
  grantArchiveKey(role, bucket);
  grantListArchivePrefix(role, bucket, prefix);
  const resolve = (arn: string) => nagFlatten(Stack.of(role).resolve(arn));
  Validations.of(role).acknowledge(
    {
      id: `AwsSolutions-IAM5[Resource::${resolve(objects)}]`,
      reason:
        'A restore drill reads back archived objects chosen at run time (a random sample and the lines archived ' +
        `since the last drill); the wildcard is limited to the archive prefix "${prefix}" and grants only GetObject.`,
    },
    {
      id: `AwsSolutions-IAM5[Resource::${resolve(reports)}]`,
      reason:
        'Each restore drill writes one report named by its date and id at run time; the wildcard is limited to ' +
        `"${prefix}${ARCHIVE_FOLDERS.drills}" and grants only PutObject, so the drill cannot write anywhere else in the archive.`,
    },
  );
}

/**
 * SSE-KMS: writing needs a data key, reading (and a multipart upload's parts) a decrypt; nothing
 * else, and only through S3 in the stack's region (not a direct call on a key others may share).
 */
function grantArchiveKey(role: iam.Role, bucket: s3.IBucket): void {
  if (bucket.encryptionKey === undefined) return;
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: 'UseArchiveKey',
      actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
      resources: [bucket.encryptionKey.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `s3.${Stack.of(role).region}.amazonaws.com` } },
    }),
  );
}

/** ListBucket only with an `s3:prefix` inside the archive prefix (see {@link grantArchiveAccess}). */
function grantListArchivePrefix(role: iam.Role, bucket: s3.IBucket, prefix: string): void {
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: 'ListArchivePrefix',
      actions: ['s3:ListBucket'],
      resources: [bucket.bucketArn],
      conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } },
    }),
  );
}

/** Fan-out planner: send to the work queue (SendMessageBatch is authorised by sqs:SendMessage), nothing else. */
export function grantEnqueueWork(role: iam.IRole, workQueue: sqs.IQueue): void {
  role.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: 'EnqueueWork',
      actions: ['sqs:SendMessage'],
      resources: [workQueue.queueArn],
    }),
  );
}

function importSecret(scope: Construct, ref: string): secretsmanager.ISecret {
  if (!ref.startsWith('arn:')) {
    return secretsmanager.Secret.fromSecretNameV2(scope, SECRET_ID, ref);
  }
  const name = Arn.split(ref, ArnFormat.COLON_RESOURCE_NAME).resourceName ?? '';
  return FULL_SECRET_ARN_SUFFIX.test(name)
    ? secretsmanager.Secret.fromSecretCompleteArn(scope, SECRET_ID, ref)
    : secretsmanager.Secret.fromSecretPartialArn(scope, SECRET_ID, ref);
}

/**
 * A resolved CloudFormation value flattened the way cdk-nag names IAM5 findings
 * (`Fn::GetAtt` -> `<Id.Attr>`, `Ref` -> `<Id>`, `Fn::Join` joined), so an acknowledgement
 * can name the exact resource instead of silencing the rule for the whole role.
 */
function nagFlatten(value: unknown): string {
  if (typeof value === 'string') return value.replace(/\$\{/g, '<').replace(/\}/g, '>');
  if (value !== null && typeof value === 'object') {
    const node = value as Record<string, unknown>;
    const join = node['Fn::Join'];
    if (Array.isArray(join)) {
      const [delimiter, items] = join as [string, unknown[]];
      return items.map(nagFlatten).join(delimiter);
    }
    const getAtt = node['Fn::GetAtt'];
    if (Array.isArray(getAtt)) return `<${nagFlatten(getAtt[0])}.${nagFlatten(getAtt[1])}>`;
    if ('Ref' in node) return `<${nagFlatten(node.Ref)}>`;
  }
  return JSON.stringify(value);
}
