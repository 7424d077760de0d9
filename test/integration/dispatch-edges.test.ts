import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterEach, describe, expect, it } from 'vitest';
import { toIdempotencyRecordId } from '#aws/idempotency-store.js';
import { TableKeys } from '#aws/table-keys.js';
import type { EmailJob } from '#core/email-job.js';
import { toDispatchId } from '#core/message-id.js';
import { toSqsRecord } from '#local/event-source.js';
import { createLambdaContext } from '#local/lambda-context.js';
import { redriveDeadLetters } from '#tools/redrive-dead-letters.js';
import { emailJobFactory } from '../support/factories.js';
import { type DispatchHarness, useAwsEmulators } from '../support/dispatch-harness.js';
import { startHttpFaultProxy, type HttpFaultProxy } from '../support/http-fault-proxy.js';
import { storeObject } from '../support/stored-objects.js';

const env = useAwsEmulators();
let h: DispatchHarness;
let proxy: HttpFaultProxy | undefined;

afterEach(async () => {
  await proxy?.stop();
  proxy = undefined;
});

const context = () => createLambdaContext('send-email', 30_000);

/** The job's idempotency record as the table holds it (read past the proxy). */
async function storedRecord(harness: DispatchHarness, job: EmailJob) {
  const key = { [TableKeys.idempotency.partitionKey]: { S: toIdempotencyRecordId('email-job', job.idempotencyKey) } };
  const result = await env.aws.clients.dynamodb.send(
    new GetItemCommand({ TableName: harness.resources.idempotencyTable, Key: key, ConsistentRead: true }),
  );
  return result.Item;
}

/** Log lines of the handler that carry `message`. */
const logged = (harness: DispatchHarness, message: string) =>
  harness.output.records().filter((r) => String(r.message).startsWith(message));

