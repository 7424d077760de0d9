import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import type { Tracer } from '@aws-lambda-powertools/tracer';
import type { SESv2ClientConfig } from '@aws-sdk/client-sesv2';
import type { ConnectionOptions } from 'node:tls';
import type { DispatchConfig } from '#functions/config.js';
import { createAttachmentStore } from '#aws/attachment-store.js';
import { createBoundedRequestHandler, withCallDeadline, type AwsClients } from '#aws/clients.js';
import { createSnsEventPublisher } from '#aws/event-publisher.js';
import { createIdempotencyStore, createPublishedOutcomes } from '#aws/idempotency-store.js';
import { createReputationStore } from '#aws/reputation-store.js';
import { createDeadLetterSink, createVisibilityControl } from '#aws/sqs-dispatch-queues.js';
import { createJobRequeue } from '#aws/sqs-job-requeue.js';
import { createSuppressionStore } from '#aws/suppression-store.js';
import { createByteBudget } from '#core/byte-budget.js';
import type { CredentialSource, SmtpCredentials } from '#core/credential-source.js';
import type { TransportName } from '#core/email-job.js';
import type { ReportKeyring } from '#core/message-id.js';
import type { MailTransport } from '#core/mail-transport.js';
import type { TemplateRenderer } from '#core/template-renderer.js';
import type { RoutingDeps } from './route-job.js';
import type { JobHold } from './job-hold.js';
import type { ScheduleDeps } from './job-schedule.js';
import type { SendEmailDeps } from './send-email-handler.js';

/** What differs between AWS and the local twin: where credentials come from, and TLS trust for a local server. */
export type SendEmailEnvironment = {
  smtpCredentials?: CredentialSource<SmtpCredentials>;
  smtpTls?: ConnectionOptions;
  sesClient?: SESv2ClientConfig;
  /** The report keys (Secrets Manager in AWS, a file in the twin); without them messages carry no report token. */
  reportKeys?: CredentialSource<ReportKeyring>;
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
    const { host, port, security, maxConnections, sesRegion, smtpUtf8 } = config.smtp;
    // An SES SMTP endpoint enforces the SES account's quota: follow it unless a rate is set.
    const maxSendRate = config.smtp.maxSendRate ?? (sesRegion ? await sesAccountRate(sesRegion, environment) : 0);
    transports.smtp = createSmtpTransport(
      {
        host,
        port,
        security,
        maxConnections,
        maxSendRate,
        smtpUtf8,
        rateShares: config.rateShares,
        tls: environment.smtpTls,
      },
      environment.smtpCredentials,
    );
  }
  if (config.ses) {
    const { createSesTransport } = await import('#transports/ses-transport.js');
    // The SES client gets the same bounded request handler as every AWS client (one attempt: see ses-transport).
    const client = { requestHandler: createBoundedRequestHandler(), ...environment.sesClient };
    const { configurationSetName, maxSendRate } = config.ses;
    transports.ses = createSesTransport({ configurationSetName, maxSendRate, rateShares: config.rateShares, client });
  }
  const objects = createAttachmentStore(clients.s3, config.attachmentBucket);
  const routing = config.breaker ? await buildRouting(config, config.breaker, clients) : undefined;
  // One hold (delayed requeues) for scheduled jobs and a paused tenant's jobs alike.
  const hold = config.reputation || config.jobStatusTable ? await buildHold(config, clients) : undefined;
  const reputation = config.reputation &&
    hold && {
      store: createReputationStore(clients.documents, config.reputation.table, config.reputation.policy),
      policy: config.reputation.policy,
      pauseCacheMs: config.reputation.pauseCacheMs,
      pauseRecheckSeconds: config.reputation.pauseRecheckSeconds,
      hold,
    };
  const takeoverListeners: Array<(recordId: string) => void> = [];
  const { reportKeys } = environment;
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
      reportKeys: reportKeys ? () => reportKeys.get() : undefined,
      bounceDomain: config.bounceDomain,
    },
    persistenceStore: createIdempotencyStore(clients.dynamodb, config.idempotencyTable, (recordId) => {
      for (const listener of takeoverListeners) listener(recordId);
    }),
    onIdempotencyTakeover: (listener) => takeoverListeners.push(listener),
    idempotencyTtlSeconds: config.idempotencyTtlSeconds,
    events: createSnsEventPublisher(clients.sns, config.eventsTopicArn),
    published: createPublishedOutcomes(clients.dynamodb, config.idempotencyTable, 'email-job'),
    deadLetters: createDeadLetterSink(clients.sqs, config.deadLetterQueueUrl),
    visibility: createVisibilityControl(clients.sqs, config.jobsQueueUrl),
    retry: config.retry,
    deadlineMarginMs: config.deadlineMarginMs,
    routing,
    reputation,
    schedule:
      config.jobStatusTable && hold ? await buildSchedule(config, config.jobStatusTable, clients, hold) : undefined,
    templates: config.templatesDir ? lazyTemplates(config.templatesDir) : undefined,
    // Recipients an SMTP relay refused for now while it took the others get the message later (see follow-up.ts).
    followUps: createJobRequeue(clients.sqs, config.jobsQueueUrl),
    finishReserveMs: config.finishReserveMs,
    minAttemptMs: config.minAttemptMs,
    maxReceiveCount: config.maxReceiveCount,
    maxInFlight: config.maxInFlight,
    withCallDeadline,
    tenants: { directory: config.tenants, bucket: config.attachmentBucket },
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

