/** Something counted at a time: bytes granted or read, at `at` ms. */
export interface Timed {
  readonly at: number;
  readonly bytes: number;
}

/** The largest sum of `bytes` over any one-second window [t, t + 1000 ms) of `events`. */
export function busiestSecond(events: readonly Timed[]): number {
  const sorted = [...events].sort((a, b) => a.at - b.at);
  let busiest = 0;
  let sum = 0;
  let first = 0;
  for (const event of sorted) {
    sum += event.bytes;
    // Every event within 1000 ms after the window's first one counts in it.
    while (event.at - (sorted[first]?.at ?? event.at) >= 1000) {
      sum -= sorted[first]?.bytes ?? 0;
      first += 1;
    }
    busiest = Math.max(busiest, sum);
  }
  return busiest;
}
