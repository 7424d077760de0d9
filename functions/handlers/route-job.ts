import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import type { SQSRecord } from 'aws-lambda';
import type { TransportName } from '#core/email-job.js';
import { DispatchMetrics } from '#core/metric-names.js';
import type { SendOutcome } from '#core/send-outcome.js';
import { LIFETIME_START_ATTRIBUTE, type JobRequeue, type SendRouter } from '#core/send-router.js';
import { tenantOf, type TenantJob } from '#core/tenant-identity.js';

/** Where the routing step sends a job: over a transport, or back on the queue (the record is then done). */
type Routed = { transport: TransportName } | 'postponed';

/** The breakers and failover in front of the transports, and where a job waits while its transport is blocked. */
export type RoutingDeps = { router: SendRouter; requeue: JobRequeue };

/** The most a requeue moves a start past its own send: SQS's longest delay, and a minute of clock skew. */
const MAX_CARRIED_LEAD_MS = (900 + 60) * 1000;

/**
 * When a job's retry lifetime started: carried by a requeued job, else the queue's first enqueue time. A requeue
 * carries at most its send time plus its delay; a later start (any producer can set message attributes) would
 * let a job outlive its lifetime, and is ignored.
 */
export function lifetimeStartOf(record: SQSRecord, fallbackMs: number): number {
  const sent = Number(record.attributes.SentTimestamp) || fallbackMs;
  const carried = Number(record.messageAttributes?.[LIFETIME_START_ATTRIBUTE]?.stringValue);
  if (Number.isFinite(carried) && carried > 0 && carried <= sent + MAX_CARRIED_LEAD_MS) return carried;
  return sent;
}

/**
 * The dispatch handler's routing step: asks the router where a job goes, and when its transport's breaker is open
 * (and no failover can take it) puts it back on the queue until the probe is due, without an attempt and without
 * spending its lifetime or receive count. `settle` feeds each attempt's outcome back to the breakers.
 */
export function createRouteStep(
  routing: RoutingDeps,
  observability: { logger: Logger; metrics: Metrics },
  clock: () => number,
  random: () => number,
) {
  const { logger, metrics } = observability;
  return {
    /** The transport to send over, or `postponed` when the job was requeued (the record is done). */
    async route(record: SQSRecord, job: TenantJob, requested: TransportName): Promise<Routed> {
      let route: Awaited<ReturnType<SendRouter['route']>>;
      try {
        route = await routing.router.route(requested);
      } catch (error) {
        // The shared state cannot be read: send as if closed; a blocked outcome will still be seen per job.
        logger.warn('circuit breaker state unavailable; sending without it', { error: error as Error });
        return { transport: requested };
      }
      if ('postponeMs' in route) {
        // Back shortly after the probe, spread so that the postponed jobs do not return as one burst.
        const delaySeconds = Math.min(900, Math.ceil(route.postponeMs / 1000) + 1 + Math.floor(random() * 5));
        const lifetimeStartMs = lifetimeStartOf(record, clock()) + delaySeconds * 1000;
        await routing.requeue.requeue(record.body, { delaySeconds, lifetimeStartMs, tenant: tenantOf(job) });
        metrics.addMetric(DispatchMetrics.postponed, MetricUnit.Count, 1);
        metrics.addMetric(DispatchMetrics.circuitOpen, MetricUnit.Count, 1);
        const facts = { transport: route.transport, delaySeconds, sqsMessageId: record.messageId };
        logger.info('job postponed: transport circuit open', facts);
        return 'postponed';
      }
      if (route.fallback) metrics.addMetric(DispatchMetrics.sentOnFallback, MetricUnit.Count, 1);
      if (route.primaryOpen) metrics.addMetric(DispatchMetrics.circuitOpen, MetricUnit.Count, 1);
      if (route.probe) logger.info('circuit probe', { transport: route.transport });
      return { transport: route.transport };
    },

    /** Reports an attempt's outcome to the breakers; never throws. */
    async settle(transport: TransportName, outcome: SendOutcome, attemptStartedAtMs?: number): Promise<void> {
      const change = await routing.router.settle(transport, outcome, attemptStartedAtMs);
      if (change === 'opened') {
        const facts = { transport, reason: outcome.reason, detail: outcome.detail };
        logger.error('circuit opened: the transport is blocked by our setup', facts);
      }
      if (change === 'closed') logger.info('circuit closed: the transport delivers again', { transport });
    },
  };
}