/** The breakers (shared through DynamoDB), the failover between transports, and the requeue for waiting jobs. */
async function buildRouting(
  config: DispatchConfig,
  breaker: NonNullable<DispatchConfig['breaker']>,
  clients: AwsClients,
): Promise<RoutingDeps> {
  const [{ createBreakerStore }, { createJobRequeue }, { createCircuitBreaker }, { createSendRouter }] =
    await Promise.all([
      import('#aws/breaker-store.js'),
      import('#aws/sqs-job-requeue.js'),
      import('#core/circuit-breaker.js'),
      import('#core/send-router.js'),
    ]);
  const circuit = createCircuitBreaker(createBreakerStore(clients.documents, breaker.table), {
    firstProbeAfterMs: breaker.firstProbeAfterSeconds * 1000,
    maxProbeIntervalMs: breaker.maxProbeIntervalSeconds * 1000,
  });
  return {
    router: createSendRouter({ breaker: circuit, failover: config.failover }),
    requeue: createJobRequeue(clients.sqs, config.jobsQueueUrl),
  };
}

/** Holds made of delayed requeues on the jobs queue (see job-hold). */
async function buildHold(config: DispatchConfig, clients: AwsClients): Promise<JobHold> {
  const [{ createJobRequeue }, { createJobHold }] = await Promise.all([
    import('#aws/sqs-job-requeue.js'),
    import('./job-hold.js'),
  ]);
  return createJobHold({ requeue: createJobRequeue(clients.sqs, config.jobsQueueUrl) });
}

/** Scheduled sends and cancels: the job status table, and the hold. */
async function buildSchedule(
  config: DispatchConfig,
  table: string,
  clients: AwsClients,
  hold: JobHold,
): Promise<ScheduleDeps> {
  const { createJobStatusStore } = await import('#aws/job-status-store.js');
  return {
    status: createJobStatusStore(clients.dynamodb, table, { ttlSeconds: config.idempotencyTtlSeconds }),
    hold,
  };
}

/** The templates, loaded with their engine on the first template job: other jobs never load either. */
function lazyTemplates(dir: string): TemplateRenderer {
  let renderer: Promise<TemplateRenderer> | undefined;
  return {
    async render(reference, context) {
      renderer ??= import('#rendering/template-renderer.js').then((m) => m.createTemplateRenderer(dir));
      return (await renderer).render(reference, context);
    },
  };
}

/** The SES account's send rate for an SES SMTP endpoint: it enforces the same quota as the API (read on first use). */
async function sesAccountRate(region: string, environment: SendEmailEnvironment): Promise<() => Promise<number>> {
  const [{ SESv2Client }, { readAccountSendRate }] = await Promise.all([
    import('@aws-sdk/client-sesv2'),
    import('#transports/ses-transport.js'),
  ]);
  const client = new SESv2Client({ region, ...environment.sesClient });
  return () => readAccountSendRate(client);
}
