import { Duration } from 'aws-cdk-lib';
import { DEFAULT_TIME_RESERVE_MS, MIN_WORKING_MS } from '../lambda/shared/contract.ts';
import { parseTokensApiUrl } from '../lambda/shared/tokens-api-url.ts';

/**
 * The checks `resolveSettings` (settings.ts) applies to one prop's value: each returns the value,
 * or fails the synth with a message that names the prop and what was wrong.
 */

/** Fails the synth: the error every check throws, naming the stack. */
export function fail(message: string): never {
  throw new Error(`HousekeepingStack: ${message}`);
}

/** `value`, if it is a base URL of the tokens service by the function's rule, and https. */
export function tokensApiUrl(name: string, value: string): string {
  const verdict = parseTokensApiUrl(value);
  if ('problem' in verdict) fail(`${name} ${verdict.problem}`);
  return value;
}

/** `value`, if it is an integer from `min` to `max`; `unit` follows the range in the message. */
export function integerBetween(name: string, value: number, min: number, max: number, unit = ''): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    fail(`${name} must be an integer between ${min} and ${max}${unit}, got ${value}`);
  }
  return value;
}

/** A function timeout: at most 15 minutes, and long enough to leave working time after the reserve. */
export function upTo15Minutes(name: string, value: Duration): Duration {
  if (value.toSeconds() < 1 || value.toSeconds() > 900) {
    fail(`${name} must be between 1 second and 15 minutes, got ${value.toHumanString()}`);
  }
  // The function starts no line with less than its time reserve left: a timeout that leaves too
  // little after it would defer every line, forever.
  const working = value.toMilliseconds() - DEFAULT_TIME_RESERVE_MS;
  if (working < MIN_WORKING_MS) {
    const least = Duration.millis(DEFAULT_TIME_RESERVE_MS + MIN_WORKING_MS);
    fail(
      `${name} of ${value.toHumanString()} leaves ${Math.max(0, working) / 1000} s of working time after ` +
        `the function's ${DEFAULT_TIME_RESERVE_MS / 1000} s time reserve (TIME_RESERVE_MS, in which no line ` +
        `is started); at least ${MIN_WORKING_MS / 1000} s is needed: set ${name} to ${least.toSeconds()} s or more`,
    );
  }
  return value;
}

/** `value`, if given: a whole number of seconds, at least 1. */
export function wholeSeconds(name: string, value: Duration | undefined): Duration | undefined {
  const seconds = value?.toSeconds({ integral: false });
  if (seconds !== undefined && (!Number.isInteger(seconds) || seconds < 1)) {
    fail(`${name} must be a whole number of seconds, at least 1, got ${value?.toHumanString()}`);
  }
  return value;
}

/** A bucket setting in days, if given: a positive whole number, and only for a bucket the stack creates. */
export function positiveDays(
  name: string,
  value: number | undefined,
  bucketName: string | undefined,
): number | undefined {
  if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
    fail(`${name} must be a positive whole number of days, got ${value}`);
  }
  if (value !== undefined && bucketName !== undefined) {
    fail(`${name} applies only to a bucket the stack creates; remove it or bucketName`);
  }
  return value;
}

/** An optional value checked by {@link integerBetween} against a range of the function's. */
export function optionalIntegerIn(
  name: string,
  value: number | undefined,
  range: { readonly min: number; readonly max: number },
): number | undefined {
  return value === undefined ? undefined : integerBetween(name, value, range.min, range.max);
}
