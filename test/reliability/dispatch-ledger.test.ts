import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { afterEach, describe, expect, it } from 'vitest';
import { deliverOneBatch } from '#local/event-source.js';
import { emailJobFactory } from '../support/factories.js';
import { type DispatchHarness, useAwsEmulators } from '../support/dispatch-harness.js';
import { startHttpFaultProxy, type HttpFaultProxy } from '../support/http-fault-proxy.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { compareLedgers, printSummary, unexplainedDuplicates } from './ledger.js';

const env = useAwsEmulators();
let h: DispatchHarness;

/** Puts bodies on the jobs queue in batches of ten. */
async function enqueueAll(harness: DispatchHarness, bodies: string[]) {
  for (let i = 0; i < bodies.length; i += 10) {
    await env.aws.clients.sqsClient.send(
      new SendMessageBatchCommand({
        QueueUrl: harness.resources.jobsQueueUrl,
        Entries: bodies.slice(i, i + 10).map((MessageBody, n) => ({ Id: String(n), MessageBody })),
      }),
    );
  }
}

/**
 * Runs the handler as the event source mapping would under a concurrency cap, until the queue is empty (bounded).
 * `duplicateDeliveries` is the share of records also delivered in a second, concurrent batch: the at-least-once
 * delivery SQS allows.
 */
