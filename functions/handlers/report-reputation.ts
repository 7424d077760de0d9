import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { createReputationStore } from '#aws/reputation-store.js';
import type { ReputationConfig } from '#functions/config.js';
import { publishAll, type EventPublisher } from '#core/events.js';
import { ReputationMetrics } from '#core/metric-names.js';
import {
  createReputationLedger,
  toTenantPausedEvent,
  type CountedReport,
  type ReputationPolicy,
  type ReputationStore,
} from '#core/reputation.js';

/** Where the report side (the IMAP poller, the SES event consumer) counts hard bounces and complaints per tenant. */
export type ReportReputationDeps = { store: ReputationStore; policy: ReputationPolicy };

/** The report side's guardrail from its configuration; undefined when the guardrail is off. */
export const buildReportReputation = (
  config: Pick<ReputationConfig, 'table' | 'policy'> | undefined,
  documents: DynamoDBDocumentClient,
): ReportReputationDeps | undefined =>
  config && { store: createReputationStore(documents, config.table, config.policy), policy: config.policy };

/**
 * The report side of the reputation guardrail. A verified report counts against the tenant of the job it is about,
 * once per address it suppresses: a hard bounce of the recipient's own address, or a complaint (the same reports SES
 * counts; a bounce that blames our side counts for no tenant). Each job, kind and address counts once: a report
 * mailed back again by its recipient, republished after a crash or redelivered by SNS adds nothing. `flush` writes
 * the counts (one write per tenant), pauses the tenants whose window crosses a limit, and publishes `tenant.paused`
 * for each. Never throws.
 */
export function createReportReputation(
  deps: ReportReputationDeps,
  observability: { logger: Logger; metrics: Metrics; events: EventPublisher },
  clock: () => number,
) {
  const { logger, metrics, events } = observability;
  const ledger = createReputationLedger({ store: deps.store, policy: deps.policy, clock });
  return {
    /** Counts a verified report's suppressed addresses against its job's tenant, each once. */
    note(tenant: string | undefined, reports: CountedReport[] | undefined): void {
      if (tenant === undefined || !reports || reports.length === 0) return;
      ledger.noteReports(tenant, reports);
    },

    async flush(): Promise<void> {
      const { paused, error } = await ledger.flush();
      if (error !== undefined) {
        metrics.addMetric(ReputationMetrics.countersNotWritten, MetricUnit.Count, 1);
        logger.warn('reputation counters not written; kept for the next flush', { error: error as Error });
      }
      for (const pause of paused) {
        metrics.addMetric(ReputationMetrics.tenantsPaused, MetricUnit.Count, 1);
        logger.error('tenant paused: its mail is held until an operator resumes it', { ...pause });
      }
      const failed = await publishAll(
        events,
        paused.map((pause) => toTenantPausedEvent(pause)),
      ).catch((error: Error) => paused.map(() => ({ error: error.message })));
      // The pause itself is written: it holds the tenant's jobs whether or not its event went out.
      for (const f of failed) logger.error('tenant.paused event not published', { error: f.error });
    },
  };
}
