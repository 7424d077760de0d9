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
import { TokenError, type CredentialSource, type MailLogin } from '#core/credential-source.js';
import type { EventPublisher } from '#core/events.js';
import { MAILBOX_DIMENSION, PollerMetrics, ReportMetrics } from '#core/metric-names.js';
import type { Suppress } from '#core/mailbox/classify-and-suppress.js';
import type { MailboxStateStore } from '#core/mailbox/ports.js';
import { publishFitting } from '#core/mailbox/publish-fitting.js';
import { syncMailbox, type SyncDeps, type SyncResult } from '#core/mailbox/sync-mailbox.js';
import type { PollerConfig, PolledMailbox } from '#functions/config.js';
import { ImapError, openImapSession } from '#imap/imap-session.js';
import { openReauthenticatingSession } from '#imap/reauthenticating-session.js';
import { inboundReader } from '#inbound/inbound-reader.js';
import { parseInbound } from '#inbound/parse-inbound.js';
import { createReportReputation, type ReportReputationDeps } from './report-reputation.js';

export type PollMailboxDeps = {
  config: PollerConfig;
  logger: Logger;
  metrics: Metrics;
  tracer?: Tracer;
  state: MailboxStateStore;
  events: EventPublisher;
  suppress: Suppress;
  /** Failures that suppress once they repeat (see repeated-bounces); without it, none does. */
  repeats?: SyncDeps['repeats'];
  storeRaw: SyncDeps['storeRaw'];
  /** Verifies bounces and complaints (see verify-report); without it, no report suppresses anyone. */
  verifyReport?: SyncDeps['verifyReport'];
  /** What each mailbox signs in with: a password, or an access token for its OAuth2 grant. */
  credentialsFor: (mailbox: PolledMailbox) => CredentialSource<MailLogin>;
  /** Counts verified hard bounces and complaints per tenant and pauses tenants over the limits. */
  reputation?: ReportReputationDeps;
  /** TLS trust for a private IMAP server (the local twin). */
  tls?: ConnectionOptions;
  clock?: () => number;
};

export type PollSummary = Record<
  string,
  { status: SyncResult['status'] | 'failed' | 'blocked'; processed: number; error?: string }
>;

/**
 * Whether a failed poll is our setup, for an operator to fix: the token endpoint refused our client or grant
 * (revoked, expired secret, consent or delegation missing), or the server refused the sign-in even with a fresh
 * token or a re-read password.
 */
const isSignInBlocked = (error: unknown): boolean =>
  (error instanceof TokenError && error.action === 'blocked') || (error instanceof ImapError && error.authentication);

/**
 * Builds the scheduled handler of the poller: each mailbox is synced in parallel under its own lease, and the run
 * idles (bounded) until shortly before the next scheduled run or the deadline, whichever is first.
 */
