import { createHash } from 'node:crypto';
import { BatchGetItemCommand } from '@aws-sdk/client-dynamodb';
import { PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import type { Transporter } from 'nodemailer';
import { createSnsEventPublisher } from '#aws/event-publisher.js';
import { createJobStatusStore } from '#aws/job-status-store.js';
import { forEachBounded } from '#core/bounded.js';
import { toOutcomeEvent, type EmailOutcomeEvent, type EventPublisher } from '#core/events.js';
import { hashAddress, toDispatchId, toMessageId } from '#core/message-id.js';
import { toMaskedRecipients } from '#core/job-status.js';
import { DEFAULT_TENANT } from '#core/tenant.js';
import { loadDispatchConfig } from '#functions/config.js';
import { buildSendEmailDeps, type SendEmailEnvironment } from '#handlers/build-send-email-deps.js';
import { createSendEmailHandler, type SendEmailDeps } from '#handlers/send-email-handler.js';
import { DEFAULT_SETTINGS } from '#infra/settings.js';
import type { EmulatorClients } from '#local/emulators.js';
import { createLocalResources, LOCAL_NAMES, toDispatchEnvironment, type LocalResources } from '#local/resources.js';
import type { benchJob } from './jobs.js';

let run = 0;

/** A fresh set of queues, tables and topic for one contender's run, so runs do not see each other's keys. */
export async function freshResources(clients: EmulatorClients, label = 'bench'): Promise<LocalResources> {
  run += 1;
  const names = Object.fromEntries(
    Object.entries(LOCAL_NAMES).map(([k, v]) => [k, `${v}-${label}-${run}`]),
  ) as typeof LOCAL_NAMES;
  // No subscriber on the events topic: delivering events to consumers is SNS's work, not the handler's.
  return createLocalResources(clients, DEFAULT_SETTINGS, names, { tap: false });
}

/**
 * Ours: the real dispatch handler, wired by its factory exactly as the Lambda entry wires it, from the environment
 * it would be deployed with (`env` on top of the resources'), logging only errors and printing no metrics.
 */
export async function buildOurHandler(
  clients: EmulatorClients,
  resources: LocalResources,
  env: Record<string, string>,
  environment: SendEmailEnvironment = {},
): Promise<{ handler: ReturnType<typeof createSendEmailHandler>; deps: SendEmailDeps }> {
  const config = loadDispatchConfig({
    ...toDispatchEnvironment(resources),
    DEFAULT_FROM: 'noreply@example.com',
    ...env,
  });
  const logger = new Logger({ serviceName: 'email-dispatch', logLevel: (process.env.BENCH_LOG ?? 'ERROR') as 'ERROR' });
  const metrics = new Metrics({ namespace: 'EmailDispatch', serviceName: 'email-dispatch', logger });
  (metrics as unknown as { console: { log(): void } }).console = { log() {} };
  const deps = await buildSendEmailDeps(config, clients, { logger, metrics }, environment);
  return { handler: createSendEmailHandler(deps), deps };
}

type Job = ReturnType<typeof benchJob>;

/** A bench job as the message nodemailer sends for it: the fields ours sends, its Message-ID and dispatch id. */
export const toMail = (job: Job, messageId = toMessageId(job.idempotencyKey, 'example.com')) => ({
  from: job.from as string,
  to: job.to as string[],
  subject: job.subject,
  text: job.text,
  html: job.html,
  messageId,
  headers: { 'X-Dispatch-Id': toDispatchId(job.idempotencyKey) },
});

/**
 * The hand-written alternative, as a Lambda handler doing the I/O ours does for a job, and nothing else: per job the
 * job's claim in the status table (the write a cancel cannot pass), a conditional claim of its key (the item
 * Powertools writes: expiry, status, in-progress expiry, payload hash) beside the suppression lookup, the send and the
 * completion record; per ten jobs, as soon as they are done, one PublishBatch of their outcome events, and beside
 * it each job's final status. At
 * most `inFlight` jobs at once (all of the batch when not given). Over SES (`ses` given: the rate limiter ours uses), the send waits for its slot in the
 * rate first. The status writes are the job-status store's own single UpdateItems, as ours makes.
 */
export function createHandWrittenHandler(
  clients: EmulatorClients,
  resources: LocalResources,
  transport: Transporter,
  inFlight?: number,
  ses?: { take(units: number): Promise<void> },
) {
  const publisher = createSnsEventPublisher(clients.sns, resources.eventsTopicArn) as Required<EventPublisher>;
  const status = createJobStatusStore(clients.dynamodb, resources.jobStatusTable, { ttlSeconds: 86_400 });
  const one = async (body: string): Promise<EmailOutcomeEvent> => {
    const job = JSON.parse(body) as Job;
    const ref = { tenant: DEFAULT_TENANT, idempotencyKey: job.idempotencyKey };
    await status.claim(ref, Date.now() + 120_000, 1);
    const id = `email-job#${createHash('md5').update(JSON.stringify(job.idempotencyKey)).digest('base64')}`;
    const hash = createHash('md5').update(JSON.stringify(job)).digest('base64');
    const now = Date.now();
    const to = job.to as string[];
    // The claim and the suppression lookup at once, as ours makes them.
    await Promise.all([
      clients.documents.send(
        new PutCommand({
          TableName: resources.idempotencyTable,
          Item: {
            id,
            expiration: Math.floor(now / 1000) + 86_400,
            status: 'INPROGRESS',
            in_progress_expiration: now + 60_000,
            validation: hash,
          },
          ConditionExpression:
            'attribute_not_exists(#id) OR #expiry < :now OR (#status = :inprogress AND attribute_exists(#ipe) AND #ipe < :nowms)',
          ExpressionAttributeNames: {
            '#id': 'id',
            '#expiry': 'expiration',
            '#status': 'status',
            '#ipe': 'in_progress_expiration',
          },
          ExpressionAttributeValues: { ':now': now / 1000, ':nowms': now, ':inprogress': 'INPROGRESS' },
        }),
      ),
      clients.dynamodb.send(
        new BatchGetItemCommand({
          RequestItems: {
            [resources.suppressionTable]: { Keys: to.map((a) => ({ addressHash: { S: hashAddress(a) } })) },
          },
        }),
      ),
    ]);
    const messageId = toMessageId(job.idempotencyKey, 'example.com');
    // Over SES, each send first waits for its recipients' slot in the instance's share of the account's rate.
    await ses?.take(to.length);
    await transport.sendMail(toMail(job, messageId));
    const recipients = to.map((a) => ({ recipient: a, status: 'accepted' as const, responseCode: 250 }));
    const result = {
      action: 'delivered',
      reason: 'accepted',
      messageId,
      recipients: recipients.map((x) => ({ hash: hashAddress(x.recipient), status: x.status, responseCode: 250 })),
    };
    await clients.documents.send(
      new UpdateCommand({
        TableName: resources.idempotencyTable,
        Key: { id },
        UpdateExpression: 'SET #expiry = :expiry, #status = :status, #data = :data, #validation = :validation',
        ExpressionAttributeNames: {
          '#expiry': 'expiration',
          '#status': 'status',
          '#data': 'data',
          '#validation': 'validation',
        },
        ExpressionAttributeValues: {
          ':expiry': Math.floor(Date.now() / 1000) + 86_400,
          ':status': 'COMPLETED',
          ':data': result,
          ':validation': hash,
        },
      }),
    );
    return toOutcomeEvent(
      'delivered',
      { idempotencyKey: job.idempotencyKey, messageId, transport: ses ? 'ses' : 'smtp', attempts: 1 },
      { reason: 'accepted', recipients },
    );
  };
  // Per ten outcomes one PublishBatch, and beside it each job's final status.
  const publishTen = async (events: EmailOutcomeEvent[]) => {
    await Promise.all([
      publisher.publishBatch(events),
      ...events.map((event) => {
        const { reason, messageId, transport, recipients } = event;
        const ref = { tenant: DEFAULT_TENANT, idempotencyKey: event.idempotencyKey };
        const outcome = { reason, messageId, transport, recipients: toMaskedRecipients(recipients) };
        return status.record(ref, { state: 'delivered', attempts: 1, outcome });
      }),
    ]);
  };
  return async (event: SQSEvent): Promise<SQSBatchResponse> => {
    const pending: EmailOutcomeEvent[] = [];
    const publishing: Array<Promise<void>> = [];
    // Each ten as soon as it is done, as ours publishes them.
    await forEachBounded(event.Records, inFlight ?? event.Records.length, async (record) => {
      pending.push(await one(record.body));
      if (pending.length >= 10) publishing.push(publishTen(pending.splice(0, 10)));
    });
    if (pending.length > 0) publishing.push(publishTen(pending.splice(0)));
    await Promise.all(publishing);
    return { batchItemFailures: [] };
  };
}
