import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { VARIABLES, type Variable } from '../../../lambda/shared/environment.ts';

/** The variables' tables of docs/configuration.md: its "Configuration" section, tables headed "Variable". */
function documentedRows(): { readonly names: string[]; readonly default: string; readonly more: boolean }[] {
  const docs = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');
  const section = docs.split(/^## /m).find((part) => part.startsWith('Configuration\n'));
  if (section === undefined) throw new Error('docs/configuration.md has no "## Configuration" section');
  const rows: { names: string[]; default: string; more: boolean }[] = [];
  let inVariableTable = false;
  for (const line of section.split('\n')) {
    if (!line.startsWith('|')) {
      inVariableTable = false;
      continue;
    }
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((cell) => cell.trim());
    const [first = '', second = ''] = cells;
    if (first === 'Variable') inVariableTable = true;
    else if (inVariableTable && !/^-+$/.test(first)) {
      rows.push({
        names: [...first.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((match) => match[1] ?? ''),
        default: second,
        // `AWS_REGION`, `AWS_ENDPOINT_URL_S3`, ...: a row that stands for a family of variables.
        more: first.endsWith('...'),
      });
    }
  }
  return rows;
}

/** What the docs' Default column must say of a variable of the table (its start, when it is a value). */
function documentedDefault(variable: Variable): string {
  if (variable.required === true) return 'required';
  if (variable.unset !== undefined) return variable.unset;
  if (variable.default !== undefined) return `\`${variable.default}\``;
  return 'none';
}

const TABLE: readonly Variable[] = Object.values(VARIABLES);
const ROWS = documentedRows();

function isSdkVariable(name: string): boolean {
  return TABLE.some((variable) => variable.name === name && variable.sdk === true);
}

describe('docs/configuration.md against the variables table', () => {
  it('finds the docs tables', () => {
    expect(ROWS.length).toBeGreaterThan(30);
  });

  it('names no variable that the table lacks', () => {
    const names = new Set(TABLE.map((variable) => variable.name));

    const unknown = ROWS.flatMap((row) => row.names).filter((name) => !names.has(name));

    expect(unknown).toEqual([]);
  });

  it.each(TABLE.map((variable) => [variable.name, variable] as const))(
    'documents %s with the default of the table',
    (name, variable) => {
      const row =
        ROWS.find((candidate) => candidate.names.includes(name)) ??
        // A variable of the SDK's may stand in the row of its family (`AWS_REGION`, ..., `...`).
        (variable.sdk === true
          ? ROWS.find((candidate) => candidate.more && candidate.names.every(isSdkVariable))
          : undefined);

      expect(row, `${name} is not in the docs' tables`).toBeDefined();
      expect(
        row?.default.startsWith(documentedDefault(variable)),
        `${name}: docs say "${row?.default}"`,
      ).toBe(true);
    },
  );

  it('documents each variable once', () => {
    const names = ROWS.flatMap((row) => row.names);

    const twice = names.filter((name, index) => names.indexOf(name) !== index);

    expect(twice).toEqual([]);
  });
});
