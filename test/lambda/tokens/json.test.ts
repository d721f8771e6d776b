import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, parseJsonLimited } from '../../../lambda/tokens/json.ts';

/** What `parseJsonLimited(JSON.stringify(value), maxDepth)` should give: containers deeper than `maxDepth` are null. */
function truncated(value: unknown, maxDepth: number, depth = 1): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth > maxDepth) return null;
  if (Array.isArray(value)) return value.map((item) => truncated(item, maxDepth, depth + 1));
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    // defineProperty: an own "__proto__" key stays an own key, as JSON.parse makes it.
    Object.defineProperty(copy, key, {
      value: truncated(item, maxDepth, depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return copy;
}

/** How many arrays deep `value` goes along its first items, and what it holds at the bottom. */
function firstPath(value: unknown): { depth: number; bottom: unknown } {
  let depth = 0;
  let current = value;
  while (Array.isArray(current)) {
    depth += 1;
    current = current[0];
  }
  return { depth, bottom: current };
}

describe('parseJsonLimited', () => {
  it('equals JSON.parse for documents within the depth limit', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 10 }), (value) => {
        const text = JSON.stringify(value);
        expect(parseJsonLimited(text)).toStrictEqual(JSON.parse(text));
      }),
    );
  });

  it('replaces every container deeper than the limit by null, and keeps everything else', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.integer({ min: 0, max: 6 }), (value, maxDepth) => {
        const text = JSON.stringify(value, null, maxDepth % 2 === 0 ? undefined : 1);
        expect(parseJsonLimited(text, maxDepth)).toStrictEqual(truncated(JSON.parse(text), maxDepth));
      }),
    );
  });

  it('keeps the first MAX_JSON_DEPTH levels of a value nested 100,000 deep, and nulls the rest', () => {
    const text = `{"data":{"id":"x","deep":${'['.repeat(100_000)}${']'.repeat(100_000)}}}`;

    const parsed = parseJsonLimited(text) as { data: { id: string; deep: unknown } };

    expect(parsed.data.id).toBe('x');
    // The document object and `data` are two of the levels.
    expect(firstPath(parsed.data.deep)).toEqual({ depth: MAX_JSON_DEPTH - 2, bottom: null });
  });

  it('does not count brackets and braces inside strings, escaped quotes and backslashes included', () => {
    const tricky = ['[', ']', '{', '}', '\\', '"', '\\"[', '"]}', '\\\\"', 'a\\', '\u2028[', '\\u005b'];
    for (const s of tricky) {
      const text = JSON.stringify({ a: [s, { [s]: s }], b: s });
      expect(parseJsonLimited(text, 2)).toEqual({ a: [s, null], b: s });
      expect(parseJsonLimited(text, 3)).toEqual(JSON.parse(text));
    }
    const hidden = JSON.stringify({ a: [[['x"]]]}, "\\"[[[', { '{': '}' }]]] });
    expect(parseJsonLimited(hidden, 2)).toEqual({ a: [null] });
    expect(parseJsonLimited(hidden, 5)).toEqual(JSON.parse(hidden));
  });

  it('still throws on invalid JSON', () => {
    for (const text of [
      '',
      '{',
      '[1,]',
      '{"a":1',
      '"unterminated',
      '{"a":1}}',
      '[1]]',
      'nul',
      '{"a" 1}',
      "{'a':1}",
    ]) {
      expect(() => parseJsonLimited(text), text).toThrow(SyntaxError);
    }
    // Unbalanced below the limit: nothing closes the skipped container.
    expect(() => parseJsonLimited(`[${'['.repeat(40)}`)).toThrow(SyntaxError);
    expect(() => parseJsonLimited(`{"a":${'['.repeat(40)}"]`)).toThrow(SyntaxError);
  });

  it('reads 16 MiB of nesting in linear time and constant stack', () => {
    const half = 8 * 1024 * 1024;
    const text = `${'['.repeat(half)}${']'.repeat(half)}`;
    const started = performance.now();

    const parsed = parseJsonLimited(text);

    expect(performance.now() - started).toBeLessThan(2000);
    expect(firstPath(parsed)).toEqual({ depth: MAX_JSON_DEPTH, bottom: null });
    expect(parseJsonLimited(text, 0)).toBeNull();
  });
});
