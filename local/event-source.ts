import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  type Message,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { createLambdaContext } from './lambda-context.js';

export type SqsHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse | undefined>;

export type EventSourceOptions = {
  sqs: SQSClient;
  queueUrl: string;
  queueArn: string;
  handler: SqsHandler;
  functionName: string;
  batchSize: number;
  maxBatchingWindowSeconds: number;
  visibilityTimeoutSeconds: number;
  functionTimeoutSeconds: number;
  /** Long-poll wait of each receive, seconds. @default 1 */
  waitTimeSeconds?: number;
};

/**
 * An event source on the jobs queue of `queue` (as createLocalResources makes it) that takes what is there at once:
 * batches of ten, no batching window and no long poll, the dispatch function's timeouts. For tests and benchmarks.
 */
export function promptSourceOptions(
  sqs: SQSClient,
  queue: { jobsQueueUrl: string; jobsQueueArn: string },
  handler: SqsHandler,
  overrides: Partial<EventSourceOptions> = {},
): EventSourceOptions {
  return {
    sqs,
    queueUrl: queue.jobsQueueUrl,
    queueArn: queue.jobsQueueArn,
    handler,
    functionName: 'send-email',
    batchSize: 10,
    maxBatchingWindowSeconds: 0,
    visibilityTimeoutSeconds: 360,
    functionTimeoutSeconds: 60,
    waitTimeSeconds: 0,
    ...overrides,
  };
}

/** Converts a received SQS message into the record Lambda's event source mapping would deliver. */
export function toSqsRecord(message: Message, queueArn: string): SQSRecord {
  const attributes = message.Attributes ?? {};
  return {
    messageId: message.MessageId ?? '',
    receiptHandle: message.ReceiptHandle ?? '',
    body: message.Body ?? '',
    attributes: {
      ApproximateReceiveCount: attributes.ApproximateReceiveCount ?? '1',
      SentTimestamp: attributes.SentTimestamp ?? String(Date.now()),
      SenderId: attributes.SenderId ?? 'local',
      ApproximateFirstReceiveTimestamp: attributes.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
      // A fair queue's message group (the tenant), as Lambda reports it.
      ...(attributes.MessageGroupId ? { MessageGroupId: attributes.MessageGroupId } : {}),
    },
    messageAttributes: Object.fromEntries(
      Object.entries(message.MessageAttributes ?? {}).map(([name, value]) => [
        name,
        {
          dataType: value.DataType ?? 'String',
          stringValue: value.StringValue,
          binaryValue: undefined,
          stringListValues: [],
          binaryListValues: [],
        },
      ]),
    ),
    md5OfBody: message.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: queueArn.split(':')[3] ?? 'local',
  };
}

/** Receives up to `batchSize` messages, waiting at most the batching window once the first has arrived. */
async function receiveBatch(options: EventSourceOptions, signal?: AbortSignal): Promise<Message[]> {
  const messages: Message[] = [];
  const windowEnds = () => (messages.length === 0 ? Infinity : firstAt + options.maxBatchingWindowSeconds * 1000);
  let firstAt = 0;
  for (let round = 0; messages.length < options.batchSize && Date.now() < windowEnds() && round < 100; round += 1) {
    if (signal?.aborted) break;
    const result = await options.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: options.queueUrl,
        MaxNumberOfMessages: Math.min(10, options.batchSize - messages.length),
        WaitTimeSeconds: messages.length === 0 ? (options.waitTimeSeconds ?? 1) : 0,
        VisibilityTimeout: options.visibilityTimeoutSeconds,
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
    );
    const got = result.Messages ?? [];
    if (got.length > 0 && messages.length === 0) firstAt = Date.now();
    messages.push(...got);
    if (got.length === 0 && messages.length === 0) break;
    if (got.length === 0 && options.maxBatchingWindowSeconds > 0)
      await new Promise((resolve) => setTimeout(resolve, 50));
    if (got.length === 0 && options.maxBatchingWindowSeconds === 0) break;
  }
  return messages;
}

/**
 * One poll of the event source, as Lambda's SQS mapping does it: receive a batch (from `fair`'s pool when given),
 * invoke the handler, delete the records it did not report as failures. A thrown error (FullBatchFailureError
 * included) leaves the whole batch to come back after its visibility timeout.
 */
export async function deliverOneBatch(
  options: EventSourceOptions,
  signal?: AbortSignal,
  fair?: FairDequeue,
): Promise<{ received: number; succeeded: number; failed: number }> {
  const messages = fair ? await fair.take(options.batchSize, signal) : await receiveBatch(options, signal);
  if (messages.length === 0) return { received: 0, succeeded: 0, failed: 0 };
  try {
    return await handleBatch(options, messages);
  } finally {
    fair?.done(messages);
  }
}

