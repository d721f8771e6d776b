import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the endpoint received (the secret id only; never a value). */
export interface SecretsRequest {
  readonly target: string;
  readonly secretId: string | undefined;
}

/** A local Secrets Manager endpoint speaking the AWS JSON 1.1 protocol (GetSecretValue only). */
export interface LocalSecretsManager {
  /** e.g. http://127.0.0.1:PORT, for AWS_ENDPOINT_URL_SECRETS_MANAGER. */
  readonly url: string;
  readonly requests: readonly SecretsRequest[];
  /** Creates or replaces a secret's SecretString. */
  setSecret(name: string, secretString: string): void;
  deleteSecret(name: string): void;
  /** The next `times` requests answer 500 InternalServiceError. */
  failNext(times: number): void;
  close(): Promise<void>;
}

const REGION = 'us-east-1';
const ACCOUNT = '000000000000';

/** Starts the endpoint on a port the OS chooses. */
export async function startSecretsManager(host = '127.0.0.1'): Promise<LocalSecretsManager> {
  const secrets = new Map<string, { value: string; version: string; created: number }>();
  const requests: SecretsRequest[] = [];
  let failures = 0;

  const reply = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/x-amz-json-1.1',
      'content-length': Buffer.byteLength(text),
      'x-amzn-requestid': crypto.randomUUID(),
    });
    res.end(text);
  };
  const error = (res: ServerResponse, status: number, type: string, message: string) =>
    reply(res, status, { __type: type, message });

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const target = String(req.headers['x-amz-target'] ?? '');
    let input: { SecretId?: unknown } = {};
    try {
      input = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    } catch {
      return error(res, 400, 'SerializationException', 'body is not JSON');
    }
    const secretId = typeof input.SecretId === 'string' ? input.SecretId : undefined;
    requests.push({ target, secretId });
    if (req.method !== 'POST') return error(res, 405, 'UnknownOperationException', 'POST only');
    if (failures > 0) {
      failures -= 1;
      return error(res, 500, 'InternalServiceError', 'injected failure');
    }
    if (target !== 'secretsmanager.GetSecretValue') {
      return error(res, 400, 'UnknownOperationException', `unsupported operation ${target}`);
    }
    if (secretId === undefined) return error(res, 400, 'InvalidParameterException', 'SecretId is required');
    // An ARN names the secret after "secret:", with a random 6-character suffix.
    const name = secretId.startsWith('arn:')
      ? secretId.replace(/^.*:secret:/, '').replace(/-[A-Za-z0-9]{6}$/, '')
      : secretId;
    const secret = secrets.get(name);
    if (secret === undefined) {
      return error(res, 400, 'ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
    }
    return reply(res, 200, {
      ARN: `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${name}-AbCdEf`,
      Name: name,
      VersionId: secret.version,
      SecretString: secret.value,
      VersionStages: ['AWSCURRENT'],
      CreatedDate: secret.created / 1000,
    });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) error(res, 500, 'InternalServiceError', 'endpoint failure');
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://${host}:${port}`,
    requests,
    setSecret(name, value) {
      secrets.set(name, { value, version: crypto.randomUUID(), created: Date.now() });
    },
    deleteSecret(name) {
      secrets.delete(name);
    },
    failNext(times) {
      failures = times;
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
