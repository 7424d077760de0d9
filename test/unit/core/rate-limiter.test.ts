import { describe, expect, it } from 'vitest';
import { createRateLimiter, createSharedRateLimiter, RATE_HEADROOM } from '#core/rate-limiter.js';

describe('the rate limiter', () => {
  it('spaces fractional rates by units: three recipients at 0.5/s take the next six seconds', async () => {
    let now = 0;
    const limiter = createRateLimiter(0.5, () => now);
    await limiter.take(3);
    const next = limiter.take(1);
    // The second caller waits for its slot; the clock is fake, so the wait is observable only through the slot.
    now = 6000;
    await next;
    expect(limiter.rate).toBe(0.5);
  });

  it("stops waiting for a slot when the attempt's signal aborts, with an AttemptAbortedError", async () => {
    // Prepare: one send a minute, the first slot taken
    const limiter = createRateLimiter(1 / 60);
    await limiter.take(1);
    const controller = new AbortController();

    // Act
    const waiting = limiter.take(1, controller.signal);
    controller.abort();

    // Assess
    await expect(waiting).rejects.toMatchObject({ name: 'AttemptAbortedError' });
  });

  it('halves the rate on a rate reply (once a second at most) and climbs back linearly', () => {
    let now = 0;
    const limiter = createRateLimiter(10, () => now, { recoveryMs: 10_000, floorShare: 0.1 });
    limiter.slowDown();
    limiter.slowDown();
    expect(limiter.rate).toBe(5);
    now = 1000;
    limiter.slowDown();
    expect(limiter.rate).toBeCloseTo(3, 5);
    for (let i = 0; i < 10; i += 1) {
      now += 1000;
      limiter.slowDown();
    }
    expect(limiter.rate).toBeGreaterThanOrEqual(1);
    now += 20_000;
    void limiter.take();
    expect(limiter.rate).toBe(10);
  });

  it('splits a rate read from the provider across the instances that share it, with headroom', async () => {
    let reads = 0;
    const shared = createSharedRateLimiter(async () => {
      reads += 1;
      return 14;
    }, 100);
    await shared.take();
    expect(shared.limiter.rate).toBeCloseTo((14 * RATE_HEADROOM) / 100, 10);
    expect(reads).toBe(1);
  });
});
