import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { Tracer } from '@aws-lambda-powertools/tracer';
import type { SESv2ClientConfig } from '@aws-sdk/client-sesv2';
import type { ConnectionOptions } from 'node:tls';
import type { DispatchConfig } from '#functions/config.js';
import { createAttachmentStore } from '#aws/attachment-store.js';
import { createBoundedRequestHandler, withCallDeadline, type AwsClients } from '#aws/clients.js';
import { createSnsEventPublisher } from '#aws/event-publisher.js';
import { createIdempotencyStore, createUnpublishedOutcomes } from '#aws/idempotency-store.js';
import { createDeadLetterSink, createVisibilityControl } from '#aws/sqs-dispatch-queues.js';
import { createSuppressionStore } from '#aws/suppression-store.js';
import { createByteBudget } from '#core/byte-budget.js';
import type { CredentialSource, SmtpCredentials } from '#core/credential-source.js';
import type { TransportName } from '#core/email-job.js';
import type { MailTransport } from '#transports/mail-transport.js';
import type { SendEmailDeps } from './send-email-handler.js';

/** What differs between AWS and the local twin: where credentials come from, and TLS trust for a local server. */
export type SendEmailEnvironment = {
  smtpCredentials?: CredentialSource<SmtpCredentials>;
  smtpTls?: ConnectionOptions;
  sesClient?: SESv2ClientConfig;
};

/**
 * Wires the dispatch handler's dependencies from its configuration; shared by the Lambda entry and the local twin
 * so both run the same code. A transport the configuration does not enable is never imported.
 */
export async function buildSendEmailDeps(
  config: DispatchConfig,
  clients: AwsClients,
  observability: { logger: Logger; metrics: Metrics; tracer?: Tracer },
  environment: SendEmailEnvironment,
): Promise<SendEmailDeps> {
  const transports: Partial<Record<TransportName, MailTransport>> = {};
  if (config.smtp) {
    const { createSmtpTransport } = await import('#transports/smtp-transport.js');
    transports.smtp = createSmtpTransport(
      { host: config.smtp.host, port: config.smtp.port, security: config.smtp.security, maxConnections: config.smtp.maxConnections, ratePerSecond: config.smtp.ratePerSecond, tls: environment.smtpTls },
      environment.smtpCredentials,
    );
  }
  if (config.ses) {
    const { createSesTransport } = await import('#transports/ses-transport.js');
    // The SES client gets the same bounded request handler as every AWS client (one attempt: see ses-transport).
    const client = { requestHandler: createBoundedRequestHandler(), ...environment.sesClient };
    const { configurationSetName, ratePerSecond } = config.ses;
    transports.ses = createSesTransport({ configurationSetName, ratePerSecond, client });
  }
  const objects = createAttachmentStore(clients.s3, config.attachmentBucket);
  const takeoverListeners: Array<(recordId: string) => void> = [];
  return {
    ...observability,
    dispatch: {
      transports,
      defaultTransport: config.defaultTransport,
      suppressions: createSuppressionStore(clients.documents, config.suppressionTable),
      loadAttachment: objects.load,
      attachmentMemory: { size: objects.size, budget: createByteBudget(config.attachmentMemoryBytes) },
      defaultFrom: config.defaultFrom,
      messageIdDomain: config.messageIdDomain,
    },
    persistenceStore: createIdempotencyStore(clients.dynamodb, config.idempotencyTable, (recordId) => takeoverListeners.forEach((listener) => listener(recordId))),
    onIdempotencyTakeover: (listener) => takeoverListeners.push(listener),
    idempotencyTtlSeconds: config.idempotencyTtlSeconds,
    events: createSnsEventPublisher(clients.sns, config.eventsTopicArn),
    unpublished: createUnpublishedOutcomes(clients.dynamodb, config.idempotencyTable, 'email-job'),
    deadLetters: createDeadLetterSink(clients.sqs, config.deadLetterQueueUrl),
    visibility: createVisibilityControl(clients.sqs, config.jobsQueueUrl),
    retry: config.retry,
    deadlineMarginMs: config.deadlineMarginMs,
    finishReserveMs: config.finishReserveMs,
    minAttemptMs: config.minAttemptMs,
    maxReceiveCount: config.maxReceiveCount,
    withCallDeadline,
    claimChecks: config.attachmentBucket
      ? {
          size: objects.size,
          // Decoded in place: no second copy of the bytes.
          load: async (ref) => {
            const bytes = await objects.load(ref);
            return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
          },
        }
      : undefined,
  };
}
