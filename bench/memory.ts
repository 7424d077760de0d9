import { createHash } from 'node:crypto';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { loadDispatchConfig } from '#functions/config.js';
import { buildSendEmailDeps } from '#handlers/build-send-email-deps.js';
import { createSendEmailHandler } from '#handlers/send-email-handler.js';
import { DEFAULT_SETTINGS } from '#infra/settings.js';
import { deliverOneBatch, promptSourceOptions } from '#local/event-source.js';
import { createLocalResources, LOCAL_NAMES, toDispatchEnvironment } from '#local/resources.js';
import { startBenchEmulators } from './emulators.js';
import { benchJob } from './jobs.js';
import { record } from './measure.js';

/**
 * Peak memory of one batch of 10 jobs with an attachment each (by S3 reference, as large files go): 1 MiB under the
 * default budget; 10 MiB with room for the whole batch at once, and under a budget that lets two jobs at a time.
 */
export async function benchMemory(options: { only?: 'claim-checked' } = {}) {
  // The SMTP sink runs beside the emulators, out of this process: what is measured here is the function alone.
  const emulators = await startBenchEmulators({ smtpSink: true });
  const { clients } = emulators;
  const smtp = emulators.endpoints.smtp as { host: string; port: number };
  const MiB = 1024 * 1024;

  /** The dispatch handler as deployed, on resources of its own, with an optional memory budget. */
  const dispatcherFor = async (tag: string, budgetMiB?: number, extraEnv: Record<string, string> = {}) => {
    const names = Object.fromEntries(
      Object.entries(LOCAL_NAMES).map(([k, v]) => [k, `${v}-memory-${tag}`]),
    ) as typeof LOCAL_NAMES;
    const resources = await createLocalResources(clients, DEFAULT_SETTINGS, names);
    // Plaintext SMTP is allowed to a loopback host only; TLS buffers are small next to the attachments.
    const env = {
      ...toDispatchEnvironment(resources),
      DEFAULT_FROM: 'noreply@example.com',
      SMTP_HOST: smtp.host,
      SMTP_PORT: String(smtp.port),
      SMTP_SECURITY: 'none',
      ...extraEnv,
      ...(budgetMiB ? { ATTACHMENT_MEMORY_MB: String(budgetMiB) } : {}),
    };
    const config = loadDispatchConfig(env);
    const logger = new Logger({ logLevel: 'ERROR' });
    const metrics = new Metrics({ namespace: 'EmailDispatch', serviceName: 'email-dispatch', logger });
    (metrics as unknown as { console: unknown }).console = { log: () => {} };
    const deps = await buildSendEmailDeps(config, clients, { logger, metrics }, {});
    return { resources, config, deps, handler: createSendEmailHandler(deps) };
  };

  const measureBatch = async (fileMiB: number, budgetMiB?: number) => {
    const { resources, deps, handler } = await dispatcherFor(`${fileMiB}-${budgetMiB ?? 0}`, budgetMiB);
    const jobs = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const key = `tenants/default/attachments/mem-${fileMiB}-${budgetMiB ?? 0}-${i}.bin`;
        const body = Buffer.alloc(fileMiB * MiB, 0x41 + i);
        await (await clients.s3()).send(new PutObjectCommand({ Bucket: resources.bucket, Key: key, Body: body }));
        const sha256 = createHash('sha256').update(body).digest('base64');
        return benchJob(`mem-${fileMiB}-${budgetMiB ?? 0}-${i}`, {
          attachments: [
            { filename: 'report.bin', s3: { bucket: resources.bucket, key, size: body.byteLength, sha256 } },
          ],
        });
      }),
    );
    await clients.sqsClient.send(
      new SendMessageBatchCommand({
        QueueUrl: resources.jobsQueueUrl,
        Entries: jobs.map((j, n) => ({ Id: String(n), MessageBody: JSON.stringify(j) })),
      }),
    );
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
    const result = await deliverOneBatch(
      promptSourceOptions(clients.sqsClient, resources, handler, { visibilityTimeoutSeconds: 60 }),
    );
    clearInterval(sampler);
    await deps.dispatch.transports.smtp?.close();
    if (result.succeeded !== 10 || (await emulators.sinkCount()) - sentBefore !== 10)
      throw new Error(`memory batch: ${result.succeeded} of 10 sent`);
    const section = `memory: one batch of 10 jobs × ${fileMiB} MiB attachment${budgetMiB ? `, attachment budget ${budgetMiB} MiB` : ', default budget'}`;
    const growth = peakHeap - before.heapUsed - before.external;
    record(
      section,
      'heap + buffers growth at peak',
      growth / MiB,
      'MiB',
      `sampled every 5 ms; ${(growth / (10 * fileMiB * MiB)).toFixed(1)}× the batch's attachments; sink and emulators in another process`,
    );
    record(section, 'RSS growth at peak', (peakRss - before.rss) / MiB, 'MiB');
    record(
      section,
      'RSS at peak, whole process',
      peakRss / MiB,
      'MiB',
      'the benchmark process: the function and its clients',
    );
  };

  /** Uploads in 10 MiB parts, as a producer's SDK does for large bodies (the emulator takes 11 MiB per request). */
  const putLarge = async (bucket: string, key: string, body: Buffer) => {
    const s3 = await clients.s3();
    const { UploadId } = await s3.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: 'application/json' }),
    );
    const parts = [];
    for (let offset = 0, n = 1; offset < body.length; offset += 10 * MiB, n += 1) {
      const { ETag } = await s3.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId,
          PartNumber: n,
          Body: body.subarray(offset, offset + 10 * MiB),
        }),
      );
      parts.push({ ETag, PartNumber: n });
    }
    await s3.send(
      new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }),
    );
  };

  /** A batch of 10 jobs of `jobMiB` each, claim-checked (the job JSON in S3, a reference on the queue). */
  const measureClaimChecked = async (jobMiB: number, budgetMiB?: number) => {
    const tag = `claim-${jobMiB}-${budgetMiB ?? 0}`;
    // Handed-back jobs come again after a second rather than the schedule's default half minute.
    const { resources, config, deps, handler } = await dispatcherFor(tag, budgetMiB, {
      RETRY_BASE_SECONDS: '1',
      RETRY_MAX_DELAY_SECONDS: '1',
    });
    const references = [];
    for (let i = 0; i < 10; i += 1) {
      const job = benchJob(`mem-${tag}-${i}`, { html: `<p>${'x'.repeat(jobMiB * MiB - 64)}</p>`, text: undefined });
      const key = `tenants/default/jobs/mem-${tag}-${i}.json`;
      const body = Buffer.from(JSON.stringify(job));
      await putLarge(resources.bucket, key, body);
      const sha256 = createHash('sha256').update(body).digest('base64');
      references.push({
        version: 1,
        idempotencyKey: job.idempotencyKey,
        claimCheck: { bucket: resources.bucket, key, size: body.byteLength, sha256 },
      });
    }
    await clients.sqsClient.send(
      new SendMessageBatchCommand({
        QueueUrl: resources.jobsQueueUrl,
        Entries: references.map((r, n) => ({ Id: String(n), MessageBody: JSON.stringify(r) })),
      }),
    );
    const sentBefore = await emulators.sinkCount();
    global.gc?.();
    const before = process.memoryUsage();
    let peakRss = before.rss;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }, 5);
    const started = Date.now();
    // Jobs beyond the budget wait; those still waiting at the commit deadline are handed back and come again.
    let done = 0;
    let invocations = 0;
    for (let polls = 0; polls < 60 && done < 10; polls += 1) {
      const result = await deliverOneBatch(
        promptSourceOptions(clients.sqsClient, resources, handler, {
          visibilityTimeoutSeconds: 1,
          functionTimeoutSeconds: 120,
          waitTimeSeconds: 2,
        }),
      );
      done += result.succeeded;
      if (result.received > 0) invocations += 1;
    }
    clearInterval(sampler);
    await deps.dispatch.transports.smtp?.close();
    const sent = (await emulators.sinkCount()) - sentBefore;
    if (done !== 10 || sent !== 10) throw new Error(`claim-check memory batch: ${done} of 10 done, ${sent} sent`);
    const section = `memory: 10 claim-checked jobs × ${jobMiB} MiB${budgetMiB ? `, memory budget ${budgetMiB} MiB` : ', default budget'}`;
    const note = `budget ${config.attachmentMemoryBytes / MiB} MiB; ${invocations} invocation(s), ${Math.round((Date.now() - started) / 1000)} s`;
    record(section, 'RSS growth at peak', (peakRss - before.rss) / MiB, 'MiB', note);
  };

  try {
    if (options.only === 'claim-checked') {
      await measureClaimChecked(38);
      await measureClaimChecked(38, 4000);
      return;
    }
    await measureBatch(1);
    // The same 100 MiB batch with room for all of it at once, then with room for two jobs at a time.
    await measureBatch(10, 1000);
    await measureBatch(10, 20);
    // Claim-checked bodies are reserved before they are read: the default budget (100 MiB outside Lambda), then
    // room for the whole batch at once, as when nothing reserved them.
    await measureClaimChecked(38);
    await measureClaimChecked(38, 4000);
  } finally {
    await emulators.stop();
  }
}
