import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import type { SQSRecord } from 'aws-lambda';
import type { AttemptBudget } from '#core/attempt-budget.js';
import type { EmailJob } from '#core/email-job.js';
import { createEvent, EventTypes } from '#core/events.js';
import { decideSchedule, MAX_SEND_AT_AHEAD_SECONDS, type JobStatusStore } from '#core/job-status.js';
import { DispatchMetrics } from '#core/metric-names.js';
import type { OutboxEntry } from './dispatch-policy.js';
import type { JobHold } from './job-hold.js';

/** What the schedule step needs: the job status table, the hold, and the limit on `sendAt`. */
export type ScheduleDeps = {
  status: JobStatusStore;
  hold: JobHold;
  /** The furthest ahead `sendAt` may be, seconds. @default 72 hours */
  limitSeconds?: number;
};

/**
 * How long an attempt's claim on a job keeps a cancel out, past the attempt's finish deadline: the invocation has
 * answered by then, and the producer's clock (which a cancel compares against) may be this far off.
 */
const LEASE_MARGIN_MS = 60_000;

/** What the step decided: go on to send, the record is done (held or cancelled), or the job is refused. */
type ScheduleOutcome = 'proceed' | 'done' | { refused: string };

/**
 * The dispatch handler's schedule step, right after a job is parsed: a job due later is held (see job-hold) and
 * marked scheduled; a cancelled job is dropped with an `email.cancelled` event and never reaches a transport; a job
 * due now is claimed (`sending`) in the status table by a conditional write that a cancel cannot pass, and the
 * claim a cancel wrote first stops it. `sendAt` beyond the limit is refused with the reason.
 */
export function createScheduleStep(
  deps: ScheduleDeps,
  observability: { logger: Logger; metrics: Metrics },
  clock: () => number,
) {
  const { logger, metrics } = observability;
  const limitSeconds = deps.limitSeconds ?? MAX_SEND_AT_AHEAD_SECONDS;

  const dropCancelled = (record: SQSRecord, job: EmailJob, tenant: string, outbox: OutboxEntry[]): ScheduleOutcome => {
    metrics.addMetric(DispatchMetrics.cancelled, MetricUnit.Count, 1);
    logger.info('job cancelled: not sent', { sqsMessageId: record.messageId });
    outbox.push({ event: createEvent(EventTypes.cancelled, { idempotencyKey: job.idempotencyKey, tenant }), record });
    return 'done';
  };

  return {
    async step(
      record: SQSRecord,
      job: EmailJob,
      tenant: string,
      budget: Pick<AttemptBudget, 'finishBy'>,
      outbox: OutboxEntry[],
    ): Promise<ScheduleOutcome> {
      const ref = { tenant, idempotencyKey: job.idempotencyKey };
      const decision = decideSchedule(job.sendAt, clock(), limitSeconds);
      if (decision.action === 'refuse') return { refused: decision.detail };
      if (decision.action === 'hold') {
        // One cheap read per hop drops a cancelled job early; the claim below is what makes a cancel safe.
        const known = await deps.status.read(ref);
        if (known?.state === 'cancelled') return dropCancelled(record, job, tenant, outbox);
        if (known?.state !== 'scheduled' && (await deps.status.hold(ref, job.sendAt as string)) === 'cancelled')
          return dropCancelled(record, job, tenant, outbox);
        const { delaySeconds } = await deps.hold.hold(record, decision.untilMs, tenant);
        metrics.addMetric(DispatchMetrics.held, MetricUnit.Count, 1);
        logger.info('job held until its sendAt', { sqsMessageId: record.messageId, sendAt: job.sendAt, delaySeconds });
        return 'done';
      }
      const attempt = Number(record.attributes.ApproximateReceiveCount) || 1;
      const claim = await deps.status.claim(ref, budget.finishBy + LEASE_MARGIN_MS, attempt);
      if (claim === 'cancelled') return dropCancelled(record, job, tenant, outbox);
      return 'proceed';
    },
  };
}
