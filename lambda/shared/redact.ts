/**
 * The secret values of the process (the session key, once read) and their removal from text.
 * A service can echo the key back in anything it sends; every place that stores, prints or logs
 * such text passes it through here, so the exact key never leaves the process. Process-wide, as
 * the key source is; {@link forgetSecrets} resets it (tests).
 */

/** What a secret is replaced by. */
export const REDACTED = '[session key removed]';

const secrets = new Set<string>();
let plain: string[] = [];
// Each secret as it can be written: as it is, JSON-escaped, and with control characters as \uXXXX
// (the terminal's text logs); longest first, so a longer form is replaced before a shorter one.
let forms: string[] = [];
// Whether every secret is written as it is (no character JSON or the terminal escapes, no lone
// surrogate): then a string holding any of its forms holds the secret itself, which JSON.stringify
// writes unchanged, and a plain stringify can be searched instead of redacted. A string holding an
// escaped form (a service's JSON reply kept as text) shows it escaped once more, as no form.
let writtenAsIs = true;

/** Registers a secret value (the session key as read); an empty one is ignored. */
export function registerSecret(value: string): void {
  if (value === '' || secrets.has(value)) return;
  secrets.add(value);
  plain = [...secrets];
  const all = new Set<string>();
  for (const secret of secrets) {
    all.add(secret);
    all.add(JSON.stringify(secret).slice(1, -1));
    all.add(secret.replace(/\p{Cc}/gu, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`));
  }
  forms = [...all].sort((a, b) => b.length - a.length);
  // Stringify escapes a lone surrogate, so its JSON form differs too.
  writtenAsIs = plain.every(
    (secret) => JSON.stringify(secret).slice(1, -1) === secret && !/\p{Cc}/u.test(secret),
  );
}

/** Forgets every registered secret (tests). */
export function forgetSecrets(): void {
  secrets.clear();
  plain = [];
  forms = [];
  writtenAsIs = true;
}

/** Whether `text` holds a registered secret, in any of the forms it is written in. */
export function holdsSecret(text: string): boolean {
  return forms.some((form) => text.includes(form));
}

/**
 * A text from elsewhere, for a message: whole when it is at most `max` characters, else only its
 * length. Never cut: a cut could end inside a secret, and redaction only knows whole ones.
 */
export function shownWhole(text: string, max: number): string {
  return text.length <= max ? text : `(${text.length} characters, not shown)`;
}

/** `text` with every registered secret replaced by {@link REDACTED}. */
export function redactText(text: string): string {
  let out = text;
  for (const form of forms) if (out.includes(form)) out = out.replaceAll(form, REDACTED);
  return out;
}

/**
 * A `JSON.stringify` replacer that redacts every string value and every property name holding a
 * secret (Powertools Logger's `jsonReplacerFn`, the archive's JSON records, what is printed).
 */
export function redactingReplacer(_key: string, value: unknown): unknown {
  if (forms.length === 0) return value;
  if (typeof value === 'string') return redactText(value);
  if (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    !(value instanceof Error) &&
    Object.keys(value).some(holdsSecret)
  ) {
    // A name cannot be changed where it is visited: the object is copied with its names redacted.
    return Object.fromEntries(Object.entries(value).map(([name, item]) => [redactText(name), item]));
  }
  return value;
}

/**
 * `JSON.stringify` with {@link redactingReplacer}, and the text checked once more. Stringify writes
 * a string (value or name) character by character: a value holding a secret that has nothing to
 * escape shows it unchanged in the plain text. So while every secret is such, the plain text, when
 * it shows none, is the answer, without the replacer's call per value.
 */
export function redactedJson(value: unknown, indent?: number): string {
  return redactedFrom(value, JSON.stringify(value, undefined, indent) ?? 'null', indent);
}

/** Whether {@link redactedJson} writes `value` exactly as `JSON.stringify` does: nothing of a secret in it. */
export function jsonUnredacted(value: unknown, indent?: number): boolean {
  const text = JSON.stringify(value, undefined, indent) ?? 'null';
  return redactedFrom(value, text, indent) === text;
}

/** {@link redactedJson} of `value`, given its plain stringify `text`. */
function redactedFrom(value: unknown, text: string, indent: number | undefined): string {
  if (writtenAsIs && !holdsSecret(text)) return text;
  return redactText(JSON.stringify(value, redactingReplacer, indent) ?? 'null');
}

/**
 * Whether a JSON text holds a registered secret: in its raw text, or in any of its strings (values
 * and names) once their escapes are decoded (`\u0041` is `A`). One linear scan, at any depth.
 */
export function jsonHoldsSecret(text: string): boolean {
  if (forms.length === 0) return false;
  if (plain.some((secret) => text.includes(secret))) return true;
  let found = false;
  eachEscapedString(text, (_start, _end, value) => {
    if (plain.some((secret) => value.includes(secret))) found = true;
    return found;
  });
  return found;
}

/**
 * A JSON text with every registered secret replaced by {@link REDACTED}: in the raw text, and in
 * any string written with escapes (re-written as JSON); everything else is kept as it was.
 * Undefined when nothing was to be removed.
 */
export function redactJsonText(text: string): string | undefined {
  if (!jsonHoldsSecret(text)) return undefined;
  const parts: string[] = [];
  let from = 0;
  eachEscapedString(text, (start, end, value) => {
    if (plain.some((secret) => value.includes(secret))) {
      parts.push(text.slice(from, start), JSON.stringify(redactPlain(value)));
      from = end;
    }
    return false;
  });
  parts.push(text.slice(from));
  return redactPlain(parts.join(''));
}

/** Bytes (a body that is not UTF-8 text) with every registered secret's UTF-8 bytes replaced; undefined when none is there. */
export function redactBytes(bytes: Buffer): Buffer | undefined {
  if (!plain.some((secret) => bytes.includes(secret))) return undefined;
  let out = bytes;
  for (const secret of plain) {
    const needle = Buffer.from(secret);
    const parts: Buffer[] = [];
    let from = 0;
    for (let at = out.indexOf(needle); at !== -1; at = out.indexOf(needle, from)) {
      parts.push(out.subarray(from, at), Buffer.from(REDACTED));
      from = at + needle.length;
    }
    parts.push(out.subarray(from));
    out = Buffer.concat(parts);
  }
  return out;
}

/** The raw secrets replaced (not their escaped forms, which are JSON of their own). */
function redactPlain(text: string): string {
  let out = text;
  for (const secret of plain) out = out.replaceAll(secret, REDACTED);
  return out;
}

/**
 * Calls `visit` with each string literal of a JSON text that holds an escape (the others are their
 * own raw text), decoded, until it returns true. Outside strings JSON has no quote, so a quote
 * always opens one.
 */
function eachEscapedString(
  text: string,
  visit: (start: number, end: number, value: string) => boolean,
): void {
  for (let start = text.indexOf('"'); start !== -1; ) {
    let escaped = false;
    let i = start + 1;
    for (; i < text.length; i += 1) {
      const char = text.charCodeAt(i);
      if (char === 0x5c /* \ */) {
        escaped = true;
        i += 1;
      } else if (char === 0x22 /* " */) break;
    }
    const end = i + 1;
    if (escaped) {
      let value: string | undefined;
      try {
        value = JSON.parse(text.slice(start, end)) as string;
      } catch {
        // Not valid JSON there: the raw text was already searched.
        value = undefined;
      }
      if (value !== undefined && visit(start, end, value)) return;
    }
    start = text.indexOf('"', end);
  }
}
