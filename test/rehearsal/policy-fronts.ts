/**
 * Policy fronts for a rehearsal: the local S3 (and SQS) and Secrets Manager behind an IAM front
 * each, enforcing one function's role as the synthesized template states it, its references
 * resolved to the local servers.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { type LocalStack, startLocalStack } from '../local/stack.ts';
import type { DeployedFunction, Synthesized } from './deployed.ts';
import { type Decision, IamFront, policyStatements, type RefMap } from './iam-front.ts';

/** Region and account of the queues on the local SQS (fauxqs names them so). */
export const LOCAL_SQS = { region: 'us-east-1', account: '000000000000' } as const;
/** The synthesized stack's own region and account (test/rehearsal/deployed.ts). */
const STACK = { region: 'eu-west-1', account: '123456789012' } as const;

/**
 * What each resource of the template is locally, for resolving the role's policy: the archive
 * bucket, the queues on the local SQS (`queues`: logical id prefix -> local queue name), and the
 * stack's other resources by their logical id. A reference to a resource of another type is left
 * out, so the policy front names it instead of guessing.
 */
function localRefs(
  template: Synthesized['template'],
  bucket: string,
  queues: Record<string, string> = {},
): RefMap {
  const refs: Record<string, { ref: string; arn: string }> = {};
  const { region, account } = STACK;
  for (const [id, resource] of Object.entries(
    (template as { Resources: Record<string, { Type: string }> }).Resources,
  )) {
    switch (resource.Type) {
      case 'AWS::S3::Bucket': {
        const name = id.startsWith('ArchiveBucket') ? bucket : id.toLowerCase();
        refs[id] = { ref: name, arn: `arn:aws:s3:::${name}` };
        break;
      }
      case 'AWS::SQS::Queue': {
        const name = Object.entries(queues).find(([prefix]) => id.startsWith(prefix))?.[1] ?? id;
        refs[id] = { ref: name, arn: `arn:aws:sqs:${LOCAL_SQS.region}:${LOCAL_SQS.account}:${name}` };
        break;
      }
      case 'AWS::Logs::LogGroup':
        refs[id] = { ref: id, arn: `arn:aws:logs:${region}:${account}:log-group:${id}:*` };
        break;
      case 'AWS::KMS::Key':
        refs[id] = { ref: id, arn: `arn:aws:kms:${region}:${account}:key/${id}` };
        break;
      case 'AWS::Lambda::Function':
        refs[id] = { ref: id, arn: `arn:aws:lambda:${region}:${account}:function:${id}` };
        break;
    }
  }
  return refs;
}

/** Policy fronts before the local S3 (and SQS) and Secrets Manager, enforcing `fn`'s role. */
export interface PolicyFronts {
  readonly endpoints: Record<string, string>;
  readonly decisions: readonly Decision[];
  readonly denied: readonly Decision[];
  close(): Promise<void>;
}

export async function policyFronts(
  stack: Synthesized,
  fn: DeployedFunction,
  local: LocalStack,
  queues: Record<string, string> = {},
): Promise<PolicyFronts> {
  const statements = policyStatements(
    stack.template,
    fn.roleLogicalId,
    localRefs(stack.template, local.bucket, queues),
    {
      region: STACK.region,
      account: STACK.account,
    },
  );
  // The local secret, as its full ARN in the stack's account (the 6 characters Secrets Manager adds).
  const secrets = {
    [local.secretId]: `arn:aws:secretsmanager:${STACK.region}:${STACK.account}:secret:${local.secretId}-Ab12Cd`,
  };
  const options = { statements, ...LOCAL_SQS, secrets };
  const store = await IamFront.start({ ...options, upstream: local.env.AWS_ENDPOINT_URL_S3 as string });
  const secretsFront = await IamFront.start({
    ...options,
    upstream: local.env.AWS_ENDPOINT_URL_SECRETS_MANAGER as string,
  });
  return {
    endpoints: {
      AWS_ENDPOINT_URL_S3: store.url,
      AWS_ENDPOINT_URL_SQS: store.url,
      AWS_ENDPOINT_URL_SECRETS_MANAGER: secretsFront.url,
    },
    get decisions() {
      return [...store.decisions, ...secretsFront.decisions];
    },
    get denied() {
      return [...store.denied, ...secretsFront.denied];
    },
    async close() {
      await store.close();
      await secretsFront.close();
    },
  };
}

/** The clients of {@link frontClients}: the function's role at work, without the function. */
export interface FrontClients {
  readonly s3: S3Client;
  readonly secrets: SecretsManagerClient;
  destroy(): void;
}

/**
 * An S3 and a Secrets Manager client that send through the fronts, with dummy credentials: the
 * fronts judge a request by the role's statements, not by who signs it.
 */
export function frontClients(fronts: PolicyFronts): FrontClients {
  const credentials = { accessKeyId: 'rehearsal', secretAccessKey: 'rehearsal' };
  const s3 = new S3Client({
    endpoint: fronts.endpoints.AWS_ENDPOINT_URL_S3,
    forcePathStyle: true,
    region: LOCAL_SQS.region,
    credentials,
  });
  const secrets = new SecretsManagerClient({
    endpoint: fronts.endpoints.AWS_ENDPOINT_URL_SECRETS_MANAGER,
    region: LOCAL_SQS.region,
    credentials,
  });
  return {
    s3,
    secrets,
    destroy() {
      s3.destroy();
      secrets.destroy();
    },
  };
}

/** The name of the error a request through the fronts was refused with; fails if it was not refused. */
export async function refusalOf(request: Promise<unknown>): Promise<string> {
  const error = await request.then(
    () => {
      throw new Error('expected the fronts to refuse the request, and it went through');
    },
    (refused: unknown) => refused,
  );
  return (error as { name?: string }).name ?? String(error);
}

/**
 * Runs `use` as `fn`'s role: against an empty local stack behind fronts that enforce the role, with
 * clients through them; closes it all after.
 */
export async function asRole(
  stack: Synthesized,
  fn: DeployedFunction,
  use: (role: FrontClients & { local: LocalStack; fronts: PolicyFronts }) => Promise<void>,
): Promise<void> {
  const local = await startLocalStack({ lines: [] });
  const fronts = await policyFronts(stack, fn, local);
  const clients = frontClients(fronts);
  try {
    await use({ ...clients, local, fronts });
  } finally {
    clients.destroy();
    await fronts.close();
    await local.close();
  }
}
