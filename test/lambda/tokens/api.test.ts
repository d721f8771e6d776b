import type { Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import { UnsafeReferenceError } from '../../../lambda/shared/errors.ts';
import type { LineFile } from '../../../lambda/shared/ids.ts';
import type { SessionKeySource } from '../../../lambda/shared/session-key-source.ts';
import { TokensApi } from '../../../lambda/tokens/api.ts';
import { parseRetryAfter } from '../../../lambda/tokens/http.ts';

const LINE_ID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const SHA256 = 'f6b7af3fc7ce1a1dd7d0a327e1c87d7a51533cd1da2ec973a6283deadd695697';

describe('parseRetryAfter', () => {
  it.each([
    ['120', 120_000],
    ['0', 0],
    [' 5 ', 5000],
    ['007', 7000],
  ])('reads delta-seconds %j as %i ms', (header, expected) => {
    const ms = parseRetryAfter(header);

    expect(ms).toBe(expected);
  });

  it('reads an HTTP date as the time left until it', () => {
    const now = Date.parse('Wed, 21 Oct 2015 07:27:30 GMT');

    const ms = parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', now);

    expect(ms).toBe(30_000);
  });

  it('reads an HTTP date in the past as no wait', () => {
    const now = Date.parse('Wed, 21 Oct 2015 08:00:00 GMT');

    const ms = parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', now);

    expect(ms).toBe(0);
  });

  it.each(['soon', 'later, please', '12abc', '1e3', 'Thursday'])('ignores the garbage value %j', (header) => {
    const ms = parseRetryAfter(header);

    expect(ms).toBeUndefined();
  });

  it.each(['1.5', '-1', 'soon 2'])(
    'ignores %j, which is neither delta-seconds nor an HTTP date',
    (header) => {
      const ms = parseRetryAfter(header, Date.parse('2024-03-19T12:00:00Z'));

      expect(ms).toBeUndefined();
    },
  );

  it.each([
    ['absent', undefined],
    ['empty', ''],
    ['blank', '   '],
  ])('has no delay when the header is %s', (_what, header) => {
    const ms = parseRetryAfter(header);

    expect(ms).toBeUndefined();
  });

  it('reads the first value of a repeated header', () => {
    const ms = parseRetryAfter(['7', '100']);

    expect(ms).toBe(7000);
  });

  it('has no delay for an empty list of values', () => {
    const ms = parseRetryAfter([]);

    expect(ms).toBeUndefined();
  });
});

describe('TokensApi.fileUrl', () => {
  /** A key source that records whether anyone asked for the key (fileUrl never should). */
  function recordingKeySource(): SessionKeySource & { readonly asked: () => number } {
    let asked = 0;
    return {
      get: async () => {
        asked += 1;
        return 'never-sent';
      },
      invalidate: () => undefined,
      asked: () => asked,
    };
  }

  function apiFor(baseUrl: string, sessionKey: SessionKeySource = recordingKeySource()): TokensApi {
    return new TokensApi({
      baseUrl: new URL(baseUrl),
      // fileUrl only builds URLs: a dispatcher that is used would throw on the missing methods.
      dispatcher: {} as Dispatcher,
      sessionKey,
      retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 },
    });
  }

  function file(name: string, link?: string): LineFile {
    return { name, size: 1, sha256: SHA256, link };
  }

  it('accepts a relative link on the origin of TOKENS_API_URL', () => {
    const sessionKey = recordingKeySource();
    const api = apiFor('https://tokens.example.com', sessionKey);

    const url = api.fileUrl(LINE_ID, file('data', `/api/tokens/${LINE_ID}/data`));

    expect(url.href).toBe(`https://tokens.example.com/api/tokens/${LINE_ID}/data`);
    expect(sessionKey.asked()).toBe(0);
  });

  it('accepts an absolute link to the same origin', () => {
    const api = apiFor('https://tokens.example.com');

    const url = api.fileUrl(LINE_ID, file('data', 'https://tokens.example.com:443/downloads/data?x=1'));

    expect(url.href).toBe('https://tokens.example.com/downloads/data?x=1');
  });

  it('accepts a link on a loopback origin with a port', () => {
    const api = apiFor('http://127.0.0.1:8080');

    const url = api.fileUrl(LINE_ID, file('data', `/api/tokens/${LINE_ID}/data`));

    expect(url.href).toBe(`http://127.0.0.1:8080/api/tokens/${LINE_ID}/data`);
  });

  it.each([
    ['an absolute link to another host', 'https://evil.example/x'],
    ['a protocol-relative link', '//evil.example/x'],
    ['a backslashed protocol-relative link', '/\\evil.example/x'],
    ['a link to another port', 'https://tokens.example.com:8443/x'],
    ['a link with another scheme', 'http://tokens.example.com/x'],
    ['a link to a look-alike host', 'https://tokens.example.com.evil.example/x'],
    ['a link to a subdomain', 'https://files.tokens.example.com/x'],
    ['a link with credentials', 'https://user:pw@tokens.example.com/x'],
    ['a javascript: link', 'javascript:alert(1)'],
    ['a data: link', 'data:text/plain,hello'],
    ['a file: link', 'file:///etc/passwd'],
  ])('refuses %s', (_what, link) => {
    const api = apiFor('https://tokens.example.com');

    const attempt = () => api.fileUrl(LINE_ID, file('data', link));

    expect(attempt).toThrow(UnsafeReferenceError);
  });

  it('names the file and the line when it refuses a link', () => {
    const api = apiFor('https://tokens.example.com');

    const attempt = () => api.fileUrl(LINE_ID, file('score', 'https://evil.example/x'));

    expect(attempt).toThrow(/file score of line 6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b/);
  });

  it('builds /api/tokens/{id}/{name} when the reply links no file', () => {
    const api = apiFor('https://tokens.example.com');

    const url = api.fileUrl(LINE_ID, file('score'));

    expect(url.href).toBe(`https://tokens.example.com/api/tokens/${LINE_ID}/score`);
  });

  it.each(['https://tokens.example.com/prefix', 'https://tokens.example.com/prefix/'])(
    'keeps the path prefix of the base URL %s',
    (baseUrl) => {
      const api = apiFor(baseUrl);

      const url = api.fileUrl(LINE_ID, file('delta'));

      expect(url.href).toBe(`https://tokens.example.com/prefix/api/tokens/${LINE_ID}/delta`);
    },
  );

  it.each(['../../admin', 'not-a-uuid', `${LINE_ID}/..`, ''])(
    'refuses to build a URL for the line id %j',
    (lineId) => {
      const api = apiFor('https://tokens.example.com');

      const attempt = () => api.fileUrl(lineId, file('data'));

      expect(attempt).toThrow(UnsafeReferenceError);
    },
  );
});
