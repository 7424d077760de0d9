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
import { startBenchEmulators } from './emulators.js';
import { benchJob } from './jobs.js';
import { record } from './measure.js';

/**
 * Peak memory of one batch of 10 jobs with an attachment each (by S3 reference, as large files go): 1 MiB under the
 * default budget; 10 MiB with room for the whole batch at once, and under a budget that lets two jobs at a time.
 */
export async function benchMemory() {
  // The SMTP sink runs beside the emulators, out of this process: what is measured here is the function alone.
  const emulators = await startBenchEmulators({ smtpSink: true });
  const { clients } = emulators;
  const smtp = emulators.endpoints.smtp as { host: string; port: number };
  const MiB = 1024 * 1024;

  const measureBatch = async (fileMiB: number, budgetMiB?: number) => {
    const names = Object.fromEntries(Object.entries(LOCAL_NAMES).map(([k, v]) => [k, `${v}-memory-${fileMiB}-${budgetMiB ?? 0}`])) as typeof LOCAL_NAMES;
    const resources = await createLocalResources(clients, DEFAULT_SETTINGS, names);
    // Plaintext SMTP is allowed to a loopback host only; TLS buffers are small next to the attachments.
    const env = { ...toDispatchEnvironment(resources), DEFAULT_FROM: 'noreply@example.com', SMTP_HOST: smtp.host, SMTP_PORT: String(smtp.port), SMTP_SECURITY: 'none', ...(budgetMiB ? { ATTACHMENT_MEMORY_MB: String(budgetMiB) } : {}) };
    const config = loadDispatchConfig(env);
    const logger = new Logger({ logLevel: 'ERROR' });
    const metrics = new Metrics({ namespace: 'EmailDispatch', serviceName: 'email-dispatch', logger });
    (metrics as unknown as { console: unknown }).console = { log: () => {} };
    const deps = await buildSendEmailDeps(config, clients, { logger, metrics }, {});
    const handler = createSendEmailHandler(deps);
    const jobs = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const key = `attachments/mem-${fileMiB}-${budgetMiB ?? 0}-${i}.bin`;
        await (await clients.s3()).send(new PutObjectCommand({ Bucket: resources.bucket, Key: key, Body: Buffer.alloc(fileMiB * MiB, 0x41 + i) }));
        return benchJob(`mem-${fileMiB}-${budgetMiB ?? 0}-${i}`, { attachments: [{ filename: 'report.bin', s3: { bucket: resources.bucket, key } }] });
      }),
    );
    await clients.sqsClient.send(new SendMessageBatchCommand({ QueueUrl: resources.jobsQueueUrl, Entries: jobs.map((j, n) => ({ Id: String(n), MessageBody: JSON.stringify(j) })) }));
    // `npm run bench` runs node with --expose-gc: the baseline is what is live, not garbage from before.
    const sentBefore = await emulators.sinkCount();
    global.gc?.();
    const before = process.memoryUsage();
    let peakRss = before.rss;
    let peakHeap = before.heapUsed + before.external;
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      peakRss = Math.max(peakRss, m.rss);
      peakHeap = Math.max(peakHeap, m.heapUsed + m.external);
    }, 5);
    const result = await deliverOneBatch({ sqs: clients.sqsClient, queueUrl: resources.jobsQueueUrl, queueArn: resources.jobsQueueArn, handler, functionName: 'send-email', batchSize: 10, maxBatchingWindowSeconds: 0, visibilityTimeoutSeconds: 60, functionTimeoutSeconds: 60, waitTimeSeconds: 0 });
    clearInterval(sampler);
    await deps.dispatch.transports.smtp?.close();
    if (result.succeeded !== 10 || (await emulators.sinkCount()) - sentBefore !== 10) throw new Error(`memory batch: ${result.succeeded} of 10 sent`);
    const section = `memory: one batch of 10 jobs × ${fileMiB} MiB attachment${budgetMiB ? `, attachment budget ${budgetMiB} MiB` : ', default budget'}`;
    const growth = peakHeap - before.heapUsed - before.external;
    record(section, 'heap + buffers growth at peak', growth / MiB, 'MiB', `sampled every 5 ms; ${(growth / (10 * fileMiB * MiB)).toFixed(1)}× the batch's attachments; sink and emulators in another process`);
    record(section, 'RSS growth at peak', (peakRss - before.rss) / MiB, 'MiB');
    record(section, 'RSS at peak, whole process', peakRss / MiB, 'MiB', 'the benchmark process: the function and its clients');
  };

  try {
    await measureBatch(1);
    // The same 100 MiB batch with room for all of it at once, then with room for two jobs at a time.
    await measureBatch(10, 1000);
    await measureBatch(10, 20);
  } finally {
    await emulators.stop();
  }
}