describe('an SNS that fails', () => {
  it('once (both of the SDK tries of one PublishBatch): the event is published again in the invocation', async () => {
    // Prepare
    proxy = await startHttpFaultProxy(env.aws.fauxqs.endpoint);
    h = await env.harness({ endpoints: { sns: proxy.endpoint } });
    proxy.fail('PublishBatch', 2);
    const job = emailJobFactory();

    // Act
    const response = await h.handler({ Records: [h.sqsRecord(job, 'sns-once')] }, context());

    // Assess
    expect(response.batchItemFailures).toEqual([]);
    expect(proxy.calls('PublishBatch')).toBe(3);
    expect((await h.events()).map((e) => [e.type, e.idempotencyKey])).toEqual([
      ['email.delivered', job.idempotencyKey],
    ]);
    expect(h.output.metric('EventPublishFailures')).toBe(0);
  });

  it('for the whole invocation: the outcome stays on its record, logged with the dispatch id; the return publishes it once', async () => {
    // Prepare: the SDK's two tries, and again our retry's two
    proxy = await startHttpFaultProxy(env.aws.fauxqs.endpoint);
    h = await env.harness({ endpoints: { sns: proxy.endpoint } });
    proxy.fail('PublishBatch', 4);
    const job = emailJobFactory();

    // Act
    const first = await h.handler({ Records: [h.sqsRecord(job, 'sns-down')] }, context());
    const kept = await storedRecord(h, job);
    const meanwhile = await h.events();
    const copy = await h.handler({ Records: [h.sqsRecord(job, 'sns-copy')] }, context());
    const back = await h.handler({ Records: [h.sqsRecord(job, 'sns-down', 2)] }, context());

    // Assess
    expect(first.batchItemFailures).toEqual([{ itemIdentifier: 'sns-down' }]);
    expect(kept?.status?.S).toBe('COMPLETED');
    expect(kept?.data?.M).toMatchObject({ sourceMessageId: { S: 'sns-down' }, published: { BOOL: false } });
    expect(meanwhile).toEqual([]);
    const lines = logged(h, 'outcome event not published');
    expect(lines).toHaveLength(1);
    expect(String(lines[0]?.dispatchId)).toContain(toDispatchId(job.idempotencyKey));
    expect(JSON.stringify(h.output.lines)).not.toContain(String(job.to?.[0]));
    expect(h.output.metric('EventPublishFailures')).toBe(1);
    expect(copy.batchItemFailures).toEqual([]);
    expect(back.batchItemFailures).toEqual([]);
    expect((await h.events()).map((e) => [e.type, e.idempotencyKey])).toEqual([
      ['email.delivered', job.idempotencyKey],
    ]);
    expect(h.sink.received).toHaveLength(1);
  });

  it('to the last receive: dead-lettered saying so, and the redrive publishes the event; nothing is sent twice', async () => {
    // Prepare: two receives; PublishBatch fails for both (the SDK's two tries and our retry's two, each time)
    proxy = await startHttpFaultProxy(env.aws.fauxqs.endpoint);
    h = await env.harness({
      endpoints: { sns: proxy.endpoint },
      env: { RETRY_BASE_SECONDS: '1', RETRY_MAX_DELAY_SECONDS: '1', MAX_RECEIVE_COUNT: '2' },
    });
    proxy.fail('PublishBatch', 8);
    const job = emailJobFactory();
    await h.enqueue(job);

    // Act: the send, its return on the last receive, then an operator's redrive and its delivery
    const receives = [];
    for (let polls = 0; polls < 20 && receives.length < 2; polls += 1) {
      const result = await h.deliver();
      if (result.received > 0) receives.push(result);
      else await new Promise((resolve) => setTimeout(resolve, 300));
    }
    const meanwhile = await h.events();
    const redriven = await redriveDeadLetters({
      sqs: env.aws.clients.sqsClient,
      deadLetterQueueUrl: h.resources.deadLetterQueueUrl,
      sourceQueueUrl: h.resources.jobsQueueUrl,
      only: 'transient',
      holdSeconds: 1,
    });
    await h.deliverAll();

    // Assess
    expect(receives.map((r) => r.failed)).toEqual([1, 0]);
    expect(meanwhile).toEqual([]);
    expect(redriven).toMatchObject({ moved: 1, byReason: { 'exhausted: outcome-unpublished': 1 } });
    const lines = logged(h, 'outcome event still unpublished on the last receive');
    expect(String(lines[0]?.dispatchId)).toContain(toDispatchId(job.idempotencyKey));
    expect((await h.events()).map((e) => [e.type, e.idempotencyKey])).toEqual([
      ['email.delivered', job.idempotencyKey],
    ]);
    expect(h.sink.received).toHaveLength(1);
    expect(await h.queueDepth()).toBe(0);
  }, 60_000);
});

