import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { afterEach, describe, expect, it } from 'vitest';
import { buildSendEmailDeps } from '#handlers/build-send-email-deps.js';
import { createSendEmailHandler } from '#handlers/send-email-handler.js';
import { RATE_HEADROOM } from '#core/rate-limiter.js';
import { deliverOneBatch, promptSourceOptions } from '#local/event-source.js';
import { localTlsCertificate } from '#local/tls-certificate.js';
import { captureOutput } from '../support/captured-output.js';
import { emailJobFactory } from '../support/factories.js';
import { SMTP_USER, type DispatchHarness, useAwsEmulators } from '../support/dispatch-harness.js';

const env = useAwsEmulators();
let h: DispatchHarness;
const instances: Array<Awaited<ReturnType<typeof buildSendEmailDeps>>> = [];

afterEach(async () => {
  for (const deps of instances.splice(0))
    for (const transport of Object.values(deps.dispatch.transports)) await transport?.close();
});

const QUOTA = 14;
const INSTANCES = 4;
const WARM_UP_MS = 3000;

/** Another handler instance on the same queues and tables, as Lambda runs one per concurrent invocation. */
async function anotherInstance(harness: DispatchHarness) {
  const logger = new Logger({ serviceName: 'email-dispatch', logLevel: 'WARN' });
  const metrics = new Metrics({ namespace: 'EmailDispatch', serviceName: 'email-dispatch', logger });
  captureOutput(logger, metrics);
  const deps = await buildSendEmailDeps(
    harness.config,
    env.aws.clients,
    { logger, metrics },
    { smtpCredentials: { get: async () => SMTP_USER }, smtpTls: { ca: localTlsCertificate().cert } },
  );
  instances.push(deps);
  return createSendEmailHandler(deps);
}

/** A harness whose relay enforces QUOTA recipients a second, its rate split over INSTANCES, with `extra` on top. */
const relayAtQuota = (extra: Record<string, string>) =>
  env.harness({
    sink: { maxRecipientsPerSecond: QUOTA },
    env: { SMTP_MAX_SEND_RATE: String(QUOTA), RATE_SHARES: String(INSTANCES), RETRY_BASE_SECONDS: '1', ...extra },
  });

/** Puts the jobs on the queue, ten to a request. */
async function enqueueAll(jobs: object[]) {
  for (let i = 0; i < jobs.length; i += 10) {
    await env.aws.clients.sqsClient.send(
      new SendMessageBatchCommand({
        QueueUrl: h.resources.jobsQueueUrl,
        Entries: jobs.slice(i, i + 10).map((job, n) => ({ Id: String(n), MessageBody: JSON.stringify(job) })),
      }),
    );
  }
}

