import type { SendOutcome } from './send-outcome.js';

/** Base of the dispatch path's own errors. */
class DispatchError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DispatchError';
  }
}

/** The job can never be sent as it is (bad reference, unreadable attachment). Not retryable. */
export class InvalidJobError extends DispatchError {
  readonly reason: string;

  constructor(reason: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvalidJobError';
    this.reason = reason;
  }
}

/**
 * The attempt did not send and should be retried later (`retry`, `throttled`, `blocked`). Thrown out of the
 * idempotent section so that its in-progress record is released. Retryable.
 */
export class SendDeferredError extends DispatchError {
  readonly outcome: SendOutcome;

  constructor(outcome: SendOutcome) {
    super(`send deferred: ${outcome.action} (${outcome.reason})`);
    this.name = 'SendDeferredError';
    this.outcome = outcome;
  }
}

/** The attempt's budget ran out before it committed the send (see attempt-budget): nothing went out. Retryable. */
export class AttemptAbortedError extends DispatchError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AttemptAbortedError';
  }
}

/** Asks the batch processor to report a record as failed, after its visibility has been set. Retryable. */
export class RetryLaterError extends DispatchError {
  readonly delaySeconds: number;

  constructor(message: string, delaySeconds: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RetryLaterError';
    this.delaySeconds = delaySeconds;
  }
}

/** A configuration problem, listing every bad variable at once. Not retryable: the deployment must be fixed. */
export class ConfigError extends DispatchError {
  readonly problems: string[];

  constructor(problems: string[]) {
    super(`invalid configuration:\n- ${problems.join('\n- ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}
