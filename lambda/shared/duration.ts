/** Seconds per unit of a duration such as `30s`, `10m`, `24h`, `7d`; a bare number is seconds. */
const UNIT_SECONDS: Readonly<Record<string, number>> = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * A duration as whole seconds: `90`, `30s`, `10m`, `24h`, `7d`. Undefined for anything else (a
 * fraction, a sign, a unit it does not know, zero when `allowZero` is not set): the caller says
 * which flag, field or variable was wrong.
 */
export function parseDuration(text: string, options: { allowZero?: boolean } = {}): number | undefined {
  const match = /^(\d{1,9})([smhd]?)$/.exec(text.trim());
  if (match === null) return undefined;
  const seconds = Number(match[1]) * (UNIT_SECONDS[match[2] ?? ''] ?? Number.NaN);
  if (!Number.isSafeInteger(seconds) || (seconds === 0 && options.allowZero !== true)) return undefined;
  return seconds;
}
