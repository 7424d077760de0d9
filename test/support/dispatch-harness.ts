import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import {
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type Message,
} from '@aws-sdk/client-sqs';
import type { EmailJob } from '#core/email-job.js';
import { loadDispatchConfig } from '#functions/config.js';
import { buildSendEmailDeps, type SendEmailEnvironment } from '#handlers/build-send-email-deps.js';
import { createSendEmailHandler, type SendEmailDeps } from '#handlers/send-email-handler.js';
import { DEFAULT_SETTINGS, deriveQueueSettings, type SystemSettings } from '#infra/settings.js';
import { createAwsClients } from '#aws/clients.js';
import {
  createEmulatorClients,
  LOCAL_CREDENTIALS,
  startDynalite,
  startFauxqs,
  type Emulator,
} from '#local/emulators.js';
import { deliverOneBatch, toSqsRecord, type SqsHandler } from '#local/event-source.js';
import { createLocalResources, toDispatchEnvironment } from '#local/resources.js';
import { startSmtpSink, type SmtpSinkOptions } from '#local/smtp-sink.js';
import { localTlsCertificate } from '#local/tls-certificate.js';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { captureOutput } from './captured-output.js';

export const SMTP_USER = { username: 'relay-user', password: 'relay-pass-1' };

/** Shared emulators for one test file: start once in beforeAll. */
export async function startAwsEmulators() {
  const fauxqs = await startFauxqs();
  const dynamo = await startDynalite();
  const clients = createEmulatorClients({ fauxqs: fauxqs.endpoint, dynamodb: dynamo.endpoint });
  return {
    fauxqs,
    dynamo,
    clients,
    stop: async () => {
      for (const e of [fauxqs, dynamo] as Emulator[]) await e.stop();
    },
  };
}
export type AwsEmulators = Awaited<ReturnType<typeof startAwsEmulators>>;

let counter = 0;

/** Names of a harness's own queues, topic, bucket and tables, so that harnesses on shared emulators never meet. */
export const resourceNames = (suffix: string) => ({
  jobsQueue: `jobs-${suffix}`,
  deadLetterQueue: `dlq-${suffix}`,
  eventsTopic: `events-${suffix}`,
  eventsTapQueue: `events-tap-${suffix}`,
  bucket: `attachments-${suffix}`,
  idempotencyTable: `idempotency-${suffix}`,
  suppressionTable: `suppression-${suffix}`,
  mailboxStateTable: `mailbox-${suffix}`,
});

/**
 * The dispatch handler wired exactly as in production, against real peers on loopback: fauxqs (SQS, SNS, S3),
 * dynalite, and an SMTP sink with STARTTLS and AUTH. Each harness gets its own queues and tables.
 */
