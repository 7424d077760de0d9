import { BatchGetItemCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import nodemailer from 'nodemailer';
import { createAwsClients, type AwsClients } from '#aws/clients.js';
import { hashAddress, toDispatchId, toMessageId } from '#core/message-id.js';
import { loadDispatchConfig } from '#functions/config.js';
import { buildSendEmailDeps } from '#handlers/build-send-email-deps.js';
import { createSendEmailHandler } from '#handlers/send-email-handler.js';
import { DEFAULT_SETTINGS } from '#infra/settings.js';
import { startDynalite, startFauxqs } from '#local/emulators.js';
import { deliverOneBatch } from '#local/event-source.js';
import { createLocalResources, LOCAL_NAMES, toDispatchEnvironment, type LocalResources } from '#local/resources.js';
import { startSmtpSink, type SmtpSink } from '#local/smtp-sink.js';
import { localTlsCertificate } from '#local/tls-certificate.js';
import { benchJob } from './jobs.js';
import { percentile, record } from './measure.js';

const CONNECTIONS = 5;
const credentials = { username: 'bench', password: 'bench-pass' };
let run = 0;

async function freshResources(clients: AwsClients): Promise<LocalResources> {
  run += 1;
  const names = Object.fromEntries(Object.entries(LOCAL_NAMES).map(([k, v]) => [k, `${v}-bench-${run}`])) as typeof LOCAL_NAMES;
  // No subscriber on the events topic: delivering events to consumers is SNS's work, not the handler's.
  return createLocalResources(clients, DEFAULT_SETTINGS, names, { tap: false });
}

async function enqueue(clients: AwsClients, queueUrl: string, prefix: string, count: number) {
  const enqueuedAt = new Map<string, number>();
  const jobs = Array.from({ length: count }, (_, i) => benchJob(`${prefix}-${i}`));
  for (let i = 0; i < jobs.length; i += 10) {
    const chunk = jobs.slice(i, i + 10);
    await clients.sqs.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: chunk.map((j, n) => ({ Id: String(n), MessageBody: JSON.stringify(j) })) }));
    const now = Date.now();
    for (const j of chunk) enqueuedAt.set(toDispatchId(j.idempotencyKey), now);
  }
  return enqueuedAt;
}

/** msg/s from the first receive to the last message at the sink, and enqueue→sink latency percentiles. */
function summarise(sink: SmtpSink, before: number, enqueuedAt: Map<string, number>, startedAt: number) {
  const received = sink.received.slice(before);
  const latencies: number[] = [];
  let last = startedAt;
  for (const m of received) {
    const id = /X-Dispatch-Id:\s*([a-f0-9]{32})/i.exec(m.raw.subarray(0, 4096).toString())?.[1];
    const at = id ? enqueuedAt.get(id) : undefined;
    if (at) latencies.push(m.receivedAt - at);
    last = Math.max(last, m.receivedAt);
  }
  return { rate: (received.length / Math.max(1, last - startedAt)) * 1000, p50: percentile(latencies, 50), p99: percentile(latencies, 99), count: received.length };
}

async function drainWith(concurrency: number, count: number, sink: SmtpSink, before: number, poll: () => Promise<number>) {
  const until = Date.now() + 120_000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sink.received.length - before < count && Date.now() < until) {
        if ((await poll()) === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }),
  );
}

/**
 * The whole pipeline on the emulators (fauxqs → handler with idempotency and suppression → SMTP sink), against a
 * minimal hand-written loop doing the same I/O on the same emulators, at 1, 2, 5 and 10 concurrent batches.
 */
