import { randomUUID } from 'node:crypto';
import type { ConnectionOptions } from 'node:tls';
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { Tracer } from '@aws-lambda-powertools/tracer';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import type { CredentialSource, LoginCredentials } from '#core/credential-source.js';
import { publishAll, type EventPublisher } from '#core/events.js';
import { PollerMetrics, ReportMetrics } from '#core/metric-names.js';
import { syncMailbox, type MailboxStateStore, type SyncDeps, type SyncResult } from '#core/sync-mailbox.js';
import type { PollerConfig, PolledMailbox } from '#functions/config.js';
import { openImapSession } from '#imap/imap-session.js';
import { parseInbound } from '#imap/parse-inbound.js';

export type PollMailboxDeps = {
  config: PollerConfig;
  logger: Logger;
  metrics: Metrics;
  tracer?: Tracer;
  state: MailboxStateStore;
  events: EventPublisher;
  suppress: (entry: { address: string; reason: 'hard-bounce' | 'complaint'; source: string; status?: string }) => Promise<void>;
  storeRaw: SyncDeps['storeRaw'];
  /** Verifies bounces and complaints (see verify-report); without it, no report suppresses anyone. */
  verifyReport?: SyncDeps['verifyReport'];
  credentialsFor: (mailbox: PolledMailbox) => CredentialSource<LoginCredentials>;
  /** TLS trust for a private IMAP server (the local twin). */
  tls?: ConnectionOptions;
  clock?: () => number;
};

export type PollSummary = Record<string, { status: SyncResult['status'] | 'failed'; processed: number; error?: string }>;

/**
 * Builds the scheduled handler of the poller: each mailbox is synced in parallel under its own lease, and the run
 * idles (bounded) until shortly before the next scheduled run or the deadline, whichever is first.
 */
export function createPollMailboxHandler(deps: PollMailboxDeps) {
  const { config, logger, metrics } = deps;
  const clock = deps.clock ?? Date.now;
  // Mailboxes whose last login was refused: their next run reads the secret afresh, so a rotation takes effect.
  const refreshCredentials = new Set<string>();

  // A run can idle for most of a minute: publish its counts as it goes rather than only at the end.
  let lastFlush = clock();
  const flushEvery = (ms: number) => {
    if (clock() - lastFlush < ms || !metrics.hasStoredMetrics()) return;
    lastFlush = clock();
    metrics.publishStoredMetrics();
  };

  const pollOne = async (mailbox: PolledMailbox, stopAtMs: number, idleUntilMs: number): Promise<PollSummary[string]> => {
    const credentials = deps.credentialsFor(mailbox);
    let lagMs = 0;
    const refresh = refreshCredentials.delete(mailbox.id);
    try {
      const result = await syncMailbox(
        {
          state: deps.state,
          openSession: () =>
            openImapSession({ host: mailbox.host, port: mailbox.port, security: mailbox.security, mailbox: mailbox.mailbox, tls: deps.tls }, {
              get: () => credentials.get({ refresh }),
            }, (error) => logger.warn('IMAP connection error', { mailbox: mailbox.id, error: error.message })),
          parse: parseInbound,
          storeRaw: deps.storeRaw,
          publishBatch: (events) => publishAll(deps.events, events),
          suppress: deps.suppress,
          verifyReport: deps.verifyReport,
          clock,
          onMessage: (facts) => {
            lagMs = Math.max(lagMs, facts.lagMs);
            metrics.addMetric(PollerMetrics.processed, MetricUnit.Count, 1);
            if (facts.kind === 'bounce') metrics.addMetric(PollerMetrics.bounces, MetricUnit.Count, 1);
            if (facts.kind === 'complaint') metrics.addMetric(PollerMetrics.complaints, MetricUnit.Count, 1);
            if (facts.suppressed > 0) metrics.addMetric(PollerMetrics.suppressed, MetricUnit.Count, facts.suppressed);
            if (facts.verified === false) metrics.addMetric(ReportMetrics.unverified, MetricUnit.Count, 1);
            flushEvery(5000);
          },
          log: (level, message, facts) => logger[level](message, facts),
        },
        { mailboxId: mailbox.id, runId: randomUUID(), stopAtMs, idleUntilMs },
      );
      if (result.status === 'busy') {
        metrics.addMetric(PollerMetrics.leaseBusy, MetricUnit.Count, 1);
        logger.info('mailbox busy: another run holds its lease', { mailbox: mailbox.id });
      } else {
        metrics.addMetric(PollerMetrics.polled, MetricUnit.Count, 1);
        if (result.processed > 0) metrics.addMetric(PollerMetrics.lag, MetricUnit.Seconds, Math.round(lagMs / 1000));
        logger.info('mailbox synced', { mailbox: mailbox.id, processed: result.processed, skippedDuplicates: result.skippedDuplicates, resynchronised: result.resynchronised, lastUid: result.checkpoint?.lastUid });
      }
      return { status: result.status, processed: result.processed };
    } catch (error) {
      const e = error as Error & { authentication?: boolean };
      if (e.authentication) refreshCredentials.add(mailbox.id);
      metrics.addMetric(PollerMetrics.pollFailed, MetricUnit.Count, 1);
      logger.error('mailbox poll failed', { mailbox: mailbox.id, error: e.message, authentication: e.authentication ?? false });
      return { status: 'failed', processed: 0, error: e.message };
    }
  };

  const lambdaHandler = async (_event: unknown, context: Context): Promise<PollSummary> => {
    const now = clock();
    const stopAtMs = now + context.getRemainingTimeInMillis() - config.stopMarginMs;
    // Hand over to the next scheduled run: stop idling shortly before it starts.
    const idleUntilMs = config.idle ? Math.min(stopAtMs, now + config.pollIntervalSeconds * 1000 - config.stopMarginMs) : 0;
    const results = await Promise.all(config.mailboxes.map(async (m) => [m.id, await pollOne(m, stopAtMs, idleUntilMs)] as const));
    return Object.fromEntries(results);
  };

  const handler = middy(lambdaHandler).use(injectLambdaContext(logger, { resetKeys: true })).use(logMetrics(metrics));
  return deps.tracer ? handler.use(captureLambdaHandler(deps.tracer)) : handler;
}
