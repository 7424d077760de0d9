import { setMaxListeners } from 'node:events';
import { AttemptAbortedError } from './errors.js';

/**
 * The time one attempt has, derived from the invocation's remaining time. Two moments matter:
 *
 * - `commitBy`: the last moment to commit a send (the final '.' of SMTP DATA, the SES request). `signal` aborts
 *   everything not yet committed then: waits for memory, the rate limiter, S3 and DynamoDB calls, an SMTP dialogue
 *   before '.' (its connection is dropped, so nothing is sent).
 * - `finishBy`: the last moment to wait for the answer to a committed send and to record it. `finishSignal` aborts
 *   what is still running then; the handler answers right after, with nothing left running.
 *
 * `commitBy` = deadline − margin, `finishBy` = deadline − finish reserve (reserve < margin): the window between them
 * is what a relay gets to answer '.', the reserve what the completion write and the outcome events get.
 */
export type AttemptBudget = {
  commitBy: number;
  finishBy: number;
  signal: AbortSignal;
  finishSignal: AbortSignal;
  /** Ends publishing the outcome events, halfway between `finishBy` and the answer: time is left to keep them. */
  publishSignal: AbortSignal;
  /** Aborts whatever is left (keeping unpublished events, postponing records) just before Lambda's own deadline. */
  answerSignal: AbortSignal;
};

/** Time kept between the last call of an invocation and Lambda's deadline, for the answer itself, ms. */
const ANSWER_RESERVE_MS = 250;

/** The two signals a transport honours: abort before the commit point, give up waiting for the answer after it. */
export type SendBudget = Pick<AttemptBudget, 'signal' | 'finishSignal'>;

/** Splits an invocation's remaining time into the budget its attempts share. */
export function toAttemptBudget(facts: {
  nowMs: number;
  remainingMs: number;
  marginMs: number;
  finishReserveMs: number;
}): AttemptBudget {
  const commitIn = Math.max(0, facts.remainingMs - facts.marginMs);
  const finishIn = Math.max(commitIn, facts.remainingMs - facts.finishReserveMs);
  const answerIn = Math.max(finishIn, facts.remainingMs - ANSWER_RESERVE_MS);
  const budget = {
    commitBy: facts.nowMs + commitIn,
    finishBy: facts.nowMs + finishIn,
    signal: AbortSignal.timeout(commitIn),
    finishSignal: AbortSignal.timeout(finishIn),
    publishSignal: AbortSignal.timeout((finishIn + answerIn) / 2),
    answerSignal: AbortSignal.timeout(answerIn),
  };
  // Every attempt of the batch, and each wait within it, listens to these: no listener limit is meaningful here.
  for (const signal of [budget.signal, budget.finishSignal, budget.publishSignal, budget.answerSignal])
    setMaxListeners(0, signal);
  return budget;
}

/** Rejects with the signal's reason once it aborts; `promise` itself is left to settle (its rejection is handled). */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  promise.catch(() => {});
  if (signal.aborted) return Promise.reject(toAbortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(toAbortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

function toAbortError(signal: AbortSignal): Error {
  return new AttemptAbortedError('the attempt ran out of its budget', { cause: signal.reason });
}

/**
 * The signal of the claim and completion writes around a send: it aborts at the commit deadline while the send has
 * not started (a claim that comes too late is given up), and at the answer deadline once it has.
 */
export function claimPhaseSignal(budget: AttemptBudget): { signal: AbortSignal; started(): void } {
  const controller = new AbortController();
  let started = false;
  const abort = () => controller.abort();
  budget.signal.addEventListener('abort', () => started || abort(), { once: true });
  budget.answerSignal.addEventListener('abort', abort, { once: true });
  return {
    signal: controller.signal,
    started() {
      started = true;
    },
  };
}