async function handleBatch(
  options: EventSourceOptions,
  messages: Message[],
): Promise<{ received: number; succeeded: number; failed: number }> {
  const records = messages.map((m) => toSqsRecord(m, options.queueArn));
  let failedIds: Set<string>;
  try {
    const response = await options.handler(
      { Records: records },
      createLambdaContext(options.functionName, options.functionTimeoutSeconds * 1000),
    );
    const failures = response?.batchItemFailures ?? [];
    // Lambda treats an empty or unknown identifier as a failure of the whole batch.
    const known = new Set(records.map((r) => r.messageId));
    failedIds = failures.some((f) => !f.itemIdentifier || !known.has(f.itemIdentifier))
      ? known
      : new Set(failures.map((f) => f.itemIdentifier));
  } catch {
    failedIds = new Set(records.map((r) => r.messageId));
  }
  const done = records.filter((r) => !failedIds.has(r.messageId));
  for (let i = 0; i < done.length; i += 10) {
    const chunk = done.slice(i, i + 10);
    await options.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: options.queueUrl,
        Entries: chunk.map((r, n) => ({ Id: String(n), ReceiptHandle: r.receiptHandle })),
      }),
    );
  }
  return { received: records.length, succeeded: done.length, failed: failedIds.size };
}

/**
 * Runs the event source until `signal` aborts: up to `maxConcurrency` batches in flight at once, like the
 * mapping's MaximumConcurrency.
 */
