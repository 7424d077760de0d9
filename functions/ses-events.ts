import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { boundedClientConfig, createAwsClients } from '#aws/clients.js';
import { createSnsEventPublisher } from '#aws/event-publisher.js';
import { createSecretsManagerCredentials } from '#aws/secrets-credentials.js';
import { createSuppressionStore } from '#aws/suppression-store.js';
import { toReportKeyring } from '#core/message-id.js';
import { METRIC_NAMESPACE, SERVICE_NAME, SuppressionMetrics } from '#core/metric-names.js';
import { createSesEventsHandler } from '#handlers/ses-events-handler.js';
import { createJobStatusStore } from '#aws/job-status-store.js';
import { JOB_STATUS_TTL_SECONDS } from '#core/job-status.js';
import { loadSesEventsConfig } from './config.js';
import { buildReportReputation } from '#handlers/report-reputation.js';

// Built once per container: configuration, clients, the cached report keys.
const config = loadSesEventsConfig();
const logger = new Logger({ serviceName: SERVICE_NAME });
const metrics = new Metrics({ namespace: METRIC_NAMESPACE, serviceName: SERVICE_NAME, logger });
const tracer = new Tracer({ serviceName: SERVICE_NAME });
const clients = createAwsClients({ wrap: (client) => tracer.captureAWSv3Client(client) });
const suppressions = createSuppressionStore(clients.documents, config.suppressionTable, {
  onCreated: () => metrics.addMetric(SuppressionMetrics.added, MetricUnit.Count, 1),
});
const reportKeys = createSecretsManagerCredentials(config.reportKeysSecretId, toReportKeyring, {
  maxAgeSeconds: config.secretsCacheSeconds,
  client: tracer.captureAWSv3Client(new SecretsManagerClient(boundedClientConfig())),
});

export const handler = createSesEventsHandler({
  logger,
  metrics,
  tracer,
  expected: { topicArn: config.sesEventsTopicArn, accountId: config.accountId },
  reportKeys: () => reportKeys.get(),
  suppress: (entry) => suppressions.suppress(entry),
  events: createSnsEventPublisher(clients.sns, config.eventsTopicArn),
  reputation: buildReportReputation(config.reputation, clients.documents),
  jobStatus: config.jobStatusTable
    ? createJobStatusStore(clients.dynamodb, config.jobStatusTable, { ttlSeconds: JOB_STATUS_TTL_SECONDS })
    : undefined,
});
