/**
 * The direction of dependencies, checked by `npm test` (`npm run depcheck`):
 * entries -> app (wiring) -> core -> adapters (tokens, archive, queue, secrets) -> shared.
 * Type imports count: a cycle through types is still a cycle.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No two modules depend on each other, directly or through others, not even for types.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'core-stays-below-the-wiring',
      severity: 'error',
      comment:
        'The core never reads the environment nor builds clients: it does not import app/ or entries/.',
      from: { path: '^lambda/core/' },
      to: { path: '^lambda/(app|entries)/' },
    },
    {
      name: 'core-speaks-through-ports',
      severity: 'error',
      comment:
        'The core talks to the service, the store and the queue through the ports (shared/ports/), never an adapter: it imports nothing from tokens/, archive/, queue/ or secrets/.',
      from: { path: '^lambda/core/' },
      to: { path: '^lambda/(tokens|archive|queue|secrets)/' },
    },
    {
      name: 'core-knows-no-sdk-nor-lambda',
      severity: 'error',
      comment:
        'The core imports no AWS SDK and no aws-lambda types (not even for types): what it needs of an invocation or a batch it declares itself, and app/ maps.',
      from: { path: '^lambda/core/' },
      // aws-lambda is types only (@types/aws-lambda): it stays unresolved, under its own name.
      to: { path: '^(aws-lambda|@aws-sdk/)|(^|/)node_modules/(@aws-sdk/|@types/aws-lambda/|aws-lambda/)' },
    },
    {
      name: 'ports-are-a-leaf',
      severity: 'error',
      comment: 'shared/ports/ declares the ports in types; it imports only shared/ (and node types).',
      from: { path: '^lambda/shared/ports/' },
      to: { path: '^lambda/(?!shared/)' },
    },
    {
      name: 'adapters-stay-below-the-core',
      severity: 'error',
      comment:
        'An adapter (tokens, archive, queue, secrets) serves the core; it imports only shared/ and itself.',
      from: { path: '^lambda/(tokens|archive|queue|secrets)/' },
      to: { path: '^lambda/(core|app|entries)/' },
    },
    {
      name: 'adapters-stay-apart',
      severity: 'error',
      comment: 'Adapters do not import each other: what two of them share lives in shared/.',
      from: { path: '^lambda/(tokens|archive|queue|secrets)/' },
      to: { path: '^lambda/(tokens|archive|queue|secrets)/', pathNot: '^lambda/$1/' },
    },
    {
      name: 'shared-is-a-leaf',
      severity: 'error',
      comment: 'shared/ (errors, retry, verify, ids, contract) imports nothing else of the function.',
      from: { path: '^lambda/shared/' },
      to: { path: '^lambda/(?!shared/)' },
    },
    {
      name: 'app-stays-below-the-entries',
      severity: 'error',
      from: { path: '^lambda/app/' },
      to: { path: '^lambda/entries/' },
    },
    {
      name: 'infra-reads-only-the-contract',
      severity: 'error',
      comment: 'The stack shares names with the function through lambda/shared/ only.',
      from: { path: '^infra/' },
      to: { path: '^lambda/(?!shared/)' },
    },
    {
      name: 'product-never-imports-tests',
      severity: 'error',
      from: { path: '^(lambda|infra)/' },
      to: { path: '^test/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