describe('a completed job', () => {
  it("costs five DynamoDB requests: the status claim, the key's claim, the lookup, the completion, the status", async () => {
    // Prepare: a first batch, so that what an instance reads once (breakers, standings) is read
    proxy = await startHttpFaultProxy(env.aws.dynamo.endpoint);
    h = await env.harness({ endpoints: { dynamodb: proxy.endpoint } });
    const batch = (name: string) =>
      Array.from({ length: 10 }, (_, i) =>
        h.sqsRecord(emailJobFactory({ idempotencyKey: `${name}-${i}` }), `${name}-${i}`),
      );
    await h.handler({ Records: batch('first') }, context());
    const operations = ['UpdateItem', 'PutItem', 'BatchGetItem', 'GetItem'];
    const before = operations.map((op) => proxy?.calls(op) ?? 0);

    // Act
    const response = await h.handler({ Records: batch('counted') }, context());

    // Assess: per job three UpdateItems, one PutItem, one BatchGetItem; one more UpdateItem for the batch's counts
    expect(response.batchItemFailures).toEqual([]);
    expect(h.sink.received).toHaveLength(20);
    expect(operations.map((op, i) => (proxy?.calls(op) ?? 0) - (before[i] ?? 0))).toEqual([31, 10, 10, 0]);
  });

  it('whose message comes back after its event went out publishes the event again; a copy publishes nothing', async () => {
    // Prepare: the message's invocation died after publishing, before its answer; a producer sent the job twice.
    h = await env.harness();
    const job = emailJobFactory();
    await h.handler({ Records: [h.sqsRecord(job, 'returns')] }, context());

    // Act
    const back = await h.handler({ Records: [h.sqsRecord(job, 'returns', 2)] }, context());
    const copy = await h.handler({ Records: [h.sqsRecord(job, 'a-copy')] }, context());

    // Assess: at least once, never sent twice; the repeat carries the same key for consumers to deduplicate on.
    expect([back.batchItemFailures, copy.batchItemFailures]).toEqual([[], []]);
    expect((await h.events()).map((e) => [e.type, e.idempotencyKey])).toEqual([
      ['email.delivered', job.idempotencyKey],
      ['email.delivered', job.idempotencyKey],
    ]);
    expect(h.sink.received).toHaveLength(1);
  });
});

describe('a suppression lookup begun beside the claim', () => {
  it('of an attempt that never comes to its send is cut and awaited by its record: nothing runs on after the answer', async () => {
    // Prepare: the job done once; from then on every lookup hangs until it is cut
    const cut: AbortSignal[] = [];
    let hang = false;
    h = await env.harness({
      adjust: (deps) => {
        const real = deps.dispatch.suppressions;
        deps.dispatch.suppressions = {
          findSuppressed: (addresses, tenant, signal) => {
            if (!hang) return real.findSuppressed(addresses, tenant, signal);
            if (signal) cut.push(signal);
            return new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason)));
          },
        };
      },
    });
    const job = emailJobFactory();
    await h.handler({ Records: [h.sqsRecord(job, 'done')] }, context());
    hang = true;

    // Act: a producer's copy of the job, which replays its outcome and never comes to a send, in an invocation whose
    // deadlines are ten minutes away (were the lookup left to them, the test would time out first)
    const copy = await h.handler({ Records: [h.sqsRecord(job, 'copy')] }, createLambdaContext('send-email', 600_000));

    // Assess
    expect(copy.batchItemFailures).toEqual([]);
    expect(cut.map((signal) => signal.aborted)).toEqual([true]);
    expect(h.output.metric('Duplicates')).toBe(1);
    expect(h.sink.received).toHaveLength(1);
  });
});

describe('a completion write that fails', () => {
  it('is tried again: the record is completed, so a redelivery is a duplicate and nothing is sent twice', async () => {
    // Prepare: the completion (the fenced UpdateItem) fails both of the SDK's tries once
    proxy = await startHttpFaultProxy(env.aws.dynamo.endpoint);
    h = await env.harness({ endpoints: { dynamodb: proxy.endpoint } });
    proxy.fail('UpdateItem', 2, '#claim');
    const job = emailJobFactory();

    // Act
    const first = await h.handler({ Records: [h.sqsRecord(job, 'done-1')] }, context());
    const again = await h.handler({ Records: [h.sqsRecord(job, 'done-2')] }, context());

    // Assess
    expect(first.batchItemFailures).toEqual([]);
    expect(again.batchItemFailures).toEqual([]);
    expect((await storedRecord(h, job))?.status?.S).toBe('COMPLETED');
    expect(h.output.metric('CompletionNotSaved')).toBe(0);
    expect(h.output.metric('Duplicates')).toBe(1);
    expect(h.sink.received).toHaveLength(1);
    expect((await h.events()).map((e) => e.type)).toEqual(['email.delivered']);
  });

  it('every time: the message is still deleted and the event published; counted and logged with the dispatch id', async () => {
    // Prepare: three tries of two SDK attempts each
    proxy = await startHttpFaultProxy(env.aws.dynamo.endpoint);
    h = await env.harness({ endpoints: { dynamodb: proxy.endpoint } });
    proxy.fail('UpdateItem', 6, '#claim');
    const job = emailJobFactory();

    // Act
    const response = await h.handler({ Records: [h.sqsRecord(job, 'lost-1')] }, context());

    // Assess
    expect(response.batchItemFailures).toEqual([]);
    expect(proxy.calls('UpdateItem')).toBeGreaterThanOrEqual(6);
    expect(h.output.metric('CompletionNotSaved')).toBe(1);
    const lines = logged(h, 'completion record not saved after send');
    expect(lines).toHaveLength(1);
    expect(String(lines[0]?.dispatchId)).toContain(toDispatchId(job.idempotencyKey));
    expect(h.sink.received).toHaveLength(1);
    expect((await h.events()).map((e) => e.type)).toEqual(['email.delivered']);
  });
});

