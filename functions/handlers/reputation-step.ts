import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import type { SQSRecord } from 'aws-lambda';
import { ReputationMetrics } from '#core/metric-names.js';
import {
  createPauseCheck,
  createReputationLedger,
  type ReputationPolicy,
  type ReputationStore,
  type TenantPause,
} from '#core/reputation.js';
import type { SendOutcome } from '#core/send-outcome.js';
import type { JobHold } from './job-hold.js';

/** The dispatcher's side of the reputation guardrail: pause checks before routing, sent counts after delivery. */
export type ReputationDeps = {
  store: ReputationStore;
  policy: ReputationPolicy;
  /** How long an instance trusts a tenant's standing, ms: at most one read per tenant per this. @default 5000 */
  pauseCacheMs?: number;
  /** Holds a paused tenant's jobs on the queue (see job-hold): no attempt, no lifetime spent while paused. */
  hold: JobHold;
  /** How long a held job waits before its tenant's standing is looked at again, seconds. @default 300 */
  pauseRecheckSeconds?: number;
};

/**
 * Builds the dispatcher's reputation step. `pauseOf` answers whether a tenant is paused (cached, and shared by every
 * record of a batch that asks at once); `noteSent` counts a delivered job's accepted recipients in memory, and
 * `flush` writes them at the end of the batch: one atomic ADD per tenant per batch, never one per message.
 */
export function createReputationStep(
  deps: ReputationDeps,
  observability: { logger: Logger; metrics: Metrics },
  clock: () => number,
) {
  const { logger, metrics } = observability;
  const pauseCheck = createPauseCheck({ store: deps.store, cacheMs: deps.pauseCacheMs ?? 5000, clock });
  const ledger = createReputationLedger({ store: deps.store, policy: deps.policy, clock });
  const recheckMs = (deps.pauseRecheckSeconds ?? 300) * 1000;
  return {
    /** The pause holding this tenant's jobs, if any. A standing that cannot be read does not stop the mail. */
    async pauseOf(tenant: string, record: SQSRecord): Promise<TenantPause | undefined> {
      let pause: TenantPause | undefined;
      try {
        pause = await pauseCheck(tenant);
      } catch (error) {
        logger.warn('tenant standing unavailable; sending without it', { tenant, error: error as Error });
        return undefined;
      }
      if (!pause) return undefined;
      metrics.addMetric(ReputationMetrics.heldJobs, MetricUnit.Count, 1);
      logger.info('job held: tenant paused', { tenant, reason: pause.reason, sqsMessageId: record.messageId });
      return pause;
    },

    /**
     * Holds a paused tenant's job on the queue until the next recheck, as a new message that keeps its tenant and
     * spends neither an attempt nor its lifetime: a pause of any length never dead-letters a job. Resolves with the
     * time it is looked at again.
     */
    async hold(record: SQSRecord, tenant: string): Promise<number> {
      const untilMs = clock() + recheckMs;
      await deps.hold.hold(record, untilMs, tenant);
      return untilMs;
    },

    /** Counts the recipients a delivered job reached, for its tenant's bounce and complaint rates. */
    noteSent(tenant: string, outcome: SendOutcome | undefined): void {
      const sent = (outcome?.recipients ?? []).filter((r) => r.status === 'accepted').length;
      if (sent > 0) ledger.note(tenant, { sent });
    },

    /** Writes the batch's counts (one write per tenant); a failure is logged and counted, the counts kept. */
    async flush(): Promise<void> {
      const { error } = await ledger.flush();
      if (error === undefined) return;
      metrics.addMetric(ReputationMetrics.countersNotWritten, MetricUnit.Count, 1);
      logger.warn('reputation counters not written; kept for the next batch', { error: error as Error });
    },
  };
}
