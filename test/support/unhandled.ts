import { tick } from './fake-s3.ts';

/**
 * Runs `work`, then lets the event loop turn; returns the promise rejections nobody handled
 * meanwhile. On Lambda's Node runtime one of them ends the process.
 */
export async function unhandledDuring(work: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const record = (reason: unknown) => seen.push(reason);
  process.on('unhandledRejection', record);
  try {
    await work();
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (let i = 0; i < 5; i++) await tick();
  } finally {
    process.off('unhandledRejection', record);
  }
  return seen;
}