describe('records handed back without an attempt', () => {
  it('are postponed on the retry schedule, and on the last receive given up with their reason and email.failed', async () => {
    // Prepare: every invocation has 5.5 s left, of which the last 5 s commit nothing: no time to start an attempt
    h = await env.harness({ env: { RETRY_BASE_SECONDS: '1', RETRY_MAX_DELAY_SECONDS: '1', MAX_RECEIVE_COUNT: '3' } });
    const job = emailJobFactory();
    await h.enqueue(job);
    const receive = async () => {
      for (let polls = 0; polls < 20; polls += 1) {
        const got = await env.aws.clients.sqsClient.send(
          new ReceiveMessageCommand({
            QueueUrl: h.resources.jobsQueueUrl,
            MaxNumberOfMessages: 1,
            // The queue's own visibility timeout: only the handler's postponement brings the message back sooner.
            VisibilityTimeout: 30,
            WaitTimeSeconds: 1,
            MessageSystemAttributeNames: ['All'],
            MessageAttributeNames: ['All'],
          }),
        );
        const message = got.Messages?.[0];
        if (message) return toSqsRecord(message, h.resources.jobsQueueArn);
      }
      throw new Error('the handed-back message did not come back');
    };

    // Act
    const responses = [];
    const receives = [];
    for (let n = 0; n < 3; n += 1) {
      const record = await receive();
      receives.push(record.attributes.ApproximateReceiveCount);
      responses.push(await h.handler({ Records: [record] }, createLambdaContext('send-email', 5500)));
    }

    // Assess
    expect(receives).toEqual(['1', '2', '3']);
    expect(responses.map((r) => r.batchItemFailures.length)).toEqual([1, 1, 0]);
    expect(h.output.metric('HandedBack')).toBe(2);
    expect(h.sink.connections).toBe(0);
    const dead = await h.deadLetters();
    expect(dead.map((d) => d.attributes)).toEqual([
      expect.objectContaining({
        failureClass: 'exhausted',
        failureReason: 'retry:no-time-to-start',
        idempotencyKey: job.idempotencyKey,
      }),
    ]);
    expect((await h.events()).map((e) => [e.type, e.idempotencyKey, e.reason])).toEqual([
      ['email.failed', job.idempotencyKey, 'no-time-to-start'],
    ]);
  }, 90_000);
});

