import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { boundedClientConfig, createAwsClients } from '#aws/clients.js';
import { checkCredentials, toMailCredentials } from '#core/credential-source.js';
import { toReportKeyring } from '#core/message-id.js';
import { CredentialMetrics, METRIC_NAMESPACE, SERVICE_NAME } from '#core/metric-names.js';
import { buildSendEmailDeps } from '#handlers/build-send-email-deps.js';
import { createSendEmailHandler } from '#handlers/send-email-handler.js';
import { loadDispatchConfig } from './config.js';

// Built once per container, reused by every invocation: configuration, clients, the SMTP pool, cached secrets.
const config = loadDispatchConfig();
const logger = new Logger({ serviceName: SERVICE_NAME });
// Metrics' own warnings go through the logger, as structured log lines.
const metrics = new Metrics({ namespace: METRIC_NAMESPACE, serviceName: SERVICE_NAME, logger });
const tracer = new Tracer({ serviceName: SERVICE_NAME });
const clients = createAwsClients({ wrap: (client) => tracer.captureAWSv3Client(client) });
const smtpSecretId = config.smtp?.secretId;

/**
 * SMTP sign-in from the Secrets Manager secret: its password, or tokens for its OAuth2 grant. The secret is read and
 * checked at start: a wrong one stops the function here, every problem named. A deployment without it (SES only)
 * never loads these modules.
 */
async function smtpCredentialsFrom(secretId: string) {
  const [{ createSecretsManagerCredentials }, { createMailLoginSource }, { SecretsManagerClient }] = await Promise.all([
    import('#aws/secrets-credentials.js'),
    import('#oauth/mail-login-source.js'),
    import('@aws-sdk/client-secrets-manager'),
  ]);
  const client = tracer.captureAWSv3Client(new SecretsManagerClient(boundedClientConfig()));
  const secret = createSecretsManagerCredentials(secretId, toMailCredentials, {
    maxAgeSeconds: config.secretsCacheSeconds,
    client,
  });
  await checkCredentials([secret]);
  return createMailLoginSource(secret, {
    onWriteBackFailed: (error) => {
      metrics.addMetric(CredentialMetrics.refreshTokenNotSaved, MetricUnit.Count, 1);
      logger.error('rotated refresh token not written back to the SMTP secret', { error: error.message });
    },
  });
}

/** The report keys, from Secrets Manager (cached as the SMTP secret is). */
async function reportKeysFrom(secretId: string) {
  const [{ createSecretsManagerCredentials }, { SecretsManagerClient }] = await Promise.all([
    import('#aws/secrets-credentials.js'),
    import('@aws-sdk/client-secrets-manager'),
  ]);
  const client = tracer.captureAWSv3Client(new SecretsManagerClient(boundedClientConfig()));
  const maxAgeSeconds = config.secretsCacheSeconds;
  return createSecretsManagerCredentials(secretId, toReportKeyring, { maxAgeSeconds, client });
}

// The modules this configuration uses load side by side (the transport's is then already there for the wiring).
const [smtpCredentials, reportKeys] = await Promise.all([
  smtpSecretId ? smtpCredentialsFrom(smtpSecretId) : undefined,
  config.reportKeysSecretId ? reportKeysFrom(config.reportKeysSecretId) : undefined,
  config.smtp ? import('#transports/smtp-transport.js') : undefined,
  config.ses ? import('#transports/ses-transport.js') : undefined,
]);

const deps = await buildSendEmailDeps(config, clients, { logger, metrics, tracer }, { smtpCredentials, reportKeys });
export const handler = createSendEmailHandler(deps);
