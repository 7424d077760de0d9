import { untilAborted } from './attempt-budget.js';

/**
 * Spaces calls to at most `ratePerSecond` per second, first come first served. A rate of 0 means no limit.
 * SES drops mail over the account's send rate ("Maximum sending rate exceeded"), so the sender stays under it
 * instead of finding the limit by failing.
 */
export function createRateLimiter(ratePerSecond: number, clock: () => number = Date.now) {
  const intervalMs = ratePerSecond > 0 ? 1000 / ratePerSecond : 0;
  let nextSlot = 0;
  return {
    /** Resolves when the caller may go; rejects (AttemptAbortedError) if `signal` aborts first. */
    async take(signal?: AbortSignal): Promise<void> {
      if (intervalMs === 0) return;
      const now = clock();
      const slot = Math.max(now, nextSlot);
      nextSlot = slot + intervalMs;
      const wait = slot - now;
      if (wait > 0) await untilAborted(new Promise((resolve) => setTimeout(resolve, wait).unref()), signal);
    },
  };
}
