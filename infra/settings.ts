import { DEFAULT_RETRY_POLICY, maxAttemptsWithinLifetime, type RetryPolicy } from '#core/retry-schedule.js';

/**
 * The settings that shape the running system, read by both the CDK stack and the local twin: one truth, so the
 * twin behaves as the deployed stack does. Deploy-time overrides come from CDK context (see infra/stack-config.ts).
 */
export type SystemSettings = {
  /** Records per Lambda invocation (the README's Performance section has the measurements). @default 56 */
  batchSize: number;
  /** How long the event source gathers a batch, seconds (0–300). @default 1 */
  maxBatchingWindowSeconds: number;
  /** The concurrency cap: most concurrent dispatch invocations (ScalingConfig.MaximumConcurrency, 2–1000). @default 5 */
  maxConcurrency: number;
  /** Dispatch function timeout, seconds. @default 60 */
  functionTimeoutSeconds: number;
  /** Dispatch function memory, MB; Lambda gives CPU in proportion (one vCPU at 1,769 MB). @default 512 */
  memorySizeMb: number;
  /** SMTP connections each dispatch instance keeps open (`SMTP_MAX_CONNECTIONS`). @default 2 */
  smtpConnections: number;
  /**
   * Jobs of a batch in progress at once in an instance (`MAX_IN_FLIGHT`; 0: the whole batch). Enough to keep the pool
   * busy while other jobs claim and complete, few enough that their claims do not crowd its sends: the README's
   * Performance section has the measurements. @default 10
   */
  maxInFlight: number;
  /** Retry schedule of the dispatch path. @default 30 s doubling to 900 s, for 6 h */
  retry: RetryPolicy;
  /** Receives a job may have before SQS moves it to the DLQ: derived, see {@link deriveQueueSettings}. */
  crashAllowance: number;
  /** Largest queue message, bytes (SQS allows up to 1 MiB). @default 1048576 */
  maxMessageSizeBytes: number;
  /** How often the IMAP poller runs, minutes. @default 1 */
  pollRateMinutes: number;
  /** IMAP poller function timeout, seconds. @default 60 */
  pollerTimeoutSeconds: number;
};

export const DEFAULT_SETTINGS: SystemSettings = {
  batchSize: 56,
  maxBatchingWindowSeconds: 1,
  maxConcurrency: 5,
  functionTimeoutSeconds: 60,
  memorySizeMb: 512,
  smtpConnections: 2,
  maxInFlight: 10,
  retry: DEFAULT_RETRY_POLICY,
  crashAllowance: 3,
  maxMessageSizeBytes: 1024 * 1024,
  pollRateMinutes: 1,
  pollerTimeoutSeconds: 60,
};

/** Queue settings that follow from the others; computed, never set by hand, so they cannot disagree. */
export type QueueSettings = {
  /** ≥ 6 × the function timeout (AWS's guidance for SQS event sources). */
  visibilityTimeoutSeconds: number;
  /**
   * Every receive the retry schedule can allow within the lifetime (delays at their shortest), plus
   * `crashAllowance` receives for invocations that died without deciding. Every receive that does not end a job is
   * postponed on that one schedule: a failed attempt, a record handed back without an attempt (too little time
   * left, aborted before its commit point, a claim that failed), and a done job whose outcome event is still
   * unpublished. So only receives that end in a crash (or whose postponement itself failed: they come back after the
   * visibility timeout) fall outside the schedule, and the allowance covers them. The handler knows the count
   * (MAX_RECEIVE_COUNT) and gives a job up on its last receive, with its reason and email.failed; only a job whose
   * last invocation died reaches the DLQ through the redrive policy, read there as "crashed".
   */
  maxReceiveCount: number;
  /** Source retention: the lifetime plus a day's margin, at least 4 days (the SQS default). */
  retentionSeconds: number;
  /** DLQ retention: 14 days, the maximum, longer than the source's (expiry counts from the first enqueue). */
  deadLetterRetentionSeconds: number;
};

export function deriveQueueSettings(settings: SystemSettings): QueueSettings {
  const maxReceiveCount = Math.min(1000, maxAttemptsWithinLifetime(settings.retry) + settings.crashAllowance);
  return {
    visibilityTimeoutSeconds: 6 * settings.functionTimeoutSeconds,
    maxReceiveCount,
    retentionSeconds: Math.min(14 * 86_400 - 3600, Math.max(4 * 86_400, settings.retry.lifetimeSeconds + 86_400)),
    deadLetterRetentionSeconds: 14 * 86_400,
  };
}

/** Lists every problem with a set of settings (empty when valid). */
export function validateSettings(settings: SystemSettings): string[] {
  const problems: string[] = [];
  const range = (name: string, value: number, min: number, max: number) => {
    if (!Number.isInteger(value) || value < min || value > max)
      problems.push(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  };
  range('batchSize', settings.batchSize, 1, 10_000);
  range('maxBatchingWindowSeconds', settings.maxBatchingWindowSeconds, 0, 300);
  if (settings.batchSize > 10 && settings.maxBatchingWindowSeconds < 1)
    problems.push('batchSize above 10 needs maxBatchingWindowSeconds of at least 1');
  range('maxConcurrency', settings.maxConcurrency, 2, 1000);
  range('functionTimeoutSeconds', settings.functionTimeoutSeconds, 10, 900);
  range('memorySizeMb', settings.memorySizeMb, 128, 10_240);
  range('smtpConnections', settings.smtpConnections, 1, 100);
  range('maxInFlight', settings.maxInFlight, 0, 10_000);
  range('retry.baseDelaySeconds', settings.retry.baseDelaySeconds, 1, 43_200);
  range('retry.maxDelaySeconds', settings.retry.maxDelaySeconds, settings.retry.baseDelaySeconds, 43_200);
  range('retry.lifetimeSeconds', settings.retry.lifetimeSeconds, 60, 13 * 86_400);
  range('crashAllowance', settings.crashAllowance, 1, 100);
  range('maxMessageSizeBytes', settings.maxMessageSizeBytes, 1024, 1024 * 1024);
  range('pollRateMinutes', settings.pollRateMinutes, 1, 60);
  range('pollerTimeoutSeconds', settings.pollerTimeoutSeconds, 10, 900);
  if (6 * settings.functionTimeoutSeconds > 43_200)
    problems.push('functionTimeoutSeconds × 6 must fit the 12-hour SQS visibility limit');
  if (maxAttemptsWithinLifetime(settings.retry) + settings.crashAllowance > 1000) {
    problems.push(
      'retry schedule allows more attempts than maxReceiveCount can hold (1000); raise retry.baseDelaySeconds or lower retry.lifetimeSeconds',
    );
  }
  return problems;
}
