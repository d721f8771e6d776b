/**
 * The one rule for the tokens service's base URL: the function's `TOKENS_API_URL`
 * (lambda/app/config.ts) and the stack's `tokensApiUrl` (infra/app.ts, infra/settings.ts).
 */

/** Loopback hosts may use plain http (local runs and tests); anything else must be https. */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** A base URL as {@link parseTokensApiUrl} judged it: the URL, or what is wrong with it. */
export type TokensApiUrlVerdict = { readonly url: URL } | { readonly problem: string };

/**
 * Parses a base URL of the tokens service: a URL without credentials, query or fragment, and https;
 * with `loopbackHttp` (the function's rule, for local runs and tests) also plain http to a loopback
 * host. A deployed stack needs https: its function cannot reach a loopback host. The URL comes back
 * with the trailing slashes of its path trimmed; a problem is a phrase to follow the name of the
 * variable or prop, and never repeats credentials.
 */
export function parseTokensApiUrl(
  raw: string,
  options: { readonly loopbackHttp?: boolean } = {},
): TokensApiUrlVerdict {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { problem: `is not a URL: "${raw}"` };
  }
  if (url.username || url.password) return { problem: 'must not carry credentials' };
  if (url.search || url.hash) return { problem: 'must not have a query or fragment' };
  if (options.loopbackHttp === true) {
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
      return { problem: `must be https (plain http only for loopback), got ${url.protocol}//${url.host}` };
    }
  } else if (url.protocol !== 'https:') {
    return { problem: `must be an https URL, got "${raw}"` };
  }
  url.pathname = url.pathname.replace(/\/+$/, '');
  return { url };
}
