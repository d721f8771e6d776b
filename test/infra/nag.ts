import { type App, type Stack, Validations } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { expect } from 'vitest';

/** What the stack tests ask of cdk-nag and of the CDK's own annotations. */

/** cdk-nag findings (errors and warnings) that are not acknowledged, as readable strings. */
export function nagFindings(app: App): string[] {
  const report = new AwsSolutionsChecks(undefined, { verbose: false }).validateScope(app);
  return report.violations.flatMap((violation) =>
    violation.violatingResources.map(
      (resource) => `${violation.severity} ${violation.ruleName} at ${resource.constructPath ?? '?'}`,
    ),
  );
}

/** The acknowledged cdk-nag rules of `constructs`, as `[rule id, reason]`. */
export function acknowledgements(constructs: readonly IConstruct[]): [string, string][] {
  return constructs
    .flatMap((construct) => construct.node.metadata)
    .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
    .flatMap((entry) => Object.entries(entry.data as Record<string, string>));
}

/** Expects the stack to carry no CDK error and no CDK warning annotation at all. */
export function expectNoCdkErrorOrWarning(stack: Stack): void {
  expect(Annotations.fromStack(stack).findError('*', Match.anyValue())).toEqual([]);
  expect(Annotations.fromStack(stack).findWarning('*', Match.anyValue())).toEqual([]);
}
