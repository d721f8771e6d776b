import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  forgetSecrets,
  holdsSecret,
  jsonHoldsSecret,
  REDACTED,
  redactedJson,
  redactingReplacer,
  redactJsonText,
  redactText,
  registerSecret,
} from '../../../lambda/shared/redact.ts';

const KEY = 'k3y-0f-the-sess10n';

/** `text` with every character as a `\uXXXX` escape (a JSON string holding it, whose bytes do not). */
function escaped(text: string): string {
  return [...text].map((char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
}

beforeEach(() => registerSecret(KEY));
afterEach(() => forgetSecrets());

describe('redactText', () => {
  it('replaces every occurrence of a registered secret by the marker', () => {
    expect(redactText(`status is "${KEY}", and ${KEY}x`)).toBe(`status is "${REDACTED}", and ${REDACTED}x`);
  });

  it('replaces a secret as JSON and a terminal write it (quote, backslash, control character escaped)', () => {
    const odd = 'a"b\\c\td';
    registerSecret(odd);

    expect(redactText(JSON.stringify({ note: odd }))).toBe(`{"note":"${REDACTED}"}`);
    expect(redactText('a"b\\c\\u0009d')).toBe(REDACTED);
    expect(redactText(odd)).toBe(REDACTED);
  });

  it('leaves text alone when no secret is registered', () => {
    forgetSecrets();

    expect(redactText(`x ${KEY}`)).toBe(`x ${KEY}`);
    expect(holdsSecret(`x ${KEY}`)).toBe(false);
  });

  it('ignores an empty secret (it would match everywhere)', () => {
    registerSecret('');

    expect(redactText('abc')).toBe('abc');
  });
});

describe('redactedJson', () => {
  it('redacts string values and property names at any depth, and errors by their messages', () => {
    const value = { a: [{ deep: `x${KEY}` }], [KEY]: 1, when: new Date(0), error: new Error(KEY) };

    const text = redactedJson(value, 2);

    expect(text).not.toContain(KEY);
    expect(JSON.parse(text)).toMatchObject({ a: [{ deep: `x${REDACTED}` }], [REDACTED]: 1 });
  });
});

describe('jsonHoldsSecret', () => {
  it('finds a secret in the raw text, in a value written with escapes, or in a property name', () => {
    expect(jsonHoldsSecret(`{"meta":{"echo":"${KEY}"}}`)).toBe(true);
    expect(jsonHoldsSecret(`{"data":{"attributes":{"note":"${escaped(KEY)}"}}}`)).toBe(true);
    expect(jsonHoldsSecret(`{"${escaped(KEY)}":true}`)).toBe(true);
    expect(jsonHoldsSecret(`{"note":"\\"${escaped(KEY.slice(0, 4))}${KEY.slice(4)}"}`)).toBe(true);
  });

  it('finds a secret nested deeper than the pass reads', () => {
    const deep = `${'['.repeat(100_000)}"${escaped(KEY)}"${']'.repeat(100_000)}`;

    expect(jsonHoldsSecret(deep)).toBe(true);
  });

  it('does not find what is not there (a neighbour of the key, an escaped quote before a name)', () => {
    expect(jsonHoldsSecret(`{"note":"${KEY.slice(1)}","x":"\\"${KEY.slice(0, -1)}\\""}`)).toBe(false);
  });
});

describe('redactJsonText', () => {
  it('replaces the secret in raw and escaped strings and keeps every other byte', () => {
    const text = `{"meta": {"echo": "${KEY}"},\n "data": {"note": "a${escaped(KEY)}\\n"}}`;

    const redacted = redactJsonText(text);

    expect(redacted).toBe(`{"meta": {"echo": "${REDACTED}"},\n "data": {"note": "a${REDACTED}\\n"}}`);
    expect(JSON.parse(redacted ?? '')).toEqual({
      meta: { echo: REDACTED },
      data: { note: `a${REDACTED}\n` },
    });
  });

  it('is undefined when there is nothing to remove', () => {
    expect(redactJsonText('{"note":"\\u0041"}')).toBeUndefined();
  });
});

describe('redactedJson against the replacer it stands for', () => {
  const secrets = ['k3y-0f-the-sess10n', 'a"b\\c\td', 'line\nbreak', 'emoji \u{1F511} key', '\u0000\u001f'];

  it.for(secrets)('removes %j from every value and name that holds it, at any depth', (secret) => {
    registerSecret(secret);
    const value = { a: [{ deep: `x${secret}y` }], [`n${secret}`]: secret, plain: 'nothing here' };

    const text = redactedJson(value, 2);

    expect(holdsSecret(text)).toBe(false);
    expect(JSON.parse(text)).toEqual({
      a: [{ deep: `x${REDACTED}y` }],
      [`n${REDACTED}`]: REDACTED,
      plain: 'nothing here',
    });
  });

  it('writes a value that holds no secret exactly as JSON.stringify does', () => {
    const value = { line: { id: 'x', files: ['data', 'score'], escaped: 'a"b\\c\td' }, n: 1 };

    expect(redactedJson(value, 2)).toBe(JSON.stringify(value, undefined, 2));
  });

  it('removes a secret with a lone surrogate that pairs with its neighbour in a value', () => {
    // Alone the key's last unit is escaped (\ud83d); in the value it pairs with the next one and is
    // written raw: the plain text shows neither form of the key, so only the replacer finds it.
    const lone = 'key\t\ud83d';
    registerSecret(lone);

    const text = redactedJson({ v: `${lone}\udd11` }, 2);

    expect(JSON.parse(text)).toEqual({ v: `${REDACTED}\udd11` });
  });
  it('removes a secret with characters to escape from a value that holds it escaped (a JSON reply kept as text)', () => {
    const odd = 'k3y\t"z';
    registerSecret(odd);
    const reply = `{"errors":[{"detail":"key ${JSON.stringify(odd).slice(1, -1)} refused"}]}`;

    const text = redactedJson({ reply }, 2);

    expect(JSON.parse(text)).toEqual({ reply: `{"errors":[{"detail":"key ${REDACTED} refused"}]}` });
  });

  it('writes every value as the replacer does, for any secret in any of its forms', () => {
    const unit = fc.oneof(
      fc.constantFrom('"', '\\', '\t', '\u0001', '\u007f', '\u2028', '\ud83d', '\udd11', 'u', '0', '/'),
      fc.string({ unit: 'binary', maxLength: 1 }),
    );
    const secret = fc.oneof(
      fc.array(unit, { maxLength: 4 }).map((units) => `k3y${units.join('')}z`),
      fc.stringMatching(/^[A-Za-z0-9+/=_-]{8,24}$/),
    );
    const formOf = (key: string, how: string): string => {
      if (how === 'json') return JSON.stringify(key).slice(1, -1);
      if (how === 'terminal')
        return key.replace(/\p{Cc}/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
      return key;
    };
    fc.assert(
      fc.property(
        secret,
        fc.constantFrom('raw', 'json', 'terminal'),
        fc.array(unit, { maxLength: 3 }),
        fc.anything({ withDate: true, withMap: true, withTypedArray: true, withNullPrototype: true }),
        fc.constantFrom(undefined, 2),
        (key, how, around, other, indent) => {
          forgetSecrets();
          registerSecret(key);
          const held = `${around.join('')}${formOf(key, how)}${around.join('')}`;
          const value = { held, [held]: other, list: [other, { toJSON: () => held }, new Date(0)] };

          const text = redactedJson(value, indent);

          expect(text).toBe(redactText(JSON.stringify(value, redactingReplacer, indent)));
          expect(holdsSecret(text)).toBe(false);
        },
      ),
      { numRuns: 400 },
    );
  });
});