async function drain(
  harness: DispatchHarness,
  options: { concurrency: number; duplicateDeliveries?: number; timeoutMs: number; functionTimeoutSeconds?: number },
) {
  const until = Date.now() + options.timeoutMs;
  let duplicated = 0;
  let random = 7;
  const rand = () => {
    random = (random * 1103515245 + 12345) % 2 ** 31;
    return random / 2 ** 31;
  };
  const worker = async () => {
    while (Date.now() < until) {
      const result = await deliverOneBatch({
        sqs: env.aws.clients.sqsClient,
        queueUrl: harness.resources.jobsQueueUrl,
        queueArn: harness.resources.jobsQueueArn,
        functionName: 'send-email',
        batchSize: 10,
        maxBatchingWindowSeconds: 0,
        visibilityTimeoutSeconds: 30,
        functionTimeoutSeconds: options.functionTimeoutSeconds ?? 60,
        waitTimeSeconds: 0,
        handler: async (event, context) => {
          const copies = event.Records.filter(
            () => options.duplicateDeliveries !== undefined && rand() < options.duplicateDeliveries,
          );
          duplicated += copies.length;
          // The copy arrives in a batch of its own, at the same time, as a second poller would deliver it.
          const [response] = await Promise.all([
            harness.handler(event, context),
            copies.length > 0 ? harness.handler({ Records: copies }, context) : undefined,
          ]);
          return response;
        },
      }).catch(() => ({ received: 0 }));
      if (result.received === 0) {
        if ((await harness.queueDepth()) === 0) return;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return { duplicatedDeliveries: duplicated };
}

describe('ledger: duplicate storm', () => {
  it('delivers 10,000 jobs exactly once despite 20% re-produced keys and 5% duplicated SQS deliveries', async () => {
    // Prepare
    h = await env.harness({
      env: { RETRY_BASE_SECONDS: '1', RETRY_MAX_DELAY_SECONDS: '2', SMTP_MAX_CONNECTIONS: '10' },
    });
    const jobs = Array.from({ length: 10_000 }, (_, i) =>
      emailJobFactory({ idempotencyKey: `storm-${i}`, to: [`user${i}@example.net`] }),
    );
    const reproduced = jobs.filter((_, i) => i % 5 === 0);
    const bodies = [...jobs, ...reproduced].map((j) => JSON.stringify(j));

    // Act
    const started = Date.now();
    await enqueueAll(h, bodies);
    // Generous: a loaded machine takes longer.
    const { duplicatedDeliveries } = await drain(h, { concurrency: 10, duplicateDeliveries: 0.05, timeoutMs: 420_000 });

    // Assess
    const summary = compareLedgers(
      jobs.map((j) => ({ key: j.idempotencyKey, expect: 'delivered' as const })),
      h.sink.received,
      await h.deadLetters(),
      await h.events(),
    );
    printSummary(
      'duplicate-storm',
      summary,
      `${reproduced.length} re-produced, ${duplicatedDeliveries} duplicated deliveries, ${Math.round((Date.now() - started) / 1000)} s`,
    );
    expect(summary).toMatchObject({
      jobs: 10_000,
      delivered: 10_000,
      lost: 0,
      duplicated: 0,
      eventsMissing: 0,
      inDlq: 0,
    });
    expect(duplicatedDeliveries).toBeGreaterThan(300);
    expect(await h.queueDepth()).toBe(0);
  }, 480_000);
});

describe('ledger: fault mix', () => {
  it('ends every job delivered or rejected as the classifier says, retrying on schedule, under 421/451/550 and dropped sockets', async () => {
    // Prepare: 2% 421, 2% 451, 1% dropped sockets at random stages, and 1% of recipients permanently refused (550)
    h = await env.harness({
      env: { RETRY_BASE_SECONDS: '1', RETRY_MAX_DELAY_SECONDS: '2' },
      sink: {
        seed: 11,
        rules: [
          { stage: 'rcpt', address: '*@refused.test', reply: { code: 550, message: '5.1.1 No such user' } },
          {
            stage: 'mail',
            probability: 0.02,
            reply: { code: 421, message: '4.7.0 Try again later, closing connection' },
          },
          { stage: 'end', probability: 0.02, reply: { code: 451, message: '4.3.0 Temporary local problem' } },
          { stage: 'rcpt', probability: 0.005, drop: true },
          { stage: 'end', probability: 0.005, drop: true, keep: true },
        ],
      },
    });
    const jobs = Array.from({ length: 1000 }, (_, i) =>
      emailJobFactory({
        idempotencyKey: `mix-${i}`,
        to: [i % 100 === 0 ? `gone${i}@refused.test` : `user${i}@example.net`],
      }),
    );

    // Act
    await enqueueAll(
      h,
      jobs.map((j) => JSON.stringify(j)),
    );
    await drain(h, { concurrency: 5, timeoutMs: 180_000 });

    // Assess
    const events = await h.events();
    const summary = compareLedgers(
      jobs.map((j) => ({
        key: j.idempotencyKey,
        expect: j.to?.[0]?.toString().endsWith('@refused.test') ? ('rejected' as const) : ('delivered' as const),
      })),
      h.sink.received,
      await h.deadLetters(),
      events,
    );
    const retried = h.output.metric('Retried') + h.output.metric('Throttled');
    printSummary('fault-mix', summary, `${retried} retries, ${h.output.metric('AmbiguousAttempts')} ambiguous`);
    expect(summary.lost).toBe(0);
    expect(summary.delivered).toBe(990);
    expect(summary.rejected).toBe(10);
    expect(summary.inDlq).toBe(0);
    expect(summary.eventsMissing).toBe(0);
    // Sockets dropped after the data went out are the only source of repeats, and each was logged as ambiguous.
    expect(summary.duplicated).toBeLessThanOrEqual(h.output.metric('AmbiguousAttempts'));
    expect(unexplainedDuplicates(summary.duplicatedKeys, h.output.lines)).toEqual([]);
    const outcome = new Map(events.map((e) => [String(e.idempotencyKey), String(e.type)]));
    expect(jobs.filter((j) => outcome.get(j.idempotencyKey) === 'email.rejected').length).toBe(10);
    expect(jobs.filter((j) => outcome.get(j.idempotencyKey) === 'email.delivered').length).toBe(990);
    expect(retried).toBeGreaterThan(20);
    // Retries follow the schedule: each delay within the jittered bounds of its attempt (base 1 s, cap 2 s).
    const deferrals = h.output.records().filter((r) => String(r.message).startsWith('job deferred'));
    expect(deferrals.length).toBe(retried);
    for (const d of deferrals) {
      const ceiling = Math.min(2, 2 ** ((d.attempt as number) - 1));
      expect(d.retryInSeconds).toBeGreaterThanOrEqual(Math.max(1, Math.round(ceiling / 2)));
      expect(d.retryInSeconds).toBeLessThanOrEqual(ceiling);
    }
  }, 240_000);
});

describe('ledger: stalled and failing dependencies under deadline pressure', () => {
  let dynamoProxy: TcpProxy | undefined;
  let snsProxy: HttpFaultProxy | undefined;
  afterEach(async () => {
    await dynamoProxy?.stop();
    await snsProxy?.stop();
  });

  it('loses no job and no outcome event when SNS fails, DynamoDB stalls and the relay answers late', async () => {
    // Prepare: 8 s invocations that commit nothing after 5 s; SNS fails 20 % of calls; 2 % of DynamoDB's answers
    // come 2.5 s late; 3 % of the relay's answers to '.' come 4 s late
    dynamoProxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(env.aws.dynamo.endpoint).port) });
    snsProxy = await startHttpFaultProxy(env.aws.fauxqs.endpoint);
    h = await env.harness({
      env: {
        RETRY_BASE_SECONDS: '1',
        RETRY_MAX_DELAY_SECONDS: '2',
        DEADLINE_MARGIN_MS: '3000',
        FINISH_RESERVE_MS: '1500',
        MIN_ATTEMPT_MS: '500',
      },
      endpoints: { dynamodb: dynamoProxy.endpoint, sns: snsProxy.endpoint },
      sink: { seed: 3, rules: [{ stage: 'end', probability: 0.03, delayMs: 4000 }] },
    });
    dynamoProxy.stall({ ms: 2500, probability: 0.02, seed: 9 });
    snsProxy.failShare('PublishBatch', 0.2, 5);
    const jobs = Array.from({ length: 300 }, (_, i) =>
      emailJobFactory({ idempotencyKey: `stall-${i}`, to: [`user${i}@example.net`] }),
    );

    // Act
    const started = Date.now();
    await enqueueAll(
      h,
      jobs.map((j) => JSON.stringify(j)),
    );
    await drain(h, { concurrency: 4, timeoutMs: 200_000, functionTimeoutSeconds: 8 });

    // Assess
    const summary = compareLedgers(
      jobs.map((j) => ({ key: j.idempotencyKey, expect: 'delivered' as const })),
      h.sink.received,
      await h.deadLetters(),
      await h.events(),
    );
    const ambiguous = h.output.metric('AmbiguousAttempts');
    printSummary(
      'stalled-dependencies',
      summary,
      `${snsProxy.failed('PublishBatch')} of ${snsProxy.calls('PublishBatch')} PublishBatch calls failed, ${h.output.metric('HandedBack')} handed back, ${ambiguous} ambiguous, ${Math.round((Date.now() - started) / 1000)} s`,
    );
    expect(summary).toMatchObject({ jobs: 300, delivered: 300, lost: 0, eventsMissing: 0, inDlq: 0 });
    expect(summary.duplicated).toBeLessThanOrEqual(ambiguous);
    expect(unexplainedDuplicates(summary.duplicatedKeys, h.output.lines)).toEqual([]);
    expect(snsProxy.failed('PublishBatch')).toBeGreaterThan(0);
    expect(await h.queueDepth()).toBe(0);
  }, 260_000);
});
