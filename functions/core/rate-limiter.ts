import { untilAborted } from './attempt-budget.js';

export type RateLimiterOptions = {
  /** A slowed-down rate never goes below this share of the set rate. @default 0.1 */
  floorShare?: number;
  /** After a slow-down the rate climbs back to the set rate linearly over this long, ms. @default 30000 */
  recoveryMs?: number;
};

/** How far behind the clock a slot may begin: the most idle time (or timer lateness) a caller is credited, ms. */
const MAX_CATCH_UP_MS = 250;

/**
 * Spaces calls to at most `ratePerSecond` units per second (a unit is a recipient for a provider that counts them,
 * as SES does), first come first served; fractional rates are fine (0.14 is one unit every 7.1 s). A rate of 0
 * means no limit. SES drops mail over the account's send rate ("Maximum sending rate exceeded"), so the sender stays
 * under it instead of finding the limit by failing.
 *
 * Adaptive (AIMD): `slowDown` after a rate reply halves the rate for every caller of this instance at once (not only
 * the job that met it), at most once a second; the rate then climbs back linearly to the set rate.
 */
export function createRateLimiter(
  ratePerSecond: number,
  clock: () => number = Date.now,
  options: RateLimiterOptions = {},
) {
  const floorShare = options.floorShare ?? 0.1;
  const recoveryMs = options.recoveryMs ?? 30_000;
  let base = ratePerSecond;
  let rate = ratePerSecond;
  let nextSlot = 0;
  let lastAdjustedAt = clock();
  let lastSlowDownAt = -Infinity;
  // Callers waiting for a slot, first come first served. A slot is given out only to a caller still waiting, so one
  // that gave up (its invocation's deadline) leaves nothing behind: the slots of the jobs handed back are not kept
  // from those that come next.
  const waiting: Array<{ units: number; release: () => void }> = [];
  let timer: ReturnType<typeof setTimeout> | undefined;

  const recover = (now: number) => {
    if (rate < base) rate = Math.min(base, rate + (base * (now - lastAdjustedAt)) / recoveryMs);
    lastAdjustedAt = now;
  };
  const pump = () => {
    timer = undefined;
    for (let head = waiting[0]; head; head = waiting[0]) {
      const now = clock();
      // A slot begins where the previous one ends: a timer that fires a little late does not move the slots after it,
      // and the short pause between two invocations' batches is not lost; a longer idle time earns no burst.
      const slot = Math.max(nextSlot, now - MAX_CATCH_UP_MS);
      if (base > 0 && slot > now) {
        timer = setTimeout(pump, slot - now);
        timer.unref?.();
        return;
      }
      waiting.shift();
      if (base > 0) {
        recover(now);
        nextSlot = slot + (Math.max(1, head.units) * 1000) / rate;
      }
      head.release();
    }
  };

  return {
    /** The rate in force now, units per second (0: no limit). */
    get rate(): number {
      return rate;
    },
    /**
     * Resolves when the caller may send `units` (e.g. its recipients); rejects (AttemptAbortedError) if `signal`
     * aborts first, and then takes no slot.
     */
    take(units = 1, signal?: AbortSignal): Promise<void> {
      if (base <= 0) return Promise.resolve();
      const waiter = { units, release: () => {} };
      const granted = new Promise<void>((resolve) => {
        waiter.release = resolve;
      });
      waiting.push(waiter);
      if (timer === undefined) pump();
      if (!signal) return granted;
      const leave = () => {
        const at = waiting.indexOf(waiter);
        if (at >= 0) waiting.splice(at, 1);
      };
      signal.addEventListener('abort', leave, { once: true });
      granted.then(() => signal.removeEventListener('abort', leave));
      return untilAborted(granted, signal);
    },
    /** A rate reply came back: halve the rate (once per second at most) and leave a pause before the next send. */
    slowDown(): void {
      if (base <= 0) return;
      const now = clock();
      if (now - lastSlowDownAt < 1000) return;
      lastSlowDownAt = now;
      recover(now);
      rate = Math.max(base * floorShare, rate / 2);
      nextSlot = Math.max(nextSlot, now + 1000 / rate);
    },
    /** Sets the rate (e.g. when the provider's quota became known); 0 lifts the limit. */
    setRate(next: number): void {
      base = next;
      rate = next;
      lastAdjustedAt = clock();
      if (timer !== undefined) clearTimeout(timer);
      pump();
    },
  };
}

/** A send rate, fixed or read from the provider (SES's `GetAccount`), units per second. */
export type RateSource = number | (() => Promise<number>);

/**
 * The share of a provider's rate we aim at: independent instances, each paced evenly, still meet at the provider a
 * little unevenly (network and event-loop jitter), and a provider counting strictly refuses the excess.
 */
export const RATE_HEADROOM = 0.95;

/**
 * A limiter whose rate comes from `source` split over `shares` instances (the concurrency cap): each instance may
 * send `rate × RATE_HEADROOM / shares`, so that all of them together stay under the rate. A rate read from the
 * provider is read again after `refreshMs` (quotas grow); until the first answer it holds one unit per second.
 */
export function createSharedRateLimiter(
  source: RateSource | undefined,
  shares: number,
  options: { refreshMs?: number; clock?: () => number } = {},
) {
  const clock = options.clock ?? Date.now;
  const refreshMs = options.refreshMs ?? 600_000;
  const perInstance = (rate: number) => (rate > 0 ? (rate * RATE_HEADROOM) / Math.max(1, shares) : 0);
  const initial = typeof source === 'number' ? perInstance(source) : source ? perInstance(1) : 0;
  const limiter = createRateLimiter(initial, clock);
  let readAt = -Infinity;
  let reading: Promise<void> | undefined;
  const refresh = async () => {
    if (typeof source !== 'function' || clock() - readAt < refreshMs) return;
    reading ??= source()
      .then(
        (rate) => {
          readAt = clock();
          limiter.setRate(perInstance(rate));
        },
        (error: unknown) => {
          // Asked again in a minute, not on every send; meanwhile the cautious rate stays.
          readAt = clock() - refreshMs + 60_000;
          throw error;
        },
      )
      .finally(() => {
        reading = undefined;
      });
    await reading;
  };
  return {
    limiter,
    /** Waits for the provider's rate (once per `refreshMs`), then for a slot for `units`, at most until `signal`. */
    async take(units = 1, signal?: AbortSignal): Promise<void> {
      await untilAborted(
        refresh().catch(() => undefined),
        signal,
      );
      await limiter.take(units, signal);
    },
    slowDown: () => limiter.slowDown(),
  };
}