describe('claim-checked jobs and the memory budget', () => {
  it('reserves each stored body in the budget before reading it, so large ones wait their turn; all are sent', async () => {
    // Prepare: room for 2 MiB at a time; three jobs stored in S3, each body about 0.6 MiB (reserved at 3.75 times)
    h = await env.harness({ env: { ATTACHMENT_MEMORY_MB: '2' } });
    const memory = h.deps.dispatch.attachmentMemory as NonNullable<typeof h.deps.dispatch.attachmentMemory>;
    const budget = memory.budget as typeof memory.budget & { held: number };
    const reserved: number[] = [];
    let mostHeld = 0;
    memory.budget = {
      acquire: async (bytes, signal) => {
        reserved.push(bytes);
        const release = await budget.acquire(bytes, signal);
        mostHeld = Math.max(mostHeld, budget.held);
        return release;
      },
    };
    // What the budget held each time a stored body was read.
    const heldAtRead: number[] = [];
    const store = h.deps.claimChecks as NonNullable<typeof h.deps.claimChecks>;
    h.deps.claimChecks = {
      size: (reference) => store.size(reference),
      load: (reference) => (heldAtRead.push(budget.held), store.load(reference)),
    };
    const s3 = await env.aws.clients.s3();
    const sizes: number[] = [];
    for (let i = 0; i < 3; i += 1) {
      const job = emailJobFactory({ html: `<p>${'x'.repeat(600 * 1024)}</p>` });
      const body = JSON.stringify(job);
      sizes.push(body.length);
      const claimCheck = await storeObject(s3, h.resources.bucket, `jobs/claim-${i}.json`, body);
      await h.enqueue({ version: 1, idempotencyKey: job.idempotencyKey, claimCheck });
    }

    // Act
    await h.deliverAll();

    // Assess
    expect(h.sink.received).toHaveLength(3);
    expect(reserved).toHaveLength(3);
    expect(heldAtRead).toHaveLength(3);
    for (const held of heldAtRead) expect(held).toBeGreaterThanOrEqual(Math.min(...reserved));
    for (const bytes of reserved) expect(bytes).toBeGreaterThanOrEqual(3 * Math.min(...sizes));
    expect(mostHeld).toBeLessThanOrEqual(Math.max(...reserved));
    expect(budget.held).toBe(0);
  });
});

describe('a record handed back because its outcome event is unpublished', () => {
  it('is not received again while the invocation that handed it back is still running', async () => {
    // Prepare: eleven jobs; the relay takes 5 s to accept the last one's message; SNS refuses every PublishBatch of
    // the invocation (the SDK's two tries and the retry's two, for each request); a hand-back returns within 2 s.
    proxy = await startHttpFaultProxy(env.aws.fauxqs.endpoint);
    h = await env.harness({
      endpoints: { sns: proxy.endpoint },
      sink: { rules: [{ stage: 'end', address: 'slow@example.net', delayMs: 5000 }] },
      env: { RETRY_BASE_SECONDS: '2', RETRY_MAX_DELAY_SECONDS: '2' },
    });
    proxy.fail('PublishBatch', 8);
    for (let i = 0; i < 10; i += 1) await h.enqueue(emailJobFactory({ idempotencyKey: `early-${i}` }));
    await h.enqueue(emailJobFactory({ idempotencyKey: 'early-slow', to: ['slow@example.net'] }));

    // Act: the batch runs while another consumer polls the jobs queue; what it gets while the handler runs counts.
    let running = false;
    let answered = false;
    const delivering = h.deliver(11, {
      windowSeconds: 1,
      through: async (event, context) => {
        running = true;
        try {
          return await h.handler(event, context);
        } finally {
          answered = true;
        }
      },
    });
    const receivedMeanwhile = new Set<string>();
    // Bounded: at most 150 polls, and the batch answers in about six seconds.
    for (let poll = 0; poll < 150 && !answered; poll += 1) {
      const { Messages = [] } = await env.aws.clients.sqsClient.send(
        new ReceiveMessageCommand({
          QueueUrl: h.resources.jobsQueueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 0,
          VisibilityTimeout: 0,
        }),
      );
      if (running && !answered) for (const m of Messages) receivedMeanwhile.add(m.MessageId as string);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const result = await delivering;

    // Assess: every record handed back, none of them visible before its invocation answered.
    expect(result).toMatchObject({ received: 11, failed: 11 });
    expect([...receivedMeanwhile]).toEqual([]);
  }, 30_000);
});
