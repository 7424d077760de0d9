import type { SQSRecord } from 'aws-lambda';
import type { JobRequeue } from '#core/send-router.js';
import { lifetimeStartOf } from './route-job.js';

/** SQS's longest message delay, seconds: one hop of a hold. */
const MAX_HOP_SECONDS = 900;

/** Holds a job on the jobs queue until a time, spending neither its attempts nor its retry lifetime. */
export type JobHold = {
  /**
   * Puts the record's job back on the queue as a new message, delayed until `untilMs` or by one hop (at most 900 s),
   * whichever is sooner; the record is then done (the event source deletes it). The new message carries the
   * `tenant` the dispatcher resolved (attribute and MessageGroupId), sent by the dispatcher's own role, so the tenant
   * step accepts it as that tenant again. Resolves with the hop's delay.
   */
  hold(record: SQSRecord, untilMs: number, tenant: string): Promise<{ delaySeconds: number }>;
};

/**
 * A hold made of hops: each is a new message with `DelaySeconds` (≤ 900 s) carrying the job's lifetime start moved
 * on by the hop, and the received one is deleted. A new message starts a new receive count and a new retention
 * period, and a delayed message is not in flight (the ~120,000 in-flight limit of a standard queue is not touched):
 * a job can wait any time, and waits of any length leave maxReceiveCount, the retention and the retry lifetime as
 * they were. Used by scheduled sends and by a paused tenant's jobs.
 */
export function createJobHold(deps: {
  requeue: JobRequeue;
  clock?: () => number;
  /** The longest hop, seconds. @default 900 */
  maxHopSeconds?: number;
}): JobHold {
  const clock = deps.clock ?? Date.now;
  const maxHop = Math.min(MAX_HOP_SECONDS, deps.maxHopSeconds ?? MAX_HOP_SECONDS);
  return {
    async hold(record, untilMs, tenant) {
      const now = clock();
      const delaySeconds = Math.max(1, Math.min(maxHop, Math.ceil((untilMs - now) / 1000)));
      // The wait is not the job's: its lifetime starts that much later (route-job reads the attribute back).
      const lifetimeStartMs = lifetimeStartOf(record, now) + delaySeconds * 1000;
      await deps.requeue.requeue(record.body, { delaySeconds, lifetimeStartMs, tenant });
      return { delaySeconds };
    },
  };
}