export async function runEventSource(
  options: EventSourceOptions & {
    maxConcurrency: number;
    /** Fair dequeue by MessageGroupId (see createFairDequeue), as SQS fair queues serve a standard queue. */
    fair?: boolean;
    /** How many bytes of message bodies fair dequeue may hold read ahead. @default 64 MiB */
    readAheadBytes?: number;
    onBatch?: (r: Awaited<ReturnType<typeof deliverOneBatch>>) => void;
    onError?: (error: unknown) => void;
  },
  signal: AbortSignal,
): Promise<void> {
  const fair = options.fair ? createFairDequeue(options, { bytes: options.readAheadBytes }) : undefined;
  const worker = async () => {
    while (!signal.aborted) {
      try {
        const result = await deliverOneBatch(options, signal, fair);
        options.onBatch?.(result);
      } catch (error) {
        options.onError?.(error);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  };
  await Promise.all(Array.from({ length: options.maxConcurrency }, worker));
  await fair?.release().catch((error: unknown) => options.onError?.(error));
}

/** The pool a fair event source takes its batches from. */
export type FairDequeue = ReturnType<typeof createFairDequeue>;

/**
 * Fair dequeue as SQS fair queues do it on a standard queue (the emulator serves oldest first): messages of a tenant
 * (their `MessageGroupId`; a message without one is a tenant of its own) with many messages in flight wait while
 * quieter tenants' messages go first; nothing is dropped or throttled. The twin reads ahead up to 10,000 messages
 * and 64 MiB of bodies (received once each, held invisible) and fills each batch one message at a time from the
 * tenant with the fewest in flight, oldest first within a tenant. A held message is kept invisible while it waits
 * (its visibility renewed before its hold runs out; one that cannot be renewed is let go, visible on the queue
 * again); `release` hands back everything held when the event source stops.
 */
function createFairDequeue(options: EventSourceOptions, limits: { messages?: number; bytes?: number } = {}) {
  const lookAhead = limits.messages ?? 10_000;
  const lookAheadBytes = limits.bytes ?? 64 * 1024 * 1024;
  type Held = { message: Message; group: string; expiresAtMs: number };
  const sizeOf = (m: Message) => Buffer.byteLength(m.Body ?? '');
  let held: Held[] = [];
  const inFlight = new Map<string, number>();
  let filling: Promise<void> | undefined;
  const groupOf = (m: Message) => m.Attributes?.MessageGroupId ?? `message:${m.MessageId ?? ''}`;
  // A margin before the visibility timeout: a message handed out this late could reappear while it is handled.
  const holdMs = Math.max(1000, (options.visibilityTimeoutSeconds - options.functionTimeoutSeconds) * 1000);

  const fill = async (signal?: AbortSignal) => {
    let bytes = held.reduce((total, h) => total + sizeOf(h.message), 0);
    for (let round = 0; held.length < lookAhead && round < Math.ceil(lookAhead / 10); round += 1) {
      if (signal?.aborted || bytes >= lookAheadBytes) return;
      const result = await options.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: options.queueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: held.length === 0 && round === 0 ? (options.waitTimeSeconds ?? 1) : 0,
          VisibilityTimeout: options.visibilityTimeoutSeconds,
          MessageSystemAttributeNames: ['All'],
          MessageAttributeNames: ['All'],
        }),
      );
      const got = result.Messages ?? [];
      const expiresAtMs = Date.now() + holdMs;
      held.push(...got.map((message) => ({ message, group: groupOf(message), expiresAtMs })));
      bytes += got.reduce((total, m) => total + sizeOf(m), 0);
      if (got.length === 0) return;
    }
  };
  /**
   * Keeps held messages invisible for another visibility timeout before their hold runs out: a message let go would
   * be received again, and every receive counts as an attempt (and towards the dead-letter queue's maxReceiveCount).
   * One that cannot be renewed is let go.
   */
  const renew = async (due: Held[]) => {
    const lost = new Set<Held>();
    const chunks = Array.from({ length: Math.ceil(due.length / 10) }, (_, i) => due.slice(i * 10, i * 10 + 10));
    for (let i = 0; i < chunks.length; i += 10) {
      await Promise.all(
        chunks.slice(i, i + 10).map(async (chunk) => {
          const renewedAtMs = Date.now();
          const answer = await options.sqs
            .send(
              new ChangeMessageVisibilityBatchCommand({
                QueueUrl: options.queueUrl,
                Entries: chunk.map((h, n) => ({
                  Id: String(n),
                  ReceiptHandle: h.message.ReceiptHandle ?? '',
                  VisibilityTimeout: options.visibilityTimeoutSeconds,
                })),
              }),
            )
            .catch(() => ({ Failed: chunk.map((_, n) => ({ Id: String(n) })) }));
          const failed = new Set((answer.Failed ?? []).map((f) => f.Id));
          chunk.forEach((h, n) => {
            if (failed.has(String(n))) lost.add(h);
            else h.expiresAtMs = renewedAtMs + holdMs;
          });
        }),
      );
    }
    if (lost.size > 0) held = held.filter((h) => !lost.has(h));
  };
  const refill = (signal?: AbortSignal) =>
    (filling ??= fill(signal).finally(() => {
      filling = undefined;
    }));

  return {
    async take(batchSize: number, signal?: AbortSignal): Promise<Message[]> {
      const now = Date.now();
      held = held.filter((h) => h.expiresAtMs > now);
      await renew(held.filter((h) => h.expiresAtMs - now < holdMs / 2));
      // Reading ahead runs beside the handlers; only an empty pool waits for it (and meets its failure: a failed read
      // beside them is tried again by the next batch).
      const reading = refill(signal);
      if (held.length === 0) await reading;
      else reading.catch(() => {});
      const batch: Message[] = [];
      const taken = new Map<string, number>();
      const load = (group: string) => (inFlight.get(group) ?? 0) + (taken.get(group) ?? 0);
      while (batch.length < batchSize && held.length > 0) {
        // The quietest tenant first; among equals, the one whose oldest message is oldest (the pool is in order).
        let pick = 0;
        for (let i = 1; i < held.length; i += 1) {
          if (load((held[i] as Held).group) < load((held[pick] as Held).group)) pick = i;
        }
        const [chosen] = held.splice(pick, 1) as [Held];
        taken.set(chosen.group, (taken.get(chosen.group) ?? 0) + 1);
        batch.push(chosen.message);
      }
      for (const [group, n] of taken) inFlight.set(group, (inFlight.get(group) ?? 0) + n);
      return batch;
    },

    /** A batch's messages are handled: their tenants have that much less in flight. */
    done(messages: Message[]): void {
      for (const m of messages) {
        const group = groupOf(m);
        const left = (inFlight.get(group) ?? 1) - 1;
        if (left > 0) inFlight.set(group, left);
        else inFlight.delete(group);
      }
    },

    /** Makes every held message visible again at once. */
    async release(): Promise<void> {
      await filling;
      const handles = held.map((h) => h.message.ReceiptHandle ?? '');
      held = [];
      for (let i = 0; i < handles.length; i += 10) {
        const entries = handles.slice(i, i + 10).map((ReceiptHandle, n) => ({ Id: String(n), ReceiptHandle }));
        await options.sqs.send(
          new ChangeMessageVisibilityBatchCommand({
            QueueUrl: options.queueUrl,
            Entries: entries.map((e) => ({ ...e, VisibilityTimeout: 0 })),
          }),
        );
      }
    },
  };
}
