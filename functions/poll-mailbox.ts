import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { createAwsClients } from '#aws/clients.js';
import { createSnsEventPublisher } from '#aws/event-publisher.js';
import { createMailboxStateStore } from '#aws/mailbox-state-store.js';
import { createRawMessageStore } from '#aws/raw-message-store.js';
import { createSecretsManagerCredentials } from '#aws/secrets-credentials.js';
import { createSentMessages } from '#aws/sent-messages.js';
import { createSuppressionStore } from '#aws/suppression-store.js';
import { toReportKeyring } from '#core/message-id.js';
import { createInboundReportVerifier } from '#core/verify-report.js';
import { toLoginCredentials } from '#core/credential-source.js';
import { METRIC_NAMESPACE, SERVICE_NAME } from '#core/metric-names.js';
import { createPollMailboxHandler } from '#handlers/poll-mailbox-handler.js';
import { loadPollerConfig } from './config.js';

// Built once per container: configuration, clients, cached secrets. IMAP connections are per run.
const config = loadPollerConfig();
const logger = new Logger({ serviceName: SERVICE_NAME });
// Metrics' own warnings go through the logger, as structured log lines.
const metrics = new Metrics({ namespace: METRIC_NAMESPACE, serviceName: SERVICE_NAME, logger });
const tracer = new Tracer({ serviceName: SERVICE_NAME });
const clients = createAwsClients({ wrap: (client) => tracer.captureAWSv3Client(client) });
const secretsClient = tracer.captureAWSv3Client(new SecretsManagerClient({}));
const suppressions = createSuppressionStore(clients.documents, config.suppressionTable);
const credentials = new Map(
  config.mailboxes.map((m) => [m.id, createSecretsManagerCredentials(m.secret, toLoginCredentials, { maxAgeSeconds: config.secretsCacheSeconds, client: secretsClient })]),
);

const reportKeys = config.reportKeysSecretId
  ? createSecretsManagerCredentials(config.reportKeysSecretId, toReportKeyring, {
      maxAgeSeconds: config.secretsCacheSeconds,
      client: secretsClient,
    })
  : undefined;

export const handler = createPollMailboxHandler({
  config,
  logger,
  metrics,
  tracer,
  state: createMailboxStateStore(clients.documents, config.mailboxStateTable),
  events: createSnsEventPublisher(clients.sns, config.eventsTopicArn),
  suppress: (entry) => suppressions.suppress(entry),
  verifyReport:
    reportKeys && config.idempotencyTable
      ? createInboundReportVerifier({
          keys: () => reportKeys.get(),
          sent: createSentMessages(clients.documents, config.idempotencyTable),
          bounceDomain: config.bounceDomain,
        })
      : undefined,
  storeRaw: createRawMessageStore(clients.s3, config.rawMessageBucket),
  credentialsFor: (mailbox) => credentials.get(mailbox.id) ?? createSecretsManagerCredentials(mailbox.secret, toLoginCredentials, { maxAgeSeconds: config.secretsCacheSeconds, client: secretsClient }),
});