export async function startDispatchHarness(
  aws: AwsEmulators,
  options: {
    sink?: SmtpSinkOptions;
    env?: Record<string, string>;
    settings?: Partial<SystemSettings>;
    deps?: Partial<SendEmailDeps>;
    /** What differs from AWS: report keys, SES client settings (SMTP credentials and TLS trust are the harness's). */
    environment?: Partial<SendEmailEnvironment>;
    /** The handler's endpoint for a service (a TCP proxy in front of the emulator); the test's clients keep theirs. */
    endpoints?: { sqs?: string; sns?: string; s3?: string; dynamodb?: string; ses?: string };
    /** Changes the wired dependencies before the handler is built (wraps one of our own interfaces in a fault). */
    adjust?: (deps: SendEmailDeps) => void;
    /** Where the handler reaches the sink (a TCP proxy in front of it). @default the sink itself */
    smtpThrough?: (sink: { host: string; port: number }) => Promise<{ host: string; port: number }>;
  } = {},
) {
  counter += 1;
  const suffix = `${process.pid}-${counter}`;
  const cert = localTlsCertificate();
  const sink = await startSmtpSink({ tls: cert, credentials: SMTP_USER, ...options.sink });
  const settings = { ...DEFAULT_SETTINGS, ...options.settings };
  const resources = await createLocalResources(aws.clients, settings, resourceNames(suffix));
  const relay = options.smtpThrough ? await options.smtpThrough(sink) : sink;
  const config = loadDispatchConfig({
    ...toDispatchEnvironment(resources),
    DEFAULT_FROM: 'noreply@example.com',
    SMTP_HOST: relay.host,
    SMTP_PORT: String(relay.port),
    SMTP_SECURITY: 'starttls',
    SMTP_SECRET_ID: 'local',
    ...options.env,
  });
  const logger = new Logger({ serviceName: 'email-dispatch', logLevel: 'DEBUG' });
  const metrics = new Metrics({ namespace: 'EmailDispatch', serviceName: 'email-dispatch', logger });
  const output = captureOutput(logger, metrics);
  const credentialFetches: boolean[] = [];
  let credentials = SMTP_USER;
  const handlerClients = options.endpoints
    ? createAwsClients({
        region: 'eu-west-1',
        credentials: LOCAL_CREDENTIALS,
        endpoints: {
          ...{
            sqs: aws.fauxqs.endpoint,
            sns: aws.fauxqs.endpoint,
            s3: aws.fauxqs.endpoint,
            dynamodb: aws.dynamo.endpoint,
          },
          ...options.endpoints,
        },
      })
    : aws.clients;
  const deps = await buildSendEmailDeps(
    config,
    handlerClients,
    { logger, metrics },
    {
      smtpCredentials: {
        async get({ refresh = false } = {}) {
          credentialFetches.push(refresh);
          return credentials;
        },
      },
      smtpTls: { ca: cert.cert },
      sesClient: options.endpoints?.ses
        ? { region: 'eu-west-1', credentials: LOCAL_CREDENTIALS, endpoint: options.endpoints.ses }
        : undefined,
      ...options.environment,
    },
  );
  Object.assign(deps, options.deps);
  options.adjust?.(deps);
  const handler = createSendEmailHandler(deps);
  const queue = deriveQueueSettings(settings);

  const drain = async (queueUrl: string, max = 1000): Promise<Message[]> => {
    const out: Message[] = [];
    for (let i = 0; i < Math.ceil(max / 10) + 10 && out.length < max; i += 1) {
      const result = await aws.clients.sqsClient.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 0,
          MessageAttributeNames: ['All'],
          MessageSystemAttributeNames: ['All'],
        }),
      );
      const got = result.Messages ?? [];
      if (got.length === 0) break;
      out.push(...got);
      const entries = got.map((m, n) => ({ Id: String(n), ReceiptHandle: m.ReceiptHandle }));
      await aws.clients.sqsClient.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }));
    }
    return out;
  };

  return {
    sink,
    config,
    deps,
    handler,
    resources,
    output,
    credentialFetches,
    setCredentials(next: typeof SMTP_USER) {
      credentials = next;
    },
    /** A record as the event source delivers it, without the queue: `receive` numbers the delivery. */
    sqsRecord(body: EmailJob | object, messageId: string, receive = 1) {
      return toSqsRecord(
        {
          MessageId: messageId,
          ReceiptHandle: `${messageId}-${receive}`,
          Body: JSON.stringify(body),
          Attributes: { ApproximateReceiveCount: String(receive), SentTimestamp: String(Date.now()) },
        },
        resources.jobsQueueArn,
      );
    },
    /** Puts a job (or any raw body) on the jobs queue; returns the SQS message id. */
    async enqueue(job: EmailJob | string | object): Promise<string> {
      const body = typeof job === 'string' ? job : JSON.stringify(job);
      const result = await aws.clients.sqsClient.send(
        new SendMessageCommand({ QueueUrl: resources.jobsQueueUrl, MessageBody: body }),
      );
      return result.MessageId ?? '';
    },
    /**
     * One event-source poll of up to `batchSize` records through the handler (or `through`, wrapping it); a batch of
     * more than ten gathers over several receives within `windowSeconds`.
     */
    async deliver(batchSize = settings.batchSize, options: { windowSeconds?: number; through?: SqsHandler } = {}) {
      return deliverOneBatch({
        sqs: aws.clients.sqsClient,
        queueUrl: resources.jobsQueueUrl,
        queueArn: resources.jobsQueueArn,
        handler: options.through ?? handler,
        functionName: 'send-email',
        batchSize,
        maxBatchingWindowSeconds: options.windowSeconds ?? 0,
        visibilityTimeoutSeconds: queue.visibilityTimeoutSeconds,
        functionTimeoutSeconds: settings.functionTimeoutSeconds,
        waitTimeSeconds: 0,
      });
    },
    /** Polls until a poll receives nothing (bounded). */
    async deliverAll(maxPolls = 50) {
      const totals = { received: 0, succeeded: 0, failed: 0 };
      for (let i = 0; i < maxPolls; i += 1) {
        const r = await this.deliver();
        if (r.received === 0) break;
        totals.received += r.received;
        totals.succeeded += r.succeeded;
        totals.failed += r.failed;
      }
      return totals;
    },
    /** Every event published so far (and removes them from the tap). */
    async events(): Promise<Array<Record<string, unknown>>> {
      return (await drain(resources.eventsTapQueueUrl, 100_000)).map(
        (m) => JSON.parse(m.Body ?? '{}') as Record<string, unknown>,
      );
    },
    /** Every dead-lettered message so far, with its reason attributes (and removes them). */
    async deadLetters() {
      return (await drain(resources.deadLetterQueueUrl)).map((m) => ({
        body: m.Body ?? '',
        attributes: Object.fromEntries(
          Object.entries(m.MessageAttributes ?? {}).map(([k, v]) => [k, v.StringValue ?? '']),
        ),
      }));
    },
    /** Messages still on the jobs queue, visible or not; with `delayed`, also those not yet due (holds, requeues). */
    async queueDepth(options: { delayed?: boolean } = {}) {
      const { GetQueueAttributesCommand } = await import('@aws-sdk/client-sqs');
      const r = await aws.clients.sqsClient.send(
        new GetQueueAttributesCommand({
          QueueUrl: resources.jobsQueueUrl,
          AttributeNames: [
            'ApproximateNumberOfMessages',
            'ApproximateNumberOfMessagesNotVisible',
            ...(options.delayed ? (['ApproximateNumberOfMessagesDelayed'] as const) : []),
          ],
        }),
      );
      return (
        Number(r.Attributes?.ApproximateNumberOfMessages ?? 0) +
        Number(r.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0) +
        Number(r.Attributes?.ApproximateNumberOfMessagesDelayed ?? 0)
      );
    },
    async stop() {
      for (const transport of Object.values(deps.dispatch.transports)) await transport?.close();
      await sink.stop();
    },
  };
}
export type DispatchHarness = Awaited<ReturnType<typeof startDispatchHarness>>;

/**
 * The emulators of the test file that calls this, started before its first test and stopped after its last, and
 * dispatch harnesses on them (`harness(…)`), each stopped after the test that started it.
 */
export function useAwsEmulators() {
  let started: AwsEmulators | undefined;
  const running: DispatchHarness[] = [];
  beforeAll(async () => {
    started = await startAwsEmulators();
  });
  afterEach(async () => {
    for (const harness of running.splice(0)) await harness.stop();
  });
  afterAll(async () => {
    await started?.stop();
  });
  return {
    get aws(): AwsEmulators {
      if (!started) throw new Error('the emulators start in beforeAll; use them inside a test or hook');
      return started;
    },
    async harness(options?: Parameters<typeof startDispatchHarness>[1]): Promise<DispatchHarness> {
      const harness = await startDispatchHarness(this.aws, options);
      running.push(harness);
      return harness;
    },
  };
}
