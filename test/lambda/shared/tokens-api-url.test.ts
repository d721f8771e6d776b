import { describe, expect, it } from 'vitest';
import { parseTokensApiUrl } from '../../../lambda/shared/tokens-api-url.ts';

describe('parseTokensApiUrl', () => {
  it.each([
    ['https://tokens.example.com', 'https://tokens.example.com/'],
    ['https://tokens.example.com:8443/base/', 'https://tokens.example.com:8443/base'],
    ['https://tokens.example.com/a/b///', 'https://tokens.example.com/a/b'],
  ])('takes the https URL %s, its trailing slashes trimmed', (raw, href) => {
    const verdict = parseTokensApiUrl(raw);

    expect(verdict).toEqual({ url: new URL(href) });
  });

  it.each([
    ['not a URL', 'tokens.example.com', 'is not a URL: "tokens.example.com"'],
    ['credentials', 'https://user:pa55w0rd@tokens.example.com', 'must not carry credentials'],
    ['a query', 'https://tokens.example.com/?a=1', 'must not have a query or fragment'],
    ['a fragment', 'https://tokens.example.com/#top', 'must not have a query or fragment'],
    ['plain http', 'http://tokens.example.com', 'must be an https URL, got "http://tokens.example.com"'],
    ['plain http to loopback', 'http://127.0.0.1:8080', 'must be an https URL, got "http://127.0.0.1:8080"'],
  ])('refuses a URL with %s, saying why (the stack rule)', (_problem, raw, problem) => {
    const verdict = parseTokensApiUrl(raw);

    expect(verdict).toEqual({ problem });
  });

  it.each(['http://127.0.0.1:8080', 'http://localhost:3000', 'http://[::1]:8080'])(
    'takes plain http to the loopback host of %s with loopbackHttp (the function rule)',
    (raw) => {
      const verdict = parseTokensApiUrl(raw, { loopbackHttp: true });

      expect('url' in verdict && verdict.url.protocol).toBe('http:');
    },
  );

  it.each([
    [
      'http://tokens.example.com',
      'must be https (plain http only for loopback), got http://tokens.example.com',
    ],
    ['https://user:secret@127.0.0.1', 'must not carry credentials'],
    ['http://127.0.0.1/?a=1', 'must not have a query or fragment'],
  ])('still refuses %s with loopbackHttp', (raw, problem) => {
    const verdict = parseTokensApiUrl(raw, { loopbackHttp: true });

    expect(verdict).toEqual({ problem });
  });

  it('never repeats the password of a URL with credentials', () => {
    const verdict = parseTokensApiUrl('http://user:pa55w0rd-XYZ@tokens.example.com');

    expect(JSON.stringify(verdict)).not.toContain('pa55w0rd-XYZ');
  });
});
