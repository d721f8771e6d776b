/**
 * An IAM front: an HTTP proxy before one local endpoint (fauxqs for S3 and SQS, or the local
 * Secrets Manager) that judges every request by a role's policy statements from a synthesized
 * template, forwards what the policy allows and refuses what AWS would deny, the way AWS refuses
 * it. Every decision is recorded, so a rehearsal can assert that the deployed grants were enough.
 *
 * Identity-based policies only (no bucket or queue policy, no SCP, no permission boundary, no
 * session policy). Object bodies stream through unchanged; the small JSON bodies of SQS and
 * Secrets Manager are read whole first, since the resource is named in them.
 */
import { randomUUID } from 'node:crypto';
import {
  Agent,
  createServer,
  type IncomingMessage,
  request,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { finished, pipeline } from 'node:stream/promises';

/** Something in a template or a request the front cannot judge; it names what. */
export class IamFrontError extends Error {
  override readonly name: string = 'IamFrontError';
}

/** A CloudFormation intrinsic (or a reference) the given map does not resolve. */
export class UnresolvableIntrinsicError extends IamFrontError {
  override readonly name = 'UnresolvableIntrinsicError';
  constructor(
    readonly intrinsic: string,
    readonly where: string,
  ) {
    super(`${where}: cannot resolve ${intrinsic}`);
  }
}

/** A policy element the evaluator does not implement (a condition operator, NotPrincipal...). */
export class UnsupportedPolicyError extends IamFrontError {
  override readonly name = 'UnsupportedPolicyError';
  constructor(
    readonly element: string,
    readonly where: string,
  ) {
    super(`${where}: unsupported policy element ${element}`);
  }
}

/** What the template's references resolve to: a bucket (name, ARN), a queue (URL, ARN), a log group. */
export type RefMap = Readonly<Record<string, { readonly ref: string; readonly arn: string }>>;

/** The pseudo parameters a template may reference. */
export interface PseudoParameters {
  readonly partition?: string;
  readonly region?: string;
  readonly account?: string;
}

type Operator = 'StringEquals' | 'StringNotEquals' | 'StringLike' | 'StringNotLike';
const OPERATORS: readonly Operator[] = ['StringEquals', 'StringNotEquals', 'StringLike', 'StringNotLike'];

/** One condition of a statement: all of a statement's conditions must hold. */
export interface Condition {
  readonly operator: Operator;
  /** Lower case: condition keys are matched case-insensitively. */
  readonly key: string;
  readonly values: readonly string[];
}

/** `Action` or `NotAction` (`Resource` or `NotResource`): patterns with `*` and `?`. */
export interface Matcher {
  readonly not: boolean;
  readonly patterns: readonly string[];
}

/** A policy statement with its references resolved. */
export interface Statement {
  readonly sid?: string;
  readonly effect: 'Allow' | 'Deny';
  readonly action: Matcher;
  readonly resource: Matcher;
  readonly conditions: readonly Condition[];
}

type Json = Record<string, unknown>;

/**
 * The statements of every `AWS::IAM::Policy` of the template attached to the role
 * (`Roles` holds `{"Ref": roleLogicalId}`), and of the role's own inline `Policies`, with their
 * intrinsics resolved through `refs` and `pseudo`. Managed policies are not read.
 */
export function policyStatements(
  template: unknown,
  roleLogicalId: string,
  refs: RefMap,
  pseudo: PseudoParameters = {},
): Statement[] {
  const resources = (template as { Resources?: Record<string, Json> } | null)?.Resources;
  if (resources === undefined || resources === null) {
    throw new IamFrontError('policyStatements(): the template has no Resources');
  }
  const role = resources[roleLogicalId];
  if (role?.Type !== 'AWS::IAM::Role') {
    throw new IamFrontError(`policyStatements(): ${roleLogicalId} is not an AWS::IAM::Role of the template`);
  }
  const documents: { where: string; document: unknown }[] = [];
  for (const [id, resource] of Object.entries(resources)) {
    if (resource.Type !== 'AWS::IAM::Policy') continue;
    const properties = (resource.Properties ?? {}) as { Roles?: unknown[]; PolicyDocument?: unknown };
    const attached = (properties.Roles ?? []).some(
      (r) => typeof r === 'object' && r !== null && (r as Json).Ref === roleLogicalId,
    );
    if (attached) documents.push({ where: id, document: properties.PolicyDocument });
  }
  const inline = ((role.Properties as Json | undefined)?.Policies ?? []) as { PolicyName?: unknown }[];
  for (const policy of inline) {
    documents.push({ where: `${roleLogicalId}.${String(policy.PolicyName)}`, document: policy });
  }
  const resolve = resolver(refs, pseudo);
  return documents.flatMap(({ where, document }) => {
    const raw = (document as { Statement?: unknown } | undefined)?.Statement ?? [];
    const statements = Array.isArray(raw) ? raw : [raw];
    return statements.map((s, i) => parseStatement(s as Json, `${where}.Statement[${i}]`, resolve));
  });
}

type Resolve = (value: unknown, where: string) => string;

function resolver(refs: RefMap, pseudo: PseudoParameters): Resolve {
  const resolve: Resolve = (value, where) => {
    if (typeof value === 'string') return value;
    const node = (typeof value === 'object' && value !== null ? value : {}) as Json;
    const fail = (): never => {
      throw new UnresolvableIntrinsicError(JSON.stringify(value), where);
    };
    if ('Ref' in node) {
      const name = node.Ref;
      if (name === 'AWS::Partition') return pseudo.partition ?? 'aws';
      if (name === 'AWS::URLSuffix') return 'amazonaws.com';
      if (name === 'AWS::Region') return pseudo.region ?? fail();
      if (name === 'AWS::AccountId') return pseudo.account ?? fail();
      return (typeof name === 'string' ? refs[name]?.ref : undefined) ?? fail();
    }
    if ('Fn::GetAtt' in node) {
      const getAtt = node['Fn::GetAtt'];
      const [id, attribute] = typeof getAtt === 'string' ? getAtt.split('.') : ((getAtt ?? []) as unknown[]);
      if (attribute !== 'Arn' || typeof id !== 'string') return fail();
      return refs[id]?.arn ?? fail();
    }
    if ('Fn::Join' in node) {
      const [delimiter, parts] = node['Fn::Join'] as [unknown, unknown];
      if (typeof delimiter !== 'string' || !Array.isArray(parts)) return fail();
      return parts.map((part) => resolve(part, where)).join(delimiter);
    }
    return fail();
  };
  return resolve;
}

function parseStatement(raw: Json, where: string, resolve: Resolve): Statement {
  for (const element of ['Principal', 'NotPrincipal']) {
    if (element in raw) throw new UnsupportedPolicyError(element, where);
  }
  const effect = raw.Effect;
  if (effect !== 'Allow' && effect !== 'Deny')
    throw new UnsupportedPolicyError(`Effect ${String(effect)}`, where);
  const list = (value: unknown) => (Array.isArray(value) ? value : [value]).map((v) => resolve(v, where));
  const matcher = (name: string): Matcher => {
    if (name in raw) return { not: false, patterns: list(raw[name]) };
    if (`Not${name}` in raw) return { not: true, patterns: list(raw[`Not${name}`]) };
    throw new UnsupportedPolicyError(`a statement without ${name} or Not${name}`, where);
  };
  const conditions: Condition[] = [];
  for (const [operator, block] of Object.entries((raw.Condition ?? {}) as Record<string, Json>)) {
    if (!(OPERATORS as readonly string[]).includes(operator)) {
      throw new UnsupportedPolicyError(`condition operator ${operator}`, where);
    }
    for (const [key, values] of Object.entries(block)) {
      conditions.push({ operator: operator as Operator, key: key.toLowerCase(), values: list(values) });
    }
  }
  return {
    ...(typeof raw.Sid === 'string' ? { sid: raw.Sid } : {}),
    effect,
    action: matcher('Action'),
    resource: matcher('Resource'),
    conditions,
  };
}

/** One request to authorize: an IAM action on a resource ARN, with the condition keys it carries. */
export interface Check {
  readonly action: string;
  readonly resource: string;
  readonly keys?: Readonly<Record<string, string>>;
}

/** The outcome: allowed, and the deciding statement's Sid (the Allow, or the explicit Deny). */
export interface Verdict {
  readonly allowed: boolean;
  readonly explicitDeny: boolean;
  readonly sid?: string;
}

const patterns = new Map<string, RegExp>();

/** IAM wildcard matching: `*` any run of characters, `?` one character. */
export function wildcardMatch(pattern: string, value: string, ignoreCase = false): boolean {
  const cacheKey = `${ignoreCase ? 'i' : 's'}${pattern}`;
  let regex = patterns.get(cacheKey);
  if (regex === undefined) {
    const body = pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.');
    regex = new RegExp(`^${body}$`, ignoreCase ? 'is' : 's');
    patterns.set(cacheKey, regex);
  }
  return regex.test(value);
}

function conditionHolds(condition: Condition, keys: Readonly<Record<string, string>>): boolean {
  const entry = Object.entries(keys).find(([key]) => key.toLowerCase() === condition.key);
  const like = condition.operator === 'StringLike' || condition.operator === 'StringNotLike';
  const matches = (value: string) =>
    condition.values.some((expected) => (like ? wildcardMatch(expected, value) : expected === value));
  // A missing key fails a positive operator and satisfies a negated one, as in IAM.
  if (condition.operator === 'StringEquals' || condition.operator === 'StringLike') {
    return entry !== undefined && matches(entry[1]);
  }
  return entry === undefined || !matches(entry[1]);
}

/** Explicit deny wins, then any allow; nothing that applies is an implicit deny. */
export function evaluate(statements: readonly Statement[], check: Check): Verdict {
  let allow: Statement | undefined;
  for (const statement of statements) {
    const action =
      statement.action.patterns.some((p) => wildcardMatch(p, check.action, true)) !== statement.action.not;
    const resource =
      statement.resource.patterns.some((p) => wildcardMatch(p, check.resource)) !== statement.resource.not;
    if (!action || !resource) continue;
    if (!statement.conditions.every((c) => conditionHolds(c, check.keys ?? {}))) continue;
    if (statement.effect === 'Deny') {
      return {
        allowed: false,
        explicitDeny: true,
        ...(statement.sid === undefined ? {} : { sid: statement.sid }),
      };
    }
    allow ??= statement;
  }
  if (allow === undefined) return { allowed: false, explicitDeny: false };
  return { allowed: true, explicitDeny: false, ...(allow.sid === undefined ? {} : { sid: allow.sid }) };
}

export type Service = 's3' | 'sqs' | 'secretsmanager';

/** One authorization the front made. `status` is what the caller was answered. */
export interface Decision {
  readonly service: Service | 'unknown';
  readonly action: string;
  readonly resource: string;
  readonly allowed: boolean;
  /** The Allow that allowed it, or the explicit Deny that refused it; none for an implicit deny. */
  readonly sid?: string;
  status?: number;
}

/** What a request asks: the checks AWS makes for it, or `unmapped` (refused, whatever the policy). */
type Classified =
  | { readonly service: Service; readonly checks: readonly Check[] }
  | { readonly service: Service | 'unknown'; readonly unmapped: string };

/** Query parameters of an ordinary object or list request (not a subresource). */
const OBJECT_PARAMS = new Set(['x-id', 'versionId', 'partNumber', 'uploadId']);
const LIST_PARAMS = new Set([
  'x-id',
  'list-type',
  'prefix',
  'delimiter',
  'continuation-token',
  'start-after',
  'max-keys',
  'fetch-owner',
  'encoding-type',
  'marker',
]);

/** Maps a path-style S3 request to the IAM checks AWS makes for it. */
export function classifyS3(method: string, rawUrl: string, copySource: string | undefined): Classified {
  // Split by hand: URL() would resolve `..` segments and so rewrite a key.
  const mark = rawUrl.indexOf('?');
  const pathname = mark < 0 ? rawUrl : rawUrl.slice(0, mark);
  const search = mark < 0 ? '' : rawUrl.slice(mark);
  const query = new URLSearchParams(search);
  const path = pathname.slice(1);
  const slash = path.indexOf('/');
  const bucket = decodeURIComponent(slash < 0 ? path : path.slice(0, slash));
  const key = slash < 0 ? '' : decodeURIComponent(path.slice(slash + 1));
  const s3 = (action: string, resource: string, keys?: Record<string, string>): Check => ({
    action: `s3:${action}`,
    resource,
    ...(keys === undefined ? {} : { keys }),
  });
  const unmapped = (): Classified => ({ service: 's3', unmapped: `${method} ${pathname}${search}` });
  const only = (...checks: Check[]): Classified => ({ service: 's3', checks });
  const params = [...query.keys()].filter((p) => !p.startsWith('response-') && !p.startsWith('X-Amz-'));

  if (bucket === '') return method === 'GET' ? only(s3('ListAllMyBuckets', '*')) : unmapped();
  const bucketArn = `arn:aws:s3:::${bucket}`;
  if (key === '') {
    const sub = params.filter((p) => !LIST_PARAMS.has(p));
    if (method === 'GET' && sub.length === 0) {
      return only(s3('ListBucket', bucketArn, { 's3:prefix': query.get('prefix') ?? '' }));
    }
    if (method === 'GET' && sub.length === 1) {
      const action = {
        location: 'GetBucketLocation',
        uploads: 'ListBucketMultipartUploads',
        versions: 'ListBucketVersions',
      }[sub[0] as string];
      if (action !== undefined)
        return only(s3(action, bucketArn, { 's3:prefix': query.get('prefix') ?? '' }));
    }
    // HeadBucket needs s3:ListBucket, and carries no prefix.
    if (method === 'HEAD' && sub.length === 0) return only(s3('ListBucket', bucketArn));
    if (method === 'PUT' && sub.length === 0) return only(s3('CreateBucket', bucketArn));
    if (method === 'DELETE' && sub.length === 0) return only(s3('DeleteBucket', bucketArn));
    return unmapped();
  }
  const objectArn = `${bucketArn}/${key}`;
  const uploads = query.has('uploads');
  if (params.some((p) => !OBJECT_PARAMS.has(p) && !(p === 'uploads' && method === 'POST'))) return unmapped();
  if (query.has('uploadId')) {
    const action = {
      PUT: 'PutObject',
      POST: 'PutObject',
      DELETE: 'AbortMultipartUpload',
      GET: 'ListMultipartUploadParts',
    }[method];
    if (action === undefined) return unmapped();
    // UploadPartCopy reads its source as CopyObject does.
    const source = method === 'PUT' && copySource !== undefined ? copySourceCheck(copySource) : [];
    return only(s3(action, objectArn), ...source);
  }
  const versioned = query.has('versionId');
  switch (method) {
    case 'GET':
    case 'HEAD':
      return only(s3(versioned ? 'GetObjectVersion' : 'GetObject', objectArn));
    case 'PUT':
      return only(
        s3('PutObject', objectArn),
        ...(copySource === undefined ? [] : copySourceCheck(copySource)),
      );
    case 'POST':
      return uploads ? only(s3('PutObject', objectArn)) : unmapped();
    case 'DELETE':
      return only(s3(versioned ? 'DeleteObjectVersion' : 'DeleteObject', objectArn));
    default:
      return unmapped();
  }
}

/** `x-amz-copy-source: /bucket/key?versionId=...` (URL-encoded): the read CopyObject makes. */
function copySourceCheck(header: string): Check[] {
  const [path = '', search = ''] = header.split('?');
  const versioned = new URLSearchParams(search).has('versionId');
  const source = decodeURIComponent(path.replace(/^\//, ''));
  return [{ action: versioned ? 's3:GetObjectVersion' : 's3:GetObject', resource: `arn:aws:s3:::${source}` }];
}

/** The SQS actions whose IAM action is another: a batch is authorized as its single form. */
const SQS_IAM_ACTION: Readonly<Record<string, string>> = {
  SendMessageBatch: 'SendMessage',
  DeleteMessageBatch: 'DeleteMessage',
  ChangeMessageVisibilityBatch: 'ChangeMessageVisibility',
};

interface FrontScope {
  readonly region: string;
  readonly account: string;
  readonly secrets: Readonly<Record<string, string>>;
}

/** Maps an AWS JSON protocol request (SQS or Secrets Manager) to its IAM check. */
export function classifyJson(target: string, body: Json, scope: FrontScope): Classified {
  const [prefix = '', operation = ''] = target.split('.');
  if (prefix === 'AmazonSQS') {
    const queueUrl = typeof body.QueueUrl === 'string' ? body.QueueUrl : undefined;
    const name = queueUrl?.replace(/\/+$/, '').split('/').pop() ?? body.QueueName;
    // No queue named (ListQueues): only a policy granting "*" matches.
    const resource = typeof name === 'string' ? `arn:aws:sqs:${scope.region}:${scope.account}:${name}` : '*';
    return {
      service: 'sqs',
      checks: [{ action: `sqs:${SQS_IAM_ACTION[operation] ?? operation}`, resource }],
    };
  }
  if (prefix === 'secretsmanager') {
    const id = body.SecretId ?? body.Name;
    return {
      service: 'secretsmanager',
      checks: [{ action: `secretsmanager:${operation}`, resource: secretArn(id, scope) }],
    };
  }
  return { service: 'unknown', unmapped: `X-Amz-Target ${target}` };
}

/**
 * A secret's full ARN: from the map for a name (or the name of a partial ARN), a full ARN as given.
 * A name the map lacks gets no suffix, so a `-??????` grant does not match it.
 */
function secretArn(id: unknown, scope: FrontScope): string {
  if (typeof id !== 'string') return '*';
  if (scope.secrets[id] !== undefined) return scope.secrets[id];
  if (!id.startsWith('arn:')) return `arn:aws:secretsmanager:${scope.region}:${scope.account}:secret:${id}`;
  const name = id.replace(/^.*:secret:/, '');
  return scope.secrets[name] ?? id;
}

/** Headers that belong to one connection, not to the message. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  'expect',
]);

function endToEnd(raw: readonly string[], drop: ReadonlySet<string> = HOP_BY_HOP): string[] {
  const kept: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    if (!drop.has(name.toLowerCase())) kept.push(name, raw[i + 1] as string);
  }
  return kept;
}

/** JSON protocol bodies are read whole to find the resource; anything larger is refused. */
const MAX_JSON_BODY = 4 * 1024 * 1024;

export interface IamFrontOptions {
  /** The endpoint behind the front, e.g. `http://127.0.0.1:PORT`. */
  readonly upstream: string;
  readonly statements: readonly Statement[];
  /** Region and account of the SQS and Secrets Manager ARNs the front builds. */
  readonly region: string;
  readonly account: string;
  /** SecretId (a name) -> the secret's full ARN, with its 6-character suffix. */
  readonly secrets?: Readonly<Record<string, string>>;
}

/** The proxy. `start()` listens on 127.0.0.1, on a port the OS picks. */
export class IamFront {
  readonly url: string;
  readonly #decisions: Decision[] = [];
  readonly #server: Server;
  readonly #agent = new Agent({ keepAlive: true });
  readonly #upstream: URL;
  readonly #options: IamFrontOptions;
  readonly #scope: FrontScope;

  private constructor(server: Server, options: IamFrontOptions) {
    this.#server = server;
    this.#options = options;
    this.#upstream = new URL(options.upstream);
    this.#scope = { region: options.region, account: options.account, secrets: options.secrets ?? {} };
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  static async start(options: IamFrontOptions): Promise<IamFront> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const front = new IamFront(server, options);
    server.on('request', (req, res) => {
      front.#handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) {
          res.writeHead(502, { 'content-type': 'text/plain' });
          res.end(`iam front: ${error instanceof Error ? error.message : String(error)}`);
        } else res.destroy();
      });
    });
    return front;
  }

  /** Every decision, in the order made. */
  get decisions(): readonly Decision[] {
    return this.#decisions;
  }

  /** The decisions that refused a request. */
  get denied(): readonly Decision[] {
    return this.#decisions.filter((decision) => !decision.allowed);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve, reject) =>
      this.#server.close((err) => (err ? reject(err) : resolve())),
    );
    this.#agent.destroy();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const target = req.headers['x-amz-target'];
    let body: Buffer | undefined;
    let classified: Classified;
    if (typeof target === 'string') {
      body = await readBody(req);
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8') || '{}');
      } catch {
        parsed = {};
      }
      classified = classifyJson(target, (parsed ?? {}) as Json, this.#scope);
    } else if (method === 'POST' && String(req.headers['content-type']).includes('x-www-form-urlencoded')) {
      // The query protocol (SQS, SNS, STS): fauxqs serves only SNS and STS this way.
      classified = { service: 'unknown', unmapped: 'a form-encoded (query protocol) request' };
    } else {
      const copySource = req.headers['x-amz-copy-source'];
      classified = classifyS3(
        method,
        req.url ?? '/',
        typeof copySource === 'string' ? copySource : undefined,
      );
    }

    const made = this.#decide(classified);
    const refused = made.find((decision) => !decision.allowed);
    if (refused !== undefined) {
      if (body === undefined) await drain(req);
      return this.#refuse(res, method, refused, made);
    }

    const upstream = await this.#forward(req, body);
    const read =
      made[0]?.service === 's3' && /^s3:GetObject(Version)?$/.test(made[0].action) ? made[0] : undefined;
    if (read !== undefined && upstream.statusCode === 404) {
      // S3 answers 404 for a missing key only to a caller who may list the bucket; others get 403.
      // ASSUMPTION: the key is taken as the `s3:prefix` of that ListBucket, which is how the
      // conditioned grant (`s3:prefix` like `tokens/*`) is expected to cover a missing key.
      const bucketArn = read.resource.slice(0, read.resource.indexOf('/'));
      const key = read.resource.slice(bucketArn.length + 1);
      const [listing] = this.#decide({
        service: 's3',
        checks: [{ action: 's3:ListBucket', resource: bucketArn, keys: { 's3:prefix': key } }],
      });
      if (listing !== undefined) {
        made.push(listing);
        if (!listing.allowed) {
          upstream.resume();
          return this.#refuse(res, method, listing, made);
        }
      }
    }
    for (const decision of made) decision.status = upstream.statusCode ?? 502;
    res.writeHead(upstream.statusCode ?? 502, upstream.statusMessage, endToEnd(upstream.rawHeaders));
    await pipeline(upstream, res);
  }

  #decide(classified: Classified): Decision[] {
    const made: Decision[] =
      'unmapped' in classified
        ? [
            {
              service: classified.service,
              action: `unmapped: ${classified.unmapped}`,
              resource: '*',
              allowed: false,
            },
          ]
        : classified.checks.map((check) => {
            const verdict = evaluate(this.#options.statements, check);
            return {
              service: classified.service,
              action: check.action,
              resource: check.resource,
              allowed: verdict.allowed,
              ...(verdict.sid === undefined ? {} : { sid: verdict.sid }),
            };
          });
    this.#decisions.push(...made);
    return made;
  }

  /** Forwards the request unchanged (its body streamed, or the bytes already read) and awaits the reply's head. */
  #forward(req: IncomingMessage, body: Buffer | undefined): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const out = request({
        agent: this.#agent,
        protocol: this.#upstream.protocol,
        hostname: this.#upstream.hostname,
        port: this.#upstream.port,
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        headers: endToEnd(req.rawHeaders),
      });
      out.once('response', resolve);
      out.on('error', reject);
      if (body !== undefined) out.end(body);
      else pipeline(req, out).catch(reject);
    });
  }

  /** Answers a refusal the way the service does, and notes the status on the decisions of the request. */
  #refuse(res: ServerResponse, method: string, refused: Decision, made: readonly Decision[]): void {
    const requestId = randomUUID();
    if (refused.service === 's3') {
      for (const decision of made) decision.status = 403;
      const xml =
        '<?xml version="1.0" encoding="UTF-8"?>\n' +
        `<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>${requestId}</RequestId>` +
        `<HostId>iam-front</HostId></Error>`;
      // A HEAD reply has no body, so the SDK sees only the status.
      res.writeHead(403, {
        'content-type': 'application/xml',
        'x-amz-request-id': requestId,
        ...(method === 'HEAD' ? {} : { 'content-length': Buffer.byteLength(xml) }),
      });
      res.end(method === 'HEAD' ? undefined : xml);
      return;
    }
    for (const decision of made) decision.status = 400;
    const why = refused.sid === undefined ? 'no identity-based policy allows' : 'an explicit deny forbids';
    const text = JSON.stringify({
      __type: 'AccessDeniedException',
      message: `User: iam-front is not authorized to perform: ${refused.action} on resource: ${refused.resource} because ${why} the ${refused.action} action`,
    });
    res.writeHead(400, {
      'content-type': refused.service === 'sqs' ? 'application/x-amz-json-1.0' : 'application/x-amz-json-1.1',
      'content-length': Buffer.byteLength(text),
      'x-amzn-requestid': requestId,
      'x-amzn-errortype': 'AccessDeniedException',
      // SQS is query-compatible: the SDK names the error after this header's code, as the query protocol did.
      ...(refused.service === 'sqs' ? { 'x-amzn-query-error': 'AccessDenied;Sender' } : {}),
    });
    res.end(text);
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_JSON_BODY)
      throw new IamFrontError(`a JSON protocol body larger than ${MAX_JSON_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Reads a refused request's body to its end, so the client is not cut off mid-send. */
async function drain(req: IncomingMessage): Promise<void> {
  req.resume();
  await finished(req);
}
