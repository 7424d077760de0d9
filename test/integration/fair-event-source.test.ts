import { GetQueueAttributesCommand, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS } from '#infra/settings.js';
import { promptSourceOptions, runEventSource, type SqsHandler } from '#local/event-source.js';
import { createLocalResources } from '#local/resources.js';
import { resourceNames, startAwsEmulators, type AwsEmulators } from '../support/dispatch-harness.js';

let aws: AwsEmulators;
let runs = 0;

beforeAll(async () => {
  aws = await startAwsEmulators();
});
afterAll(async () => {
  await aws?.stop();
});

/** The event source on a queue of its own, one batch of 10 at a time; `overrides` change what a test is about. */
const sourceOptions = (
  resources: Awaited<ReturnType<typeof createLocalResources>>,
  handler: SqsHandler,
  overrides: Partial<Parameters<typeof runEventSource>[0]> = {},
) => ({ ...promptSourceOptions(aws.clients.sqsClient, resources, handler), maxConcurrency: 1, ...overrides });

/**
 * Tenant A queues 200 jobs, then tenant B 10 (each tenant its MessageGroupId); the event source hands them to a
 * handler that records what it was given, one batch at a time. Resolves with the order the records arrived in.
 */
async function deliveredOrder(fair: boolean, stop?: (seen: string[]) => boolean) {
  runs += 1;
  const resources = await createLocalResources(aws.clients, DEFAULT_SETTINGS, resourceNames(`fair-${runs}`));
  const send = async (tenant: string, count: number) => {
    for (let i = 0; i < count; i += 10) {
      const Entries = Array.from({ length: Math.min(10, count - i) }, (_, n) => ({
        Id: String(n),
        MessageBody: `${tenant}-${i + n}`,
        MessageGroupId: tenant,
      }));
      await aws.clients.sqsClient.send(new SendMessageBatchCommand({ QueueUrl: resources.jobsQueueUrl, Entries }));
    }
  };
  await send('a', 200);
  await send('b', 10);
  const seen: string[] = [];
  const abort = new AbortController();
  const handler = async (event: SQSEvent) => {
    seen.push(...event.Records.map((r) => `${r.attributes.MessageGroupId}:${r.body}`));
    if (seen.length >= 210 || stop?.(seen)) abort.abort();
    return { batchItemFailures: [] };
  };
  await runEventSource({ ...sourceOptions(resources, handler), fair }, abort.signal);
  const attributes = await aws.clients.sqsClient.send(
    new GetQueueAttributesCommand({
      QueueUrl: resources.jobsQueueUrl,
      AttributeNames: ['ApproximateNumberOfMessages'],
    }),
  );
  return { seen, visibleAfter: Number(attributes.Attributes?.ApproximateNumberOfMessages) };
}

const positionsOf = (seen: string[], tenant: string) =>
  seen.flatMap((record, i) => (record.startsWith(`${tenant}:`) ? [i] : []));

describe('the twin event source', () => {
  it('serves the emulator oldest first: a quiet tenant waits behind a noisy one', async () => {
    const { seen } = await deliveredOrder(false);

    expect(positionsOf(seen, 'b')).toEqual([200, 201, 202, 203, 204, 205, 206, 207, 208, 209]);
  });

  it("with fair dequeue hands a quiet tenant's jobs out first, each once, with their group", async () => {
    const { seen } = await deliveredOrder(true);

    expect(Math.max(...positionsOf(seen, 'b'))).toBeLessThan(20);
    expect(new Set(seen).size).toBe(210);
    expect(seen.filter((r) => r.startsWith('a:a-'))).toHaveLength(200);
  });

  it('makes what it read ahead visible again when it stops', async () => {
    const { seen, visibleAfter } = await deliveredOrder(true, (records) => records.length >= 20);

    expect(seen).toHaveLength(20);
    expect(visibleAfter).toBe(190);
  });
});

describe('the twin event source reading ahead of a slow handler', () => {
  it('keeps held messages invisible past the visibility timeout: each received once, handled once', async () => {
    // Prepare: 80 jobs; a handler that takes 0.5 s a batch, so the last are handed out after their first 2 s hold.
    runs += 1;
    const resources = await createLocalResources(aws.clients, DEFAULT_SETTINGS, resourceNames(`fair-${runs}`));
    for (let i = 0; i < 80; i += 10) {
      const Entries = Array.from({ length: 10 }, (_, n) => ({ Id: String(n), MessageBody: `a-${i + n}` }));
      await aws.clients.sqsClient.send(new SendMessageBatchCommand({ QueueUrl: resources.jobsQueueUrl, Entries }));
    }
    const seen: Array<{ body: string; receives: string }> = [];
    const abort = new AbortController();
    const handler = async (event: SQSEvent) => {
      await new Promise((resolve) => setTimeout(resolve, 500));
      seen.push(...event.Records.map((r) => ({ body: r.body, receives: r.attributes.ApproximateReceiveCount })));
      if (seen.length >= 80) abort.abort();
      return { batchItemFailures: [] };
    };
    const timer = setTimeout(() => abort.abort(), 30_000);

    // Act
    await runEventSource(
      sourceOptions(resources, handler, { visibilityTimeoutSeconds: 3, functionTimeoutSeconds: 1, fair: true }),
      abort.signal,
    );
    clearTimeout(timer);

    // Assess: no receive spent while a message waited in the pool (each receive counts as an attempt).
    expect(new Set(seen.map((s) => s.body)).size).toBe(80);
    expect(seen).toHaveLength(80);
    expect(seen.filter((s) => s.receives !== '1')).toEqual([]);
  });
});

describe('the twin event source reading ahead of large jobs', () => {
  it('holds no more than its byte limit of message bodies, whatever the count', async () => {
    // Prepare: 30 jobs of 100 KB; a read-ahead limit of 1 MB.
    runs += 1;
    const resources = await createLocalResources(aws.clients, DEFAULT_SETTINGS, resourceNames(`fair-${runs}`));
    for (let i = 0; i < 30; i += 5) {
      const Entries = Array.from({ length: 5 }, (_, n) => ({ Id: String(n), MessageBody: 'x'.repeat(100_000) }));
      await aws.clients.sqsClient.send(new SendMessageBatchCommand({ QueueUrl: resources.jobsQueueUrl, Entries }));
    }
    const abort = new AbortController();
    let invisible = -1;
    const handler = async () => {
      const attributes = await aws.clients.sqsClient.send(
        new GetQueueAttributesCommand({
          QueueUrl: resources.jobsQueueUrl,
          AttributeNames: ['ApproximateNumberOfMessagesNotVisible'],
        }),
      );
      invisible = Number(attributes.Attributes?.ApproximateNumberOfMessagesNotVisible);
      abort.abort();
      return { batchItemFailures: [] };
    };

    // Act: one batch; what it and the pool hold is what is invisible on the queue.
    await runEventSource(
      sourceOptions(resources, handler, { batchSize: 5, fair: true, readAheadBytes: 1_000_000 }),
      abort.signal,
    );

    // Assess: the batch of 5 and at most 1 MB (10 bodies) read ahead past one receive of 10, not all 30.
    expect(invisible).toBeGreaterThanOrEqual(5);
    expect(invisible).toBeLessThanOrEqual(20);
  });
});