describe('rates that follow the quota', () => {
  it(`keeps ${INSTANCES} instances together under a relay enforcing ${QUOTA} recipients a second, with no rate replies`, async () => {
    // Prepare: each instance takes a quarter of the relay's rate; jobs of one to three recipients.
    h = await relayAtQuota({ SMTP_MAX_CONNECTIONS: '3', RETRY_MAX_DELAY_SECONDS: '2' });
    const handlers = [
      h.handler,
      ...(await Promise.all(Array.from({ length: INSTANCES - 1 }, () => anotherInstance(h)))),
    ];
    const jobs = Array.from({ length: 84 }, (_, i) =>
      emailJobFactory({ to: Array.from({ length: (i % 3) + 1 }, (_, n) => `user${i}-${n}@example.net`) }),
    );
    const recipients = jobs.reduce((sum, job) => sum + (job.to?.length ?? 0), 0);
    await enqueueAll(jobs);

    // Act: every instance polls the queue at once until it is empty (bounded).
    const until = Date.now() + 90_000;
    await Promise.all(
      handlers.map(async (handler) => {
        while (Date.now() < until) {
          const result = await deliverOneBatch(promptSourceOptions(env.aws.clients.sqsClient, h.resources, handler));
          // Delayed messages too: a follow-up for recipients refused for now comes back after the retry delay.
          if (result.received === 0 && (await h.queueDepth({ delayed: true })) === 0) return;
        }
      }),
    );

    // Assess
    const received = h.sink.received;
    const delivered = received.reduce((sum, m) => sum + m.to.length, 0);
    const copies = received.flatMap((m) => m.to);
    const lost = recipients - new Set(copies).size;
    console.log(`rate ledger: recipients ${recipients}, lost ${lost}, twice ${copies.length - new Set(copies).size}`);
    const first = Math.min(...received.map((m) => m.receivedAt));
    const last = Math.max(...received.map((m) => m.receivedAt));
    // The first message of each instance goes at once (a bucket starts full); the rest are paced.
    const perSecond = (delivered - INSTANCES) / ((last - first) / 1000);
    console.log(
      `rate: ${INSTANCES} instances, ${delivered} recipients in ${((last - first) / 1000).toFixed(1)} s: ${perSecond.toFixed(2)} recipients/s = ${(perSecond / QUOTA).toFixed(2)} x the quota of ${QUOTA}/s, ${h.sink.rateReplies.length} rate replies`,
    );
    // While the pools open their first connections (TLS, AUTH), sends paced before can meet at the relay at once;
    // from then on (steady state) the instances together stay under the rate.
    const steadyReplies = h.sink.rateReplies.filter((t) => t - first > WARM_UP_MS);
    console.log(
      `rate replies: ${h.sink.rateReplies.length - steadyReplies.length} in the first ${WARM_UP_MS / 1000} s (retried), ${steadyReplies.length} after`,
    );
    expect(steadyReplies).toHaveLength(0);
    // Every recipient exactly once: one refused for now at RCPT TO gets its copy from a follow-up message.
    expect({ lost, delivered }).toEqual({ lost: 0, delivered: recipients });
  }, 120_000);

  it('keeps one instance at its share when each batch holds more than an invocation can send', async () => {
    // Prepare: the instance's share is 14 × 0.95 / 4 = 3.3 recipients/s; an 8 s function with the 5 s margin may
    // commit for 3 s, about ten recipients, while a batch of ten jobs of three recipients holds thirty.
    const share = (QUOTA * RATE_HEADROOM) / INSTANCES;
    h = await relayAtQuota({ RETRY_MAX_DELAY_SECONDS: '1' });
    const jobs = Array.from({ length: 24 }, (_, i) =>
      emailJobFactory({ to: Array.from({ length: 3 }, (_, n) => `backlog${i}-${n}@example.net`) }),
    );
    await enqueueAll(jobs);

    // Act: the one instance polls, invocation after invocation, until every job is delivered (bounded).
    const source = promptSourceOptions(env.aws.clients.sqsClient, h.resources, h.handler, {
      functionTimeoutSeconds: 8,
    });
    const started = Date.now();
    for (let i = 0; i < 200 && h.sink.received.length < jobs.length && Date.now() - started < 75_000; i += 1) {
      const result = await deliverOneBatch(source);
      if (result.received === 0) await new Promise((resolve) => setTimeout(resolve, 200));
    }

    // Assess: every job went, at no less than 0.8 × the share (the jobs handed back wait out their retry delay).
    const times = h.sink.received.map((m) => m.receivedAt);
    const seconds = (Math.max(...times) - Math.min(...times)) / 1000;
    const perSecond = (h.sink.received.length * 3 - 3) / seconds;
    console.log(
      `rate: 1 instance, share ${share.toFixed(2)}/s, ${h.sink.received.length}/${jobs.length} jobs in ` +
        `${seconds.toFixed(1)} s: ${perSecond.toFixed(2)} recipients/s = ${(perSecond / share).toFixed(2)} x the share`,
    );
    expect(h.sink.received).toHaveLength(jobs.length);
    expect(h.sink.rateReplies).toHaveLength(0);
    expect(perSecond).toBeGreaterThanOrEqual(0.8 * share);
  }, 120_000);
});
