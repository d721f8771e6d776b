import { writeFileSync } from 'node:fs';
import type { Reporter, TestModule } from 'vitest/node';
import type { ScenarioLedger } from './ledger.ts';

interface Row {
  readonly file: string;
  /** The describe blocks the test sits in. */
  readonly area: string;
  /** The test's name: the behaviour it asserts. */
  readonly name: string;
  readonly state: string;
  readonly ledger: ScenarioLedger;
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|');
}

/**
 * Counts what the reliability scenarios injected and what their invariant checks found, from each
 * test's ledger (see `ledger.ts`), and prints it as a Markdown table:
 *
 *   npx vitest run test/reliability --reporter=default --reporter=./test/reliability/ledger-reporter.ts
 *
 * With RELIABILITY_LEDGER=path the table is also written to that file.
 */
export default class LedgerReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const rows: Row[] = [];
    for (const module of testModules) {
      // Relative names: test/reliability/ files by their name, others from test/.
      const file = module.moduleId.replace(/^.*\/test\/reliability\//, '').replace(/^.*\/(test\/)/, '$1');
      for (const test of module.children.allTests()) {
        const ledger = test.meta().reliability;
        if (ledger === undefined) continue;
        const area = test.fullName.slice(0, -test.name.length).replace(/ > $/, '');
        rows.push({ file, area, name: test.name, state: test.result().state, ledger });
      }
    }
    rows.sort((a, b) => a.file.localeCompare(b.file));
    const lines = [
      '| # | area | scenario: the behaviour asserted | faults injected | result |',
      '| --- | --- | --- | --- | --- |',
      ...rows.map(({ file, area, name, state, ledger }, index) => {
        const found = [
          `checks: ${ledger.invariantChecks}`,
          `lines deleted and verified: ${ledger.linesDeleted}`,
          `objects hashed: ${ledger.objectsHashed}`,
          ...(ledger.expectedBadObjects > 0 ? [`expected bad leftover: ${ledger.expectedBadObjects}`] : []),
        ].join(', ');
        const result = `${state === 'passed' ? 'invariant held' : `**${state}**`} (${found})`;
        const faults = `${ledger.faults.length}: ${ledger.faults.join('; ')}`;
        return `| ${index + 1} | ${cell(area)} (${file}) | ${cell(name)} | ${cell(faults)} | ${result} |`;
      }),
    ];
    const sum = (pick: (ledger: ScenarioLedger) => number) =>
      rows.reduce((n, row) => n + pick(row.ledger), 0);
    const unchecked = rows.filter((row) => row.ledger.invariantChecks === 0).length;
    const checks =
      `Invariant checked ${sum((l) => l.invariantChecks)} times: ${sum((l) => l.linesDeleted)} lines ` +
      `deleted and verified byte-exact, ${sum((l) => l.objectsHashed)} objects streamed back and hashed` +
      `${unchecked > 0 ? `; ${unchecked} scenarios never checked it` : ''}.`;
    const totals =
      `${rows.length} scenarios, ${sum((l) => l.faults.length)} faults injected, ` +
      `${sum((l) => l.linesLost)} lines lost, ${sum((l) => l.badObjects)} bad objects`;
    const text = `${lines.join('\n')}\n\n${checks}\n\n${totals}\n`;
    process.stdout.write(`\n${text}`);
    const out = process.env.RELIABILITY_LEDGER;
    if (out !== undefined && out !== '') writeFileSync(out, text);
  }
}
