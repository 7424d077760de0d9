import { DeleteMessageBatchCommand, ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
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
 * One poll of the event source, as Lambda's SQS mapping does it: receive a batch, invoke the handler, delete the
 * records it did not report as failures. A thrown error (FullBatchFailureError included) leaves the whole batch to
 * come back after its visibility timeout.
 */
export async function deliverOneBatch(
  options: EventSourceOptions,
  signal?: AbortSignal,
): Promise<{ received: number; succeeded: number; failed: number }> {
  const messages = await receiveBatch(options, signal);
  if (messages.length === 0) return { received: 0, succeeded: 0, failed: 0 };
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
    onBatch?: (r: Awaited<ReturnType<typeof deliverOneBatch>>) => void;
    onError?: (error: unknown) => void;
  },
  signal: AbortSignal,
): Promise<void> {
  const worker = async () => {
    while (!signal.aborted) {
      try {
        const result = await deliverOneBatch(options, signal);
        options.onBatch?.(result);
      } catch (error) {
        options.onError?.(error);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  };
  await Promise.all(Array.from({ length: options.maxConcurrency }, worker));
}
