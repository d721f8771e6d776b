import { describe, expect, it } from 'vitest';
import { summariseProfile } from './profile.ts';

const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 0, columnNumber: 0 });

describe('summariseProfile (where the CPU went, by self time)', () => {
  it('shares busy time by group, leaves idle out, and counts a native without a role to its caller', () => {
    const profile = {
      nodes: [
        { id: 1, callFrame: frame('(root)', ''), children: [2, 3, 4] },
        { id: 2, callFrame: frame('(idle)', '') },
        { id: 3, callFrame: frame('Hash', 'node:internal/crypto/hash'), children: [5] },
        { id: 4, callFrame: frame('onread', 'node:internal/stream_base_commons'), children: [6] },
        { id: 5, callFrame: frame('exec', '') },
        { id: 6, callFrame: frame('writev', '') },
      ],
      samples: [2, 2, 3, 5, 6, 6],
      timeDeltas: [1000, 1000, 1000, 1000, 1000, 1000],
      startTime: 0,
      endTime: 6000,
    };

    const summary = summariseProfile(profile);

    expect(summary.busyMs).toBe(4);
    expect(summary.groups).toEqual([
      { name: 'node: crypto (hashing)', ms: 2, percent: 50 },
      { name: 'node: sockets', ms: 2, percent: 50 },
    ]);
  });
});
