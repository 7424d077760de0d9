import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { SubscribeCommand, type SNSClient } from '@aws-sdk/client-sns';

/** An event as the topic published it, with when the console received it. */
export type RecordedEvent = {
  seq: number;
  receivedAt: string;
  type: string;
  idempotencyKey?: string;
  event: Record<string, unknown>;
};

export type EventLogOptions = {
  sqs: SQSClient;
  sns: SNSClient;
  topicArn: string;
  /** Name of the queue subscribed to the topic for the console. */
  queueName: string;
  /** Events kept in memory, oldest dropped first. @default 5000 */
  capacity?: number;
  onError?: (error: Error) => void;
};

/**
 * Records every event published to the events topic, through a queue of its own subscribed to it: what the
 * dispatcher, the poller and any other publisher sent, exactly as subscribers receive it. Kept in memory, bounded.
 */
export async function startEventLog(options: EventLogOptions) {
  const capacity = options.capacity ?? 5000;
  const queue = await options.sqs.send(new CreateQueueCommand({ QueueName: options.queueName }));
  const queueUrl = queue.QueueUrl ?? '';
  const arn = await options.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
  );
  await options.sns.send(
    new SubscribeCommand({
      TopicArn: options.topicArn,
      Protocol: 'sqs',
      Endpoint: arn.Attributes?.QueueArn ?? '',
      Attributes: { RawMessageDelivery: 'true' },
    }),
  );

  const events: RecordedEvent[] = [];
  const listeners = new Set<(event: RecordedEvent) => void>();
  let seq = 0;
  const abort = new AbortController();

  const record = (body: string) => {
    let event: Record<string, unknown>;
    try {
      event = JSON.parse(body) as Record<string, unknown>;
    } catch {
      event = { type: 'unreadable', body: body.slice(0, 1000) };
    }
    seq += 1;
    const recorded: RecordedEvent = {
      seq,
      receivedAt: new Date().toISOString(),
      type: String(event.type ?? 'unknown'),
      idempotencyKey: typeof event.idempotencyKey === 'string' ? event.idempotencyKey : undefined,
      event,
    };
    events.push(recorded);
    if (events.length > capacity) events.splice(0, events.length - capacity);
    for (const listener of listeners) listener(recorded);
  };

  const loop = (async () => {
    while (!abort.signal.aborted) {
      try {
        const r = await options.sqs.send(
          new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
          { abortSignal: abort.signal },
        );
        const messages = r.Messages ?? [];
        for (const m of messages) record(m.Body ?? '');
        if (messages.length > 0) {
          await options.sqs.send(
            new DeleteMessageBatchCommand({
              QueueUrl: queueUrl,
              Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
            }),
          );
        }
      } catch (error) {
        if (abort.signal.aborted) break;
        options.onError?.(error as Error);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  })();

  return {
    /** Newest first, filtered by type (exact, or a prefix ending in `.` or `*`) and key (substring). */
    list(filter: { type?: string; key?: string; limit?: number } = {}): RecordedEvent[] {
      const type = filter.type?.replace(/\*$/, '');
      const matchesType = (t: string) => !type || t === type || (type.endsWith('.') && t.startsWith(type));
      const key = filter.key?.toLowerCase();
      const out: RecordedEvent[] = [];
      for (let i = events.length - 1; i >= 0 && out.length < (filter.limit ?? 500); i -= 1) {
        const e = events[i] as RecordedEvent;
        if (matchesType(e.type) && (!key || (e.idempotencyKey ?? '').toLowerCase().includes(key))) out.push(e);
      }
      return out;
    },
    /** All recorded events, oldest first (the outbox joins messages to outcomes with it). */
    all: (): readonly RecordedEvent[] => events,
    subscribe(listener: (event: RecordedEvent) => void) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async stop() {
      abort.abort();
      await loop;
    },
  };
}
