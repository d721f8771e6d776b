import diagnosticsChannel from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';

/** One request as it was sent: to which service, the method and the path with its query. */
export interface TracedRequest {
  readonly service: string;
  readonly method: string;
  readonly path: string;
}

/** Requests a process sent, per service and per `service METHOD`; in order too when traced. */
export interface RequestCounts {
  total: number;
  readonly byService: Record<string, number>;
  readonly byMethod: Record<string, number>;
  /** Every request in the order it was started, when asked for (`trace`). */
  readonly trace?: TracedRequest[];
}

/**
 * Counts every HTTP request this process sends, without touching the code under test: undici
 * (the tokens API, `fetch`) and `node:http` (the AWS SDK) both publish each request on a
 * diagnostics channel. Requests are attributed to a service by origin.
 */
export function countRequests(
  services: Readonly<Record<string, string | undefined>>,
  options: { readonly trace?: boolean } = {},
): RequestCounts {
  const names = new Map<string, string>();
  for (const [name, url] of Object.entries(services)) {
    if (url !== undefined) names.set(new URL(url).origin, name);
  }
  const trace: TracedRequest[] | undefined = options.trace ? [] : undefined;
  const counts: RequestCounts = {
    total: 0,
    byService: {},
    byMethod: {},
    ...(trace === undefined ? {} : { trace }),
  };
  const record = (origin: string, method: string, path: string): void => {
    const service = names.get(origin) ?? 'other';
    trace?.push({ service, method, path });
    counts.total += 1;
    counts.byService[service] = (counts.byService[service] ?? 0) + 1;
    const key = `${service} ${method}`;
    counts.byMethod[key] = (counts.byMethod[key] ?? 0) + 1;
  };
  diagnosticsChannel.subscribe('undici:request:create', (message) => {
    const { request } = message as { request: { origin: string | URL; method: string; path: string } };
    record(new URL(String(request.origin)).origin, request.method, request.path);
  });
  diagnosticsChannel.subscribe('http.client.request.start', (message) => {
    const { request } = message as { request: ClientRequest };
    record(`${request.protocol}//${String(request.getHeader('host'))}`, request.method, request.path);
  });
  return counts;
}
