import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { createBounceHistoryStore } from '#aws/bounce-history-store.js';
import { boundedClientConfig, createAwsClients } from '#aws/clients.js';
import { createSnsEventPublisher } from '#aws/event-publisher.js';
import { createMailboxStateStore } from '#aws/mailbox-state-store.js';
import { createRawMessageStore } from '#aws/raw-message-store.js';
import { createSecretsManagerCredentials } from '#aws/secrets-credentials.js';
import { createSentMessages } from '#aws/sent-messages.js';
import { createSuppressionStore } from '#aws/suppression-store.js';
import { checkCredentials, toMailCredentials } from '#core/credential-source.js';
import { CredentialMetrics, METRIC_NAMESPACE, SERVICE_NAME, SuppressionMetrics } from '#core/metric-names.js';
import { toReportKeyring } from '#core/message-id.js';
import { createInboundReportVerifier } from '#core/verify-report.js';
import { createPollMailboxHandler } from '#handlers/poll-mailbox-handler.js';
import { withJobStatusReports } from '#handlers/job-reports.js';
import { createJobStatusStore } from '#aws/job-status-store.js';
import { JOB_STATUS_TTL_SECONDS } from '#core/job-status.js';
import { createMailLoginSource } from '#oauth/mail-login-source.js';
import { loadPollerConfig, type PolledMailbox } from './config.js';
import { buildReportReputation } from '#handlers/report-reputation.js';

// Built once per container: configuration, clients, cached secrets. IMAP connections are per run.
const config = loadPollerConfig();
const logger = new Logger({ serviceName: SERVICE_NAME });
// Metrics' own warnings go through the logger, as structured log lines.
const metrics = new Metrics({ namespace: METRIC_NAMESPACE, serviceName: SERVICE_NAME, logger });
const tracer = new Tracer({ serviceName: SERVICE_NAME });
const clients = createAwsClients({ wrap: (client) => tracer.captureAWSv3Client(client) });
const secretsClient = tracer.captureAWSv3Client(new SecretsManagerClient(boundedClientConfig()));
const suppressions = createSuppressionStore(clients.documents, config.suppressionTable, {
  ttlDays: config.suppressionTtlDays,
  onCreated: () => metrics.addMetric(SuppressionMetrics.added, MetricUnit.Count, 1),
});
const cache = { maxAgeSeconds: config.secretsCacheSeconds, client: secretsClient };
const secretOf = (secret: string) => createSecretsManagerCredentials(secret, toMailCredentials, cache);
const secrets = config.mailboxes.map((m) => [m, secretOf(m.secret)] as const);
// Every mailbox secret is read and checked at start: a wrong one stops the poller here, every problem named.
await checkCredentials(secrets.map(([, secret]) => secret));
// One sign-in source per mailbox for the container's life: its access token is cached across runs.
const loginOf = (mailbox: PolledMailbox, secret = secretOf(mailbox.secret)) =>
  createMailLoginSource(secret, {
    onWriteBackFailed: (error) => {
      metrics.addMetric(CredentialMetrics.refreshTokenNotSaved, MetricUnit.Count, 1);
      logger.error('rotated refresh token not written back', { mailbox: mailbox.id, error: error.message });
    },
  });
const logins = new Map(secrets.map(([m, secret]) => [m.id, loginOf(m, secret)]));

const reportKeys = config.reportKeysSecretId
  ? createSecretsManagerCredentials(config.reportKeysSecretId, toReportKeyring, {
      maxAgeSeconds: config.secretsCacheSeconds,
      client: secretsClient,
    })
  : undefined;

/** Reports checked against what the dispatcher stored; a verified one marks its job's status too. */
function verifier(idempotencyTable: string, keys: NonNullable<typeof reportKeys>) {
  const sent = createSentMessages(clients.documents, idempotencyTable);
  const verify = createInboundReportVerifier({ keys: () => keys.get(), sent, bounceDomain: config.bounceDomain });
  if (!config.jobStatusTable) return verify;
  const status = createJobStatusStore(clients.dynamodb, config.jobStatusTable, { ttlSeconds: JOB_STATUS_TTL_SECONDS });
  return withJobStatusReports(verify, { status, logger });
}

export const handler = createPollMailboxHandler({
  config,
  logger,
  metrics,
  tracer,
  state: createMailboxStateStore(clients.documents, config.mailboxStateTable),
  events: createSnsEventPublisher(clients.sns, config.eventsTopicArn),
  suppress: (entry) => suppressions.suppress(entry),
  repeats: {
    policy: config.repeats,
    history: createBounceHistoryStore(clients.documents, config.mailboxStateTable),
  },
  verifyReport: reportKeys && config.idempotencyTable ? verifier(config.idempotencyTable, reportKeys) : undefined,
  storeRaw: createRawMessageStore(clients.s3, config.rawMessageBucket),
  reputation: buildReportReputation(config.reputation, clients.documents),
  credentialsFor: (mailbox) => logins.get(mailbox.id) ?? loginOf(mailbox),
});
