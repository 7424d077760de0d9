import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createRateLimiter, createSharedRateLimiter, RATE_HEADROOM } from '#core/rate-limiter.js';

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
});
afterEach(() => {
  vi.useRealTimers();
});

/** A deadline on the fake clock (AbortSignal.timeout runs on Node's own timers, which fake timers do not drive). */
function deadlineIn(ms: number): AbortSignal {
  const controller = new AbortController();
  setTimeout(() => controller.abort(), ms);
  return controller.signal;
}

/** Calls `take` and records the fake time at which it resolved (or that it was aborted). */
function timedTake(
  limiter: { take(units?: number, signal?: AbortSignal): Promise<void> },
  units: number,
  signal?: AbortSignal,
) {
  const result: { at?: number; aborted?: boolean } = {};
  const done = limiter.take(units, signal).then(
    () => {
      result.at = Date.now();
    },
    () => {
      result.aborted = true;
    },
  );
  return { result, done };
}

describe('the rate limiter', () => {
  it('spaces fractional rates by units: after three recipients at 0.5/s the next waits six seconds', async () => {
    // Prepare
    const limiter = createRateLimiter(0.5);

    // Act
    const first = timedTake(limiter, 3);
    const second = timedTake(limiter, 1);
    await vi.advanceTimersByTimeAsync(5999);
    const beforeSlot = { ...second.result };
    await vi.advanceTimersByTimeAsync(1);

    // Assess
    await Promise.all([first.done, second.done]);
    expect(first.result.at).toBe(0);
    expect(beforeSlot.at).toBeUndefined();
    expect(second.result.at).toBe(6000);
  });

  it('gives an abandoned wait its slot back: callers that gave up do not push the others further out', async () => {
    // Prepare: 1 unit/s; one caller holds the first slot, five give up after 2 s (their invocation's deadline).
    const limiter = createRateLimiter(1);
    const first = timedTake(limiter, 1);
    const quitters = Array.from({ length: 5 }, () => timedTake(limiter, 1, deadlineIn(2000)));

    // Act: at 2.5 s the next invocation's job asks.
    await vi.advanceTimersByTimeAsync(2500);
    const next = timedTake(limiter, 1);
    await vi.advanceTimersByTimeAsync(10_000);

    // Assess: a quitter took the 1 s slot (and perhaps the 2 s one, due as its deadline struck), the others gave up;
    // the newcomer is not queued behind the slots nobody used (it waited until 6 s when they stayed taken).
    await Promise.all([first.done, next.done, ...quitters.map((q) => q.done)]);
    const sent = quitters.filter((q) => q.result.at !== undefined).map((q) => q.result.at);
    expect(first.result.at).toBe(0);
    expect(sent.length).toBeGreaterThanOrEqual(1);
    expect(next.result.at).toBeLessThanOrEqual(3000);
  });

  it('keeps sending at its rate through invocations whose batches are larger than their time allows', async () => {
    // Prepare: 1 unit/s; each invocation brings 20 one-unit jobs and may commit for 10 s (then hands the rest back).
    const limiter = createRateLimiter(1);
    const sentPerInvocation: number[] = [];

    // Act: five invocations back to back.
    for (let invocation = 0; invocation < 5; invocation += 1) {
      const deadline = deadlineIn(10_000);
      const jobs = Array.from({ length: 20 }, () => timedTake(limiter, 1, deadline));
      await vi.advanceTimersByTimeAsync(10_000);
      await Promise.all(jobs.map((job) => job.done));
      sentPerInvocation.push(jobs.filter((job) => job.result.at !== undefined).length);
    }

    // Assess: about ten a window every time (the rate), never starving behind the slots of jobs handed back.
    expect(sentPerInvocation.every((sent) => sent >= 9 && sent <= 11)).toBe(true);
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

  it('slows every caller of the instance after a rate reply, not only the one that met it', async () => {
    // Prepare: 10 units/s, so one unit every 100 ms.
    const limiter = createRateLimiter(10, Date.now, { recoveryMs: 60_000 });
    await limiter.take(1);

    // Act: a rate reply, then two other callers.
    limiter.slowDown();
    const a = timedTake(limiter, 1);
    const b = timedTake(limiter, 1);
    await vi.advanceTimersByTimeAsync(1000);

    // Assess: at 5/s they are 200 ms apart (give or take the linear climb back).
    await Promise.all([a.done, b.done]);
    expect((b.result.at ?? 0) - (a.result.at ?? 0)).toBeGreaterThanOrEqual(190);
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
