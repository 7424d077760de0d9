/** How failed attempts are spaced and when a job stops being retried. */
export type RetryPolicy = {
  /** Delay before the second attempt, seconds. @default 30 */
  baseDelaySeconds: number;
  /** Upper bound of one delay, seconds (SQS allows up to 43,200). @default 900 */
  maxDelaySeconds: number;
  /** How long after it was first enqueued a job may still be attempted, seconds. @default 21600 (6 h) */
  lifetimeSeconds: number;
};

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  baseDelaySeconds: 30,
  maxDelaySeconds: 900,
  lifetimeSeconds: 6 * 3600,
};

/**
 * The delay before the next attempt, after `attempt` attempts have failed (attempt ≥ 1): exponential, capped, with
 * "equal jitter" (half fixed, half random) so that a burst of failures does not come back as a burst.
 * `random` is in [0, 1).
 */
export function nextRetryDelay(policy: RetryPolicy, attempt: number, random: number): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const ceiling = Math.min(policy.maxDelaySeconds, policy.baseDelaySeconds * 2 ** exponent);
  return Math.max(1, Math.round(ceiling / 2 + (ceiling / 2) * random));
}

/**
 * Decides the next step for a job whose attempt failed in a retryable way: retry after `delaySeconds`, or give up
 * because the next attempt would start after the job's lifetime.
 */
export function scheduleRetry(
  policy: RetryPolicy,
  facts: { attempt: number; firstEnqueuedAtMs: number; nowMs: number },
  random: number,
): { retry: true; delaySeconds: number } | { retry: false; ageSeconds: number } {
  const delaySeconds = nextRetryDelay(policy, facts.attempt, random);
  const ageSeconds = Math.max(0, (facts.nowMs - facts.firstEnqueuedAtMs) / 1000);
  if (ageSeconds + delaySeconds > policy.lifetimeSeconds) return { retry: false, ageSeconds: Math.round(ageSeconds) };
  return { retry: true, delaySeconds };
}

/**
 * The most attempts a job can get within its lifetime, when every delay is as short as jitter allows (plus the
 * first attempt). The queue's maxReceiveCount must exceed it, or SQS's redrive would move a job to the DLQ while
 * the schedule still wants it retried.
 */
export function maxAttemptsWithinLifetime(policy: RetryPolicy): number {
  let elapsed = 0;
  let attempts = 1;
  while (attempts < 10_000) {
    const shortest = nextRetryDelay(policy, attempts, 0);
    if (elapsed + shortest > policy.lifetimeSeconds) break;
    elapsed += shortest;
    attempts += 1;
  }
  return attempts;
}
