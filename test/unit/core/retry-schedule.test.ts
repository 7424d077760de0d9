import { describe, expect, it } from 'vitest';
import {
  DEFAULT_RETRY_POLICY,
  maxAttemptsWithinLifetime,
  nextRetryDelay,
  scheduleRetry,
} from '#core/retry-schedule.js';
import { DEFAULT_SETTINGS, deriveQueueSettings, validateSettings } from '#infra/settings.js';

const policy = { baseDelaySeconds: 30, maxDelaySeconds: 900, lifetimeSeconds: 6 * 3600 };

describe('nextRetryDelay', () => {
  it('doubles from the base up to the cap, with jitter between half and all of it', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((attempt) => nextRetryDelay(policy, attempt, 0.999999))).toEqual([
      30, 60, 120, 240, 480, 900, 900,
    ]);
    expect([1, 2, 3, 6].map((attempt) => nextRetryDelay(policy, attempt, 0))).toEqual([15, 30, 60, 450]);
  });
});

describe('scheduleRetry', () => {
  it('retries while the next attempt still falls inside the lifetime', () => {
    const now = 1_000_000_000;
    expect(scheduleRetry(policy, { attempt: 1, firstEnqueuedAtMs: now, nowMs: now }, 0)).toEqual({
      retry: true,
      delaySeconds: 15,
    });
    expect(
      scheduleRetry(policy, { attempt: 9, firstEnqueuedAtMs: now - 6 * 3600 * 1000 + 100_000, nowMs: now }, 0),
    ).toEqual({ retry: false, ageSeconds: 21_500 });
  });
});

describe('queue settings follow from the retry schedule', () => {
  it('gives maxReceiveCount room for every scheduled attempt plus the crash allowance', () => {
    const attempts = maxAttemptsWithinLifetime(DEFAULT_RETRY_POLICY);
    // 15+30+60+120+240+450 s, then 450 s each until 6 h: 1 + 6 + 45 attempts.
    expect(attempts).toBe(1 + 6 + Math.floor((21_600 - 915) / 450));
    const queue = deriveQueueSettings(DEFAULT_SETTINGS);
    expect(queue.maxReceiveCount).toBe(attempts + DEFAULT_SETTINGS.crashAllowance);
    expect(queue.visibilityTimeoutSeconds).toBeGreaterThanOrEqual(6 * DEFAULT_SETTINGS.functionTimeoutSeconds);
    expect(queue.deadLetterRetentionSeconds).toBeGreaterThan(queue.retentionSeconds);
    expect(queue.retentionSeconds).toBeGreaterThan(DEFAULT_RETRY_POLICY.lifetimeSeconds);
  });

  it('reports every invalid setting at once', () => {
    const problems = validateSettings({
      ...DEFAULT_SETTINGS,
      batchSize: 0,
      maxConcurrency: 1,
      retry: { baseDelaySeconds: 1, maxDelaySeconds: 1, lifetimeSeconds: 86_400 },
    });
    expect(problems).toHaveLength(3);
    expect(problems.join('\n')).toMatch(/batchSize/);
    expect(problems.join('\n')).toMatch(/maxConcurrency/);
    expect(problems.join('\n')).toMatch(/maxReceiveCount/);
  });
});
