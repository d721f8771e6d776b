import { it as base, type TaskMeta } from 'vitest';
import type { FaultRule, TokensService } from '../local/tokens-service.ts';

/**
 * What one reliability scenario (one test) injected and what its invariant checks found. It rides
 * on the test's `meta`, so the ledger reporter can count scenarios and faults across the suite.
 */
export interface ScenarioLedger {
  /** One entry per injected fault: a simulator rule, a broken secret, a proxy mode, a kill. */
  readonly faults: string[];
  /** How many times the invariant was checked in this scenario. */
  invariantChecks: number;
  /** Lines the invariant found deleted on the service, each checked byte-exact in the archive. */
  linesDeleted: number;
  /** File objects streamed back from the bucket and hashed. */
  objectsHashed: number;
  /** Deleted lines whose archive is incomplete or wrong: must stay 0. */
  linesLost: number;
  /** File objects whose bytes differ from the stated hash, not expected by the scenario: must stay 0. */
  badObjects: number;
  /** Bad objects the scenario expected (a failed line's leftover, never vouched for by a manifest). */
  expectedBadObjects: number;
}

declare module 'vitest' {
  interface TaskMeta {
    reliability?: ScenarioLedger;
  }
}

/** The running test's handle for registering faults; see {@link scenario}. */
export class Scenario {
  readonly ledger: ScenarioLedger;

  constructor(meta: TaskMeta) {
    this.ledger = {
      faults: [],
      invariantChecks: 0,
      linesDeleted: 0,
      objectsHashed: 0,
      linesLost: 0,
      badObjects: 0,
      expectedBadObjects: 0,
    };
    meta.reliability = this.ledger;
  }

  /** Records a fault injected by other means than the simulator (secret, S3 proxy, kill, hostile reply). */
  fault(description: string): void {
    this.ledger.faults.push(description);
  }

  /** Injects a simulator fault rule and records it. */
  inject(tokens: TokensService, rule: FaultRule): void {
    tokens.inject(rule);
    const { fault } = rule;
    const detail =
      fault.kind === 'status'
        ? `${fault.status}${fault.retryAfterSeconds === undefined ? '' : ` Retry-After ${fault.retryAfterSeconds}`}`
        : fault.kind === 'oversize'
          ? `oversize by ${fault.extraBytes % 2 ** 20 === 0 ? `${fault.extraBytes / 2 ** 20} MiB` : `${fault.extraBytes} B`}`
          : fault.kind;
    const times =
      rule.times === undefined || rule.times === 1
        ? ''
        : rule.times === Number.POSITIVE_INFINITY
          ? ', every time'
          : ` x${rule.times}`;
    this.fault(`${rule.target}${rule.file === undefined ? '' : ` ${rule.file}`}: ${detail}${times}`);
  }
}

/** Starts the ledger of the running test: the fixture `s` of {@link it} calls it. */
export function scenario(task: { meta: TaskMeta }): Scenario {
  return new Scenario(task.meta);
}

/**
 * Vitest's `it` with the running test's {@link Scenario} as its fixture `s`:
 * `it('…', async ({ s }) => { … })`, `it.for(cases)('… %s', async ([…], { s }) => { … })`.
 */
export const it = base.extend<{ s: Scenario }>({
  s: async ({ task }, use) => {
    await use(scenario(task));
  },
});
