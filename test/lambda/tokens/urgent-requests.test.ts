import { text } from 'node:stream/consumers';
import { Agent } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { LineFile } from '../../../lambda/shared/ids.ts';
import { TokensApi } from '../../../lambda/tokens/api.ts';
import { startTokensService, type TokensService } from '../../local/tokens-service.ts';

const KEY = 'urgent-requests-session-key';
const agent = new Agent({ keepAliveTimeout: 1000 });
afterAll(() => agent.close());
let service: TokensService | undefined;
afterEach(async () => {
  await service?.close();
  service = undefined;
});

describe('the requests around a DELETE, under a request cap', () => {
  it('ask the cap for an urgent slot (the re-read asked for, the DELETE); the first read and the downloads do not', async () => {
    service = await startTokensService({ sessionKey: KEY, lines: [{ status: 'finished', fileSize: 64 }] });
    const [id] = [...service.lines.keys()];
    if (id === undefined) throw new Error('no line');
    const asked: string[] = [];
    const api = new TokensApi({
      baseUrl: new URL(service.url),
      dispatcher: agent,
      sessionKey: { get: async () => KEY, invalidate: () => undefined },
      retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 },
      gate: async (_signal, urgent) => void asked.push(urgent === true ? 'urgent' : 'waits its turn'),
    });

    const first = await api.getLine(id);
    if (first.kind !== 'read') throw new Error('line not read');
    const file = first.line.files.find((candidate) => candidate.name === 'data') as LineFile;
    await text(await api.openFile(api.fileUrl(id, file)));
    await api.getLine(id, { urgent: true });
    await api.deleteLine(id);

    expect(asked).toEqual(['waits its turn', 'waits its turn', 'urgent', 'urgent']);
    expect(service.requests.map((request) => request.method)).toEqual(['GET', 'GET', 'GET', 'DELETE']);
  });
});
