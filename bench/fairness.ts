import { pathToFileURL } from 'node:url';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { loadDispatchConfig } from '#functions/config.js';
import { buildSendEmailDeps } from '#handlers/build-send-email-deps.js';
import { createSendEmailHandler } from '#handlers/send-email-handler.js';
import { DEFAULT_SETTINGS, deriveQueueSettings } from '#infra/settings.js';
import { runEventSource } from '#local/event-source.js';
import { createLocalResources, LOCAL_NAMES, toDispatchEnvironment } from '#local/resources.js';
import { startSmtpSink } from '#local/smtp-sink.js';
import { startBenchEmulators, type BenchEmulators } from './emulators.js';
import { benchJob } from './jobs.js';
import { percentile, record, replaceSectionsInResults, rows } from './measure.js';

const SECTION = 'fairness: tenant A queues a backlog, then tenant B a few jobs';

/**
 * One run: the dispatch handler under the twin's event source (the default batch size and concurrency cap) while
 * tenant A puts `backlog` jobs on the queue and then tenant B `quiet` jobs, each tenant as its MessageGroupId.
 * Resolves with B's latencies (queued → at the SMTP sink), ms, and how many of A's jobs went out before B's last.
 */
async function runOnce(emulators: BenchEmulators, fair: boolean, backlog: number, quiet: number) {
  const sink = await startSmtpSink({});
  const names = Object.fromEntries(
    Object.entries(LOCAL_NAMES).map(([k, v]) => [k, `${v}-fair-${fair}`]),
  ) as typeof LOCAL_NAMES;
  const settings = DEFAULT_SETTINGS;
  const resources = await createLocalResources(emulators.clients, settings, names, { tap: false });
  const config = loadDispatchConfig({
    ...toDispatchEnvironment(resources),
    DEFAULT_FROM: 'noreply@example.com',
    SMTP_HOST: sink.host,
    SMTP_PORT: String(sink.port),
    SMTP_SECURITY: 'none',
  });
  const logger = new Logger({ serviceName: 'email-dispatch', logLevel: 'ERROR' });
  const metrics = new Metrics({ namespace: 'EmailDispatch', serviceName: 'email-dispatch', logger });
  (metrics as unknown as { console: { log(): void } }).console = { log() {} };
  const deps = await buildSendEmailDeps(config, emulators.clients, { logger, metrics }, {});
  const handler = createSendEmailHandler(deps);
  const abort = new AbortController();
  const eventSource = runEventSource(
    {
      sqs: emulators.clients.sqsClient,
      queueUrl: resources.jobsQueueUrl,
      queueArn: resources.jobsQueueArn,
      handler,
      functionName: 'send-email',
      batchSize: settings.batchSize,
      maxBatchingWindowSeconds: settings.maxBatchingWindowSeconds,
      visibilityTimeoutSeconds: deriveQueueSettings(settings).visibilityTimeoutSeconds,
      functionTimeoutSeconds: settings.functionTimeoutSeconds,
      maxConcurrency: settings.maxConcurrency,
      fair,
    },
    abort.signal,
  );
  try {
    const queuedAt = new Map<string, number>();
    const enqueue = async (tenant: string, count: number) => {
      for (let i = 0; i < count; i += 10) {
        const jobs = Array.from({ length: Math.min(10, count - i) }, (_, n) => benchJob(`${tenant}-${i + n}`));
        const entries = jobs.map((job, n) => ({
          Id: String(n),
          MessageBody: JSON.stringify(job),
          MessageGroupId: tenant,
        }));
        await emulators.clients.sqsClient.send(
          new SendMessageBatchCommand({ QueueUrl: resources.jobsQueueUrl, Entries: entries }),
        );
        const now = Date.now();
        for (const job of jobs) queuedAt.set(String(job.to?.[0]), now);
      }
    };
    await enqueue('tenant-a', backlog);
    await enqueue('tenant-b', quiet);
    const isB = (to: string) => to.startsWith('tenant-b-');
    const until = Date.now() + 900_000;
    while (sink.received.filter((m) => m.to.some(isB)).length < quiet && Date.now() < until)
      await new Promise((resolve) => setTimeout(resolve, 100));
    const received = [...sink.received];
    const latencies = received
      .filter((m) => m.to.some(isB))
      .map((m) => m.receivedAt - (queuedAt.get(m.to[0] as string) ?? m.receivedAt));
    const lastB = Math.max(...received.filter((m) => m.to.some(isB)).map((m) => m.receivedAt));
    const aBefore = received.filter((m) => !m.to.some(isB) && m.receivedAt <= lastB).length;
    return { latencies, aBefore };
  } finally {
    abort.abort();
    await eventSource;
    for (const transport of Object.values(deps.dispatch.transports)) await transport?.close();
    await sink.stop();
  }
}

/** Tenant B's p50 and p95 latency behind tenant A's backlog, oldest-first (the emulator) and fair (SQS fair queues). */
export async function benchFairness(backlog = 5000, quiet = 50) {
  const emulators = await startBenchEmulators();
  try {
    for (const fair of [false, true]) {
      const { latencies, aBefore } = await runOnce(emulators, fair, backlog, quiet);
      const how = fair ? 'fair dequeue by MessageGroupId' : 'oldest first';
      const note = `${backlog} of A's jobs queued first; ${aBefore} of them delivered before B's last`;
      record(SECTION, `B p50 latency, ${how}`, percentile(latencies, 50) / 1000, 's', note);
      record(SECTION, `B p95 latency, ${how}`, percentile(latencies, 95) / 1000, 's');
    }
  } finally {
    await emulators.stop();
  }
}

// Run alone (`tsx bench/lambda-node.ts bench/fairness.ts`): its rows replace this section's in bench/results.json.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  await benchFairness();
  replaceSectionsInResults();
  for (const r of rows) console.log(`${r.name}: ${r.value} ${r.unit} ${r.note ?? ''}`);
  process.exit(0);
}
