/** JSON from the service, parsed so that nothing nested deeper than the pass reads is materialized. */

/** Containers nested deeper than this in a service document are not materialized. */
export const MAX_JSON_DEPTH = 32;

/**
 * Parses a JSON document from the service, keeping only what lies within `maxDepth` levels: a
 * deeper array or object becomes `null`. The pass reads only shallow fields (id, status, files,
 * links), and the document itself is archived as received, byte for byte; so a hostile or odd
 * document (a value nested a million levels deep, 64 MiB of `[`) can neither exhaust the heap
 * nor break a later walk of the value. One linear scan, no recursion. The text outside the
 * skipped parts must be valid JSON (`JSON.parse` judges it); a skipped part must be balanced.
 */
export function parseJsonLimited(text: string, maxDepth = MAX_JSON_DEPTH): unknown {
  // No deeper than its count of `[` and `{` (those inside strings counted too): a document with
  // no more than `maxDepth` of them has nothing to cut, and JSON.parse takes it whole.
  if (openersAtMost(text, maxDepth)) return JSON.parse(text);
  const kept: string[] = [];
  let depth = 0;
  let from = 0;
  for (let i = 0; i < text.length; i += 1) {
    const char = text.charCodeAt(i);
    if (char === 0x22 /* " */) {
      i = stringEnd(text, i);
    } else if (char === 0x5b /* [ */ || char === 0x7b /* { */) {
      depth += 1;
      if (depth > maxDepth) {
        kept.push(text.slice(from, i), 'null');
        i = containerEnd(text, i);
        from = i + 1;
        depth -= 1;
      }
    } else if (char === 0x5d /* ] */ || char === 0x7d /* } */) {
      depth -= 1;
    }
  }
  kept.push(text.slice(from));
  return JSON.parse(kept.length === 1 ? text : kept.join(''));
}

/** Whether `text` holds at most `limit` characters `[` and `{` together. */
function openersAtMost(text: string, limit: number): boolean {
  let count = 0;
  for (const opener of ['{', '[']) {
    for (let i = text.indexOf(opener); i !== -1; i = text.indexOf(opener, i + 1)) {
      count += 1;
      if (count > limit) return false;
    }
  }
  return true;
}

/** The index of the closing quote of the string opening at `start`. */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i += 1) {
    const char = text.charCodeAt(i);
    if (char === 0x5c /* \ */) i += 1;
    else if (char === 0x22) return i;
  }
  throw new SyntaxError('unterminated string');
}

/** The index of the bracket closing the container opening at `start` (strings skipped). */
function containerEnd(text: string, start: number): number {
  let depth = 0;
  for (let i = start; i < text.length; i += 1) {
    const char = text.charCodeAt(i);
    if (char === 0x22) i = stringEnd(text, i);
    else if (char === 0x5b || char === 0x7b) depth += 1;
    else if (char === 0x5d || char === 0x7d) {
      depth -= 1;
      if (depth === 0) return i;
    }
  }
  throw new SyntaxError('unbalanced brackets');
}