export async function benchPipeline(count: number, ceiling: number) {
  const fauxqs = await startFauxqs();
  const dynamo = await startDynalite();
  const cert = localTlsCertificate();
  const sink = await startSmtpSink({ tls: cert, credentials });
  const clients = createAwsClients({ region: 'eu-west-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, endpoints: { sqs: fauxqs.endpoint, sns: fauxqs.endpoint, s3: fauxqs.endpoint, dynamodb: dynamo.endpoint } });
  const section = `end to end (fauxqs + dynalite + SMTP sink, ${count} jobs a run)`;
  try {
    for (const concurrency of [1, 2, 5, 10]) {
      // Ours: the real handler, wired as in production.
      const ours = await freshResources(clients);
      const config = loadDispatchConfig({ ...toDispatchEnvironment(ours), DEFAULT_FROM: 'noreply@example.com', SMTP_HOST: sink.host, SMTP_PORT: String(sink.port), SMTP_MAX_CONNECTIONS: String(CONNECTIONS) });
      const logger = new Logger({ serviceName: 'email-dispatch', logLevel: 'ERROR' });
      const metrics = new Metrics({ namespace: 'EmailDispatch', serviceName: 'email-dispatch' });
      (metrics as unknown as { console: { log: () => void } }).console = { log: () => {} } as never;
      const deps = await buildSendEmailDeps(config, clients, { logger, metrics }, { smtpCredentials: { get: async () => credentials }, smtpTls: { ca: cert.cert } });
      const handler = createSendEmailHandler(deps);
      let before = sink.received.length;
      let enqueuedAt = await enqueue(clients, ours.jobsQueueUrl, `ours-${concurrency}`, count);
      let startedAt = Date.now();
      await drainWith(concurrency, count, sink, before, async () =>
        (await deliverOneBatch({ sqs: clients.sqs, queueUrl: ours.jobsQueueUrl, queueArn: ours.jobsQueueArn, handler, functionName: 'send-email', batchSize: 10, maxBatchingWindowSeconds: 0, visibilityTimeoutSeconds: 60, functionTimeoutSeconds: 60, waitTimeSeconds: 0 })).received,
      );
      const o = summarise(sink, before, enqueuedAt, startedAt);
      await deps.dispatch.transports.smtp?.close();

      // The hand-written loop: receive, conditional put, suppression lookup, send, update, delete.
      const base = await freshResources(clients);
      const raw = nodemailer.createTransport({ pool: true, host: sink.host, port: sink.port, secure: false, requireTLS: true, auth: { user: credentials.username, pass: credentials.password }, maxConnections: CONNECTIONS, maxMessages: Infinity, tls: { ca: cert.cert }, logger: false });
      before = sink.received.length;
      enqueuedAt = await enqueue(clients, base.jobsQueueUrl, `base-${concurrency}`, count);
      startedAt = Date.now();
      await drainWith(concurrency, count, sink, before, async () => {
        const r = await clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: base.jobsQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 60 }));
        const messages = r.Messages ?? [];
        await Promise.all(
          messages.map(async (m) => {
            const job = JSON.parse(m.Body ?? '{}') as ReturnType<typeof benchJob>;
            const id = `email-job#${job.idempotencyKey}`;
            await clients.dynamodb.send(new PutItemCommand({ TableName: base.idempotencyTable, Item: { id: { S: id }, status: { S: 'INPROGRESS' } }, ConditionExpression: 'attribute_not_exists(id)' }));
            await clients.dynamodb.send(new BatchGetItemCommand({ RequestItems: { [base.suppressionTable]: { Keys: (job.to as string[]).map((a) => ({ addressHash: { S: hashAddress(a) } })) } } }));
            await raw.sendMail({ from: job.from as string, to: job.to as string[], subject: job.subject, text: job.text, html: job.html, messageId: toMessageId(job.idempotencyKey, 'example.com'), headers: { 'X-Dispatch-Id': toDispatchId(job.idempotencyKey) } });
            await clients.dynamodb.send(new UpdateItemCommand({ TableName: base.idempotencyTable, Key: { id: { S: id } }, UpdateExpression: 'SET #s = :c', ExpressionAttributeNames: { '#s': 'status' }, ExpressionAttributeValues: { ':c': { S: 'COMPLETED' } } }));
          }),
        );
        if (messages.length > 0) await clients.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: base.jobsQueueUrl, Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })) }));
        return messages.length;
      });
      const b = summarise(sink, before, enqueuedAt, startedAt);
      raw.close();

      record(section, `ours, ${concurrency} concurrent batch${concurrency > 1 ? 'es' : ''}`, o.rate, 'msg/s', `p50 ${Math.round(o.p50)} ms, p99 ${Math.round(o.p99)} ms`);
      record(section, `hand-written loop, ${concurrency}`, b.rate, 'msg/s', `p50 ${Math.round(b.p50)} ms, p99 ${Math.round(b.p99)} ms`);
      record(section, `ratio ours / loop, ${concurrency}`, o.rate / b.rate, '×', `target ≥ 0.9; ours / transport ceiling ${(o.rate / ceiling).toFixed(2)}×`);
    }
  } finally {
    await sink.stop();
    await fauxqs.stop();
    await dynamo.stop();
  }
}
