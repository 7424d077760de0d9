import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { DEFAULT_SETTINGS } from '#infra/settings.js';
import { deliverOneBatch, promptSourceOptions } from '#local/event-source.js';
import { createLocalResources, LOCAL_NAMES } from '#local/resources.js';
import { startSmtpSink } from '#local/smtp-sink.js';
import { buildOurHandler } from './contenders.js';
import { startBenchEmulators } from './emulators.js';
import { benchJob } from './jobs.js';
import { record } from './measure.js';

/**
 * Several handler instances at once against a relay that enforces `quota` recipients a second (SES's default
 * production rate is 14): the throughput they reach together, as a share of the quota, and the rate replies met.
 */
export async function benchRate(jobCount: number, instances = 4, quota = 14) {
  const emulators = await startBenchEmulators();
  const sink = await startSmtpSink({ maxRecipientsPerSecond: quota });
  try {
    const names = Object.fromEntries(
      Object.entries(LOCAL_NAMES).map(([k, v]) => [k, `${v}-rate`]),
    ) as typeof LOCAL_NAMES;
    const resources = await createLocalResources(emulators.clients, DEFAULT_SETTINGS, names, { tap: false });
    const env = {
      SMTP_HOST: sink.host,
      SMTP_PORT: String(sink.port),
      SMTP_SECURITY: 'none',
      SMTP_MAX_SEND_RATE: String(quota),
      RATE_SHARES: String(instances),
      RETRY_BASE_SECONDS: '1',
      RETRY_MAX_DELAY_SECONDS: '2',
    };
    const handlers = await Promise.all(
      Array.from({ length: instances }, async () => (await buildOurHandler(emulators.clients, resources, env)).handler),
    );
    // One to three recipients a job: SES and its SMTP interface count recipients, not messages.
    const jobs = Array.from({ length: jobCount }, (_, i) =>
      benchJob(`rate-${i}`, { to: Array.from({ length: (i % 3) + 1 }, (_, n) => `r${i}-${n}@example.net`) }),
    );
    for (let i = 0; i < jobs.length; i += 10) {
      const entries = jobs.slice(i, i + 10).map((job, n) => ({ Id: String(n), MessageBody: JSON.stringify(job) }));
      await emulators.clients.sqsClient.send(
        new SendMessageBatchCommand({ QueueUrl: resources.jobsQueueUrl, Entries: entries }),
      );
    }
    const until = Date.now() + 600_000;
    await Promise.all(
      handlers.map(async (handler) => {
        while (sink.received.length < jobs.length && Date.now() < until) {
          const result = await deliverOneBatch(promptSourceOptions(emulators.clients.sqsClient, resources, handler));
          if (result.received === 0) await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }),
    );
    const recipients = sink.received.reduce((sum, m) => sum + m.to.length, 0);
    const times = sink.received.map((m) => m.receivedAt);
    const seconds = (Math.max(...times) - Math.min(...times)) / 1000;
    // Each instance's first job goes at once (its bucket starts full); the rest are paced.
    const perSecond = (recipients - instances) / seconds;
    const section = `rates: ${instances} instances, a relay enforcing ${quota} recipients/s`;
    record(section, 'recipients per second', perSecond, '/s', `${recipients} recipients in ${seconds.toFixed(1)} s`);
    record(section, 'share of the quota', perSecond / quota, 'x', 'at least 0.9 wanted');
    record(section, 'rate replies', sink.rateReplies.length, '', '454 Throttling failure answers');
  } finally {
    await sink.stop();
    await emulators.stop();
  }
}
