import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { createAwsClients } from '#aws/clients.js';
import { createSecretsManagerCredentials } from '#aws/secrets-credentials.js';
import { toLoginCredentials } from '#core/credential-source.js';
import { METRIC_NAMESPACE, SERVICE_NAME } from '#core/metric-names.js';
import { buildSendEmailDeps } from '#handlers/build-send-email-deps.js';
import { createSendEmailHandler } from '#handlers/send-email-handler.js';
import { loadDispatchConfig } from './config.js';

// Built once per container, reused by every invocation: configuration, clients, the SMTP pool, cached secrets.
const config = loadDispatchConfig();
const logger = new Logger({ serviceName: SERVICE_NAME });
const metrics = new Metrics({ namespace: METRIC_NAMESPACE, serviceName: SERVICE_NAME });
const tracer = new Tracer({ serviceName: SERVICE_NAME });
const clients = createAwsClients({ wrap: (client) => tracer.captureAWSv3Client(client) });
const smtpSecretId = config.smtp?.secretId;

export const handler = createSendEmailHandler(
  await buildSendEmailDeps(config, clients, { logger, metrics, tracer }, {
    smtpCredentials: smtpSecretId
      ? createSecretsManagerCredentials(smtpSecretId, toLoginCredentials, { maxAgeSeconds: config.secretsCacheSeconds, client: tracer.captureAWSv3Client(new SecretsManagerClient({})) })
      : undefined,
  }),
);
