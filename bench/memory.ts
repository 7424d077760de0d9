import { PutObjectCommand } from '@aws-sdk/client-s3';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { loadDispatchConfig } from '#functions/config.js';
import { buildSendEmailDeps } from '#handlers/build-send-email-deps.js';
import { createSendEmailHandler } from '#handlers/send-email-handler.js';
import { DEFAULT_SETTINGS } from '#infra/settings.js';
import { deliverOneBatch } from '#local/event-source.js';
import { createLocalResources, LOCAL_NAMES, toDispatchEnvironment } from '#local/resources.js';
import { startSmtpSink } from '#local/smtp-sink.js';
import { localTlsCertificate } from '#local/tls-certificate.js';
import { startBenchEmulators } from './emulators.js';
import { benchJob } from './jobs.js';
import { record } from './measure.js';

/** Peak memory of one batch of 10 jobs, each with a 1 MB attachment (by S3 reference, as large files go). */
export async function benchMemory() {
  const emulators = await startBenchEmulators();
  const { clients } = emulators;
  const cert = localTlsCertificate();
  const credentials = { username: 'bench', password: 'bench-pass' };
  const sink = await startSmtpSink({ tls: cert, credentials });
  const names = Object.fromEntries(Object.entries(LOCAL_NAMES).map(([k, v]) => [k, `${v}-memory`])) as typeof LOCAL_NAMES;
  const resources = await createLocalResources(clients, DEFAULT_SETTINGS, names);
  try {
    const config = loadDispatchConfig({ ...toDispatchEnvironment(resources), DEFAULT_FROM: 'noreply@example.com', SMTP_HOST: sink.host, SMTP_PORT: String(sink.port) });
    const logger = new Logger({ logLevel: 'ERROR' });
    const metrics = new Metrics({ namespace: 'EmailDispatch', serviceName: 'email-dispatch', logger });
    (metrics as unknown as { console: unknown }).console = { log: () => {} };
    const deps = await buildSendEmailDeps(config, clients, { logger, metrics }, { smtpCredentials: { get: async () => credentials }, smtpTls: { ca: cert.cert } });
    const handler = createSendEmailHandler(deps);
    const file = Buffer.alloc(1024 * 1024, 0x41);
    const jobs = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        await (await clients.s3()).send(new PutObjectCommand({ Bucket: resources.bucket, Key: `attachments/mem-${i}.bin`, Body: file }));
        return benchJob(`mem-${i}`, { attachments: [{ filename: 'report.bin', s3: { bucket: resources.bucket, key: `attachments/mem-${i}.bin` } }] });
      }),
    );
    await clients.sqs.send(new SendMessageBatchCommand({ QueueUrl: resources.jobsQueueUrl, Entries: jobs.map((j, n) => ({ Id: String(n), MessageBody: JSON.stringify(j) })) }));
    // `npm run bench` runs node with --expose-gc: the baseline is what is live, not garbage from before.
    global.gc?.();
    const before = process.memoryUsage();
    const sinkBefore = sink.received.length;
    let peakRss = before.rss;
    let peakHeap = before.heapUsed + before.external;
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      peakRss = Math.max(peakRss, m.rss);
      peakHeap = Math.max(peakHeap, m.heapUsed + m.external);
    }, 5);
    const result = await deliverOneBatch({ sqs: clients.sqs, queueUrl: resources.jobsQueueUrl, queueArn: resources.jobsQueueArn, handler, functionName: 'send-email', batchSize: 10, maxBatchingWindowSeconds: 0, visibilityTimeoutSeconds: 60, functionTimeoutSeconds: 60, waitTimeSeconds: 0 });
    clearInterval(sampler);
    if (result.succeeded !== 10) throw new Error(`memory batch: ${result.succeeded} of 10 sent`);
    const section = 'memory: one batch of 10 jobs × 1 MB attachment';
    const MiB = 1024 * 1024;
    // The SMTP sink shares the process and keeps what it received: that is the sink's memory, not the function's.
    const sinkHeld = sink.received.slice(sinkBefore).reduce((sum, m) => sum + m.raw.length, 0);
    record(section, 'heap + buffers growth at peak', (peakHeap - before.heapUsed - before.external) / MiB, 'MiB', `sampled every 5 ms; includes ${(sinkHeld / MiB).toFixed(1)} MiB the SMTP sink keeps; emulators in their own process`);
    record(section, 'the same, less what the sink keeps', (peakHeap - before.heapUsed - before.external - sinkHeld) / MiB, 'MiB');
    record(section, 'RSS growth at peak', (peakRss - before.rss) / MiB, 'MiB');
    record(section, 'RSS at peak, whole process', peakRss / MiB, 'MiB', 'the SMTP sink and the benchmark included');
    await deps.dispatch.transports.smtp?.close();
  } finally {
    await sink.stop();
    await emulators.stop();
  }
}
