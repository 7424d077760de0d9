import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { BasePersistenceLayer, type IdempotencyRecord } from '@aws-lambda-powertools/idempotency/persistence';
import type { SQSEvent } from 'aws-lambda';
import { toAddress } from '#core/email-job.js';
import { createSendEmailHandler } from '#handlers/send-email-handler.js';
import { createLambdaContext } from '#local/lambda-context.js';
import { toSqsRecord } from '#local/event-source.js';
import { benchJob } from './jobs.js';
import { record } from './measure.js';

/** Powertools' persistence contract kept in memory: the idempotency logic runs whole, without a table. */
class InMemoryPersistence extends BasePersistenceLayer {
  readonly #records = new Map<string, IdempotencyRecord>();
  protected async _getRecord(key: string): Promise<IdempotencyRecord> {
    return this.#records.get(key) as IdempotencyRecord;
  }
  protected async _putRecord(r: IdempotencyRecord): Promise<void> {
    this.#records.set(r.idempotencyKey, r);
  }
  protected async _updateRecord(r: IdempotencyRecord): Promise<void> {
    this.#records.set(r.idempotencyKey, r);
  }
  protected async _deleteRecord(r: IdempotencyRecord): Promise<void> {
    this.#records.delete(r.idempotencyKey);
  }
}

/**
 * What the handler's own work costs with every outside call answered at once by a stand-in: middy, Powertools
 * batch, parser and idempotency, suppression and classification, metrics and the outcome events. CPU a job, over
 * 10,000 jobs in batches of ten after 2,000 to warm up.
 */
export async function benchOverhead() {
  const logger = new Logger({ logLevel: 'ERROR' });
  const metrics = new Metrics({ namespace: 'EmailDispatch', serviceName: 'email-dispatch', logger });
  (metrics as unknown as { console: unknown }).console = { log: () => {} };
  const handler = createSendEmailHandler({
    logger,
    metrics,
    dispatch: {
      transports: {
        smtp: {
          name: 'smtp',
          send: async (message) => ({ accepted: message.to.map(toAddress), rejected: [], providerMessageId: 'queued' }),
          close: async () => {},
        },
      },
      defaultTransport: 'smtp',
      suppressions: { findSuppressed: async () => new Set() },
      loadAttachment: async () => new Uint8Array(),
      messageIdDomain: 'example.com',
      defaultFrom: 'noreply@example.com',
    },
    persistenceStore: new InMemoryPersistence(),
    idempotencyTtlSeconds: 86_400,
    events: { publish: async () => {}, publishBatch: async () => [] },
    deadLetters: { send: async () => {} },
    visibility: { postpone: async () => {} },
    retry: { baseDelaySeconds: 30, maxDelaySeconds: 900, lifetimeSeconds: 21_600 },
    deadlineMarginMs: 5000,
    finishReserveMs: 2000,
    minAttemptMs: 1000,
  });
  let n = 0;
  const batch = (): SQSEvent => ({
    Records: Array.from({ length: 10 }, () => {
      n += 1;
      return toSqsRecord(
        {
          MessageId: `m-${n}`,
          ReceiptHandle: `r-${n}`,
          Body: JSON.stringify(benchJob(`overhead-${n}`)),
          Attributes: { ApproximateReceiveCount: '1', SentTimestamp: String(Date.now()) },
        },
        'arn:aws:sqs:eu-west-1:111111111111:jobs',
      );
    }),
  });
  const run = async (batches: number) => {
    for (let i = 0; i < batches; i += 1) {
      const response = await handler(batch(), createLambdaContext('send-email', 60_000));
      if (response.batchItemFailures.length > 0) throw new Error('overhead bench: a record failed');
    }
  };
  await run(200);
  const cpu = process.cpuUsage();
  await run(1000);
  const used = process.cpuUsage(cpu);
  record(
    'handler overhead (every outside call answered at once by a stand-in)',
    'CPU a job',
    (used.user + used.system) / 1000 / 10_000,
    'ms',
    'middy, Powertools batch, parser and idempotency, classification, metrics, events',
  );
}
