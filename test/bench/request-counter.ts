import diagnosticsChannel from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';

/** Requests a process sent, per service and per `service METHOD`. */
export interface RequestCounts {
  total: number;
  readonly byService: Record<string, number>;
  readonly byMethod: Record<string, number>;
}

/**
 * Counts every HTTP request this process sends, without touching the code under test: undici
 * (the tokens API, `fetch`) and `node:http` (the AWS SDK) both publish each request on a
 * diagnostics channel. Requests are attributed to a service by origin.
 */
export function countRequests(services: Readonly<Record<string, string | undefined>>): RequestCounts {
  const names = new Map<string, string>();
  for (const [name, url] of Object.entries(services)) {
    if (url !== undefined) names.set(new URL(url).origin, name);
  }
  const counts: RequestCounts = { total: 0, byService: {}, byMethod: {} };
  const record = (origin: string, method: string): void => {
    const service = names.get(origin) ?? 'other';
    counts.total += 1;
    counts.byService[service] = (counts.byService[service] ?? 0) + 1;
    const key = `${service} ${method}`;
    counts.byMethod[key] = (counts.byMethod[key] ?? 0) + 1;
  };
  diagnosticsChannel.subscribe('undici:request:create', (message) => {
    const { request } = message as { request: { origin: string | URL; method: string } };
    record(new URL(String(request.origin)).origin, request.method);
  });
  diagnosticsChannel.subscribe('http.client.request.start', (message) => {
    const { request } = message as { request: ClientRequest };
    record(`${request.protocol}//${String(request.getHeader('host'))}`, request.method);
  });
  return counts;
}