export function createPollMailboxHandler(deps: PollMailboxDeps) {
  const { config, logger, metrics } = deps;
  const clock = deps.clock ?? Date.now;
  // Mailboxes whose last login was refused: their next run reads the secret afresh, so a rotation takes effect.
  const refreshCredentials = new Set<string>();
  const reputation = deps.reputation
    ? createReportReputation(deps.reputation, { logger, metrics, events: deps.events }, clock)
    : undefined;

  // A run can idle for most of a minute: publish its counts as it goes rather than only at the end.
  let lastFlush = clock();
  const flushEvery = (ms: number) => {
    if (clock() - lastFlush < ms || !metrics.hasStoredMetrics()) return;
    lastFlush = clock();
    metrics.publishStoredMetrics();
  };

  /**
   * The mailbox's own heartbeat and lag, with a `Mailbox` dimension, in a metrics blob of their own (flushed at once,
   * so that no other mailbox's counts take the dimension): each mailbox's alarm watches its own heartbeat.
   */
  const emitMailboxMetrics = (mailboxId: string, facts: { lagMs?: number }) => {
    if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
    metrics.addDimension(MAILBOX_DIMENSION, mailboxId);
    metrics.addMetric(PollerMetrics.polled, MetricUnit.Count, 1);
    if (facts.lagMs !== undefined) {
      metrics.addMetric(PollerMetrics.lag, MetricUnit.Seconds, Math.round(facts.lagMs / 1000));
    }
    metrics.publishStoredMetrics();
  };

  const pollOne = async (
    mailbox: PolledMailbox,
    stopAtMs: number,
    idleUntilMs: number,
  ): Promise<PollSummary[string]> => {
    const credentials = deps.credentialsFor(mailbox);
    let lagMs = 0;
    const refresh = refreshCredentials.delete(mailbox.id);
    try {
      const result = await syncMailbox(
        {
          state: deps.state,
          openSession: () =>
            openReauthenticatingSession(
              (signIn) =>
                openImapSession(
                  {
                    host: mailbox.host,
                    port: mailbox.port,
                    security: mailbox.security,
                    mailbox: mailbox.mailbox,
                    tls: deps.tls,
                  },
                  signIn,
                  (error) => logger.warn('IMAP connection error', { mailbox: mailbox.id, error: error.message }),
                ),
              { get: (options) => credentials.get({ refresh: refresh || options?.refresh }) },
              (reason) => logger.info('signing in to the mailbox again', { mailbox: mailbox.id, reason }),
            ),
          parse: parseInbound,
          reader: inboundReader,
          storeRaw: deps.storeRaw,
          publishBatch: (events) => publishFitting(deps.events, events),
          suppress: deps.suppress,
          repeats: deps.repeats,
          verifyReport: deps.verifyReport,
          clock,
          onMessage: (facts) => {
            lagMs = Math.max(lagMs, facts.lagMs);
            metrics.addMetric(PollerMetrics.processed, MetricUnit.Count, 1);
            if (facts.kind === 'bounce') metrics.addMetric(PollerMetrics.bounces, MetricUnit.Count, 1);
            if (facts.kind === 'delay') metrics.addMetric(PollerMetrics.delays, MetricUnit.Count, 1);
            if (facts.senderSide) metrics.addMetric(PollerMetrics.senderSideBounces, MetricUnit.Count, 1);
            if (facts.kind === 'complaint') metrics.addMetric(PollerMetrics.complaints, MetricUnit.Count, 1);
            if (facts.kind === 'unparsable') metrics.addMetric(PollerMetrics.unparsable, MetricUnit.Count, 1);
            if (facts.suppressed > 0) metrics.addMetric(PollerMetrics.suppressed, MetricUnit.Count, facts.suppressed);
            if (facts.verified === false) metrics.addMetric(ReportMetrics.unverified, MetricUnit.Count, 1);
            reputation?.note(facts.tenant, facts.reports);
            flushEvery(5000);
          },
          log: (level, message, facts) => logger[level](message, facts),
        },
        { mailboxId: mailbox.id, runId: randomUUID(), stopAtMs, idleUntilMs, startFrom: mailbox.startFrom },
      );
      // The run's counts, one write per tenant (a failed sync keeps them for the next flush of this instance).
      await reputation?.flush();
      if (result.status === 'busy') {
        metrics.addMetric(PollerMetrics.leaseBusy, MetricUnit.Count, 1);
        logger.info('mailbox busy: another run holds its lease', { mailbox: mailbox.id });
      } else if (result.status === 'lease-lost') {
        metrics.addMetric(PollerMetrics.leaseLost, MetricUnit.Count, 1);
        const facts = { mailbox: mailbox.id, processed: result.processed };
        logger.warn('mailbox lease lost: another run took over, this one stopped', facts);
      } else {
        emitMailboxMetrics(mailbox.id, { lagMs: result.processed > 0 ? lagMs : undefined });
        logger.info('mailbox synced', {
          mailbox: mailbox.id,
          processed: result.processed,
          skippedDuplicates: result.skippedDuplicates,
          resynchronised: result.resynchronised,
          lastUid: result.checkpoint?.lastUid,
        });
      }
      return { status: result.status, processed: result.processed };
    } catch (error) {
      const e = error as Error & { authentication?: boolean };
      const blocked = isSignInBlocked(error);
      // The next run reads the secret afresh, so that a fixed or rotated secret takes effect at once.
      if (e.authentication || blocked) refreshCredentials.add(mailbox.id);
      metrics.addMetric(PollerMetrics.pollFailed, MetricUnit.Count, 1);
      if (blocked) metrics.addMetric(PollerMetrics.signInBlocked, MetricUnit.Count, 1);
      const authentication = e.authentication ?? false;
      logger.error('mailbox poll failed', { mailbox: mailbox.id, error: e.message, authentication, blocked });
      return { status: blocked ? 'blocked' : 'failed', processed: 0, error: e.message };
    }
  };

  const lambdaHandler = async (_event: unknown, context: Context): Promise<PollSummary> => {
    const now = clock();
    const stopAtMs = now + context.getRemainingTimeInMillis() - config.stopMarginMs;
    // Hand over to the next scheduled run: stop idling shortly before it starts.
    const idleUntilMs = config.idle
      ? Math.min(stopAtMs, now + config.pollIntervalSeconds * 1000 - config.stopMarginMs)
      : 0;
    const results = await Promise.all(
      config.mailboxes.map(async (m) => [m.id, await pollOne(m, stopAtMs, idleUntilMs)] as const),
    );
    return Object.fromEntries(results);
  };

  const handler = middy(lambdaHandler)
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics));
  return deps.tracer ? handler.use(captureLambdaHandler(deps.tracer)) : handler;
}
