import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { Tracer } from '@aws-lambda-powertools/tracer';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import type { Context, SNSEvent } from 'aws-lambda';
import { publishAll, type DispatchEvent, type EventPublisher } from '#core/events.js';
import type { ReportKeyring } from '#core/message-id.js';
import { PollerMetrics, ReportMetrics } from '#core/metric-names.js';
import { classifyFailure } from '#inbound/bounce-reasons.js';
import {
  checkSesOrigin,
  handleSesEvent,
  parseSesEventRecord,
  type SesEventRecord,
  type SesSuppression,
} from '#core/ses-events.js';
import { countedReports } from '#core/reputation.js';
import { createReportReputation, type ReportReputationDeps } from './report-reputation.js';
import { toMaskedRecipients, type JobStatusStore } from '#core/job-status.js';
import { unscopeJobKey } from '#core/tenant.js';

type HandledSesEvent = Extract<Awaited<ReturnType<typeof handleSesEvent>>, { handled: true }>;

export type SesEventsDeps = {
  logger: Logger;
  metrics: Metrics;
  tracer?: Tracer;
  /** The configuration set's event topic and our account: anything from elsewhere is refused. */
  expected: { topicArn: string; accountId: string };
  reportKeys: () => Promise<ReportKeyring>;
  /** The same suppression store the IMAP path writes to. */
  suppress: (entry: SesSuppression) => Promise<unknown>;
  events: EventPublisher;
  /** Counts verified hard bounces and complaints per tenant and pauses tenants over the limits. */
  reputation?: ReportReputationDeps;
  clock?: () => number;
  /** Job status: a verified bounce or complaint marks its job (see job-status); without it, nothing is written. */
  jobStatus?: JobStatusStore;
};

export type SesEventsSummary = {
  handled: number;
  suppressed: number;
  unverified: number;
  refused: number;
  ignored: number;
};

/** A verified bounce or complaint turns its job `bounced` or `complained` (recipients masked). */
async function reportToJob(status: JobStatusStore, record: SesEventRecord, outcome: HandledSesEvent) {
  // The key the job's record is scoped by: its tenant's status, not another's with the same bare key.
  const key = outcome.verification.verified ? outcome.verification.key : undefined;
  if (typeof key !== 'string' || (record.eventType !== 'Bounce' && record.eventType !== 'Complaint')) return;
  const named =
    record.eventType === 'Bounce'
      ? (record.bounce?.bouncedRecipients ?? []).map((r) => ({ address: r.emailAddress, status: r.status ?? 'failed' }))
      : (record.complaint?.complainedRecipients ?? []).map((r) => ({ address: r.emailAddress, status: 'complained' }));
  const recipients = toMaskedRecipients(
    named.flatMap((r) => (typeof r.address === 'string' ? [{ recipient: r.address, status: r.status }] : [])),
  );
  await status.report(unscopeJobKey(key), record.eventType === 'Bounce' ? 'bounce' : 'complaint', recipients);
}

/**
 * Builds the handler of the SES event consumer: each notification from the configuration set's topic is checked for
 * origin, tied to its job and turned into the events and suppressions the IMAP poller makes for the same facts.
 * Refused and malformed notifications are logged and counted, never retried; a failure to suppress or publish is
 * thrown, so that Lambda retries the invocation (suppressing is idempotent, event ids are derived from the event).
 */
export function createSesEventsHandler(deps: SesEventsDeps) {
  const { logger, metrics } = deps;
  const reputation = deps.reputation
    ? createReportReputation(deps.reputation, { logger, metrics, events: deps.events }, deps.clock ?? Date.now)
    : undefined;

  const lambdaHandler = async (event: SNSEvent, _context: Context): Promise<SesEventsSummary> => {
    const summary: SesEventsSummary = { handled: 0, suppressed: 0, unverified: 0, refused: 0, ignored: 0 };
    const outgoing: DispatchEvent[] = [];
    for (const record of event.Records ?? []) {
      const parsed = parseSesEventRecord(record.Sns?.Message ?? '');
      const origin = { topicArn: record.Sns?.TopicArn ?? '' };
      const refusal = 'invalid' in parsed ? parsed.invalid : checkSesOrigin(origin, parsed, deps.expected);
      if (refusal) {
        summary.refused += 1;
        metrics.addMetric(ReportMetrics.sesEventsRefused, MetricUnit.Count, 1);
        const snsMessageId = record.Sns?.MessageId;
        logger.warn('SES notification refused', { reason: refusal, topicArn: origin.topicArn, snsMessageId });
        continue;
      }
      if ('invalid' in parsed) continue;
      const outcome = await handleSesEvent(parsed, await deps.reportKeys(), classifyFailure);
      if (!outcome.handled) {
        summary.ignored += 1;
        logger.info('SES event ignored', { reason: outcome.reason, sesMessageId: parsed.mail.messageId });
        continue;
      }
      for (const entry of outcome.suppressions) await deps.suppress(entry);
      reputation?.note(outcome.verification.tenant, countedReports(outcome.suppressions));
      if (deps.jobStatus) await reportToJob(deps.jobStatus, parsed, outcome);
      summary.handled += 1;
      summary.suppressed += outcome.suppressions.length;
      metrics.addMetric(ReportMetrics.sesEvents, MetricUnit.Count, 1);
      if (outcome.eventType === 'Bounce') metrics.addMetric(PollerMetrics.bounces, MetricUnit.Count, 1);
      if (outcome.eventType === 'Complaint') metrics.addMetric(PollerMetrics.complaints, MetricUnit.Count, 1);
      const suppressed = outcome.suppressions.length;
      if (suppressed > 0) metrics.addMetric(PollerMetrics.suppressed, MetricUnit.Count, suppressed);
      if (!outcome.verification.verified) {
        summary.unverified += 1;
        metrics.addMetric(ReportMetrics.unverified, MetricUnit.Count, 1);
      }
      logger.info('SES event handled', {
        eventType: outcome.eventType,
        sesMessageId: parsed.mail.messageId,
        verified: outcome.verification.verified,
        verification: outcome.verification.reason,
        suppressed: outcome.suppressions.length,
      });
      outgoing.push(...outcome.events);
    }
    await reputation?.flush();
    const failed = await publishAll(deps.events, outgoing);
    if (failed.length > 0) throw new Error(`${failed.length} event(s) not published: ${failed[0]?.error ?? ''}`);
    return summary;
  };

  const handler = middy(lambdaHandler)
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics));
  return deps.tracer ? handler.use(captureLambdaHandler(deps.tracer)) : handler;
}
