import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type Message,
  type MessageAttributeValue,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { createRateLimiter } from '#core/rate-limiter.js';

/**
 * Which dead letters to move: transient ones (given up after retries, or crashing the handler), all, or those a
 * predicate picks (the console's selected jobs or one reason).
 */
export type RedriveSelection = 'transient' | 'all' | ((message: Message) => boolean);

export type RedriveOptions = {
  sqs: SQSClient;
  deadLetterQueueUrl: string;
  sourceQueueUrl: string;
  only: RedriveSelection;
  /** Most messages to move. @default unlimited */
  max?: number;
  /** Messages per second. @default 10 */
  ratePerSecond?: number;
  dryRun?: boolean;
  /** How long inspected messages stay hidden while the run goes on, seconds. @default 120 */
  holdSeconds?: number;
  onMove?: (moved: number) => void;
};

export type RedriveReport = { inspected: number; byReason: Record<string, number>; moved: number; left: number };

/** A dead letter's reason: what the handler wrote on it, or `crashed` for one the redrive policy moved. */
export function reasonOf(message: Message): { failureClass: string; reason: string } {
  const attrs = message.MessageAttributes ?? {};
  const failureClass = attrs.failureClass?.StringValue ?? 'crashed';
  return { failureClass, reason: failureClass === 'crashed' ? 'crashed (maxReceiveCount reached)' : `${failureClass}: ${attrs.failureReason?.StringValue ?? 'unknown'}` };
}

const FAILURE_ATTRIBUTES = new Set(['failureClass', 'failureReason', 'failureDetail', 'sourceMessageId']);

/**
 * Moves dead letters back to the jobs queue as new messages (their attempt history reset), at a bounded rate.
 * A message is deleted from the DLQ only after the jobs queue has it, so an interrupted run loses nothing; what it
 * may leave is one job on both queues, which the idempotency key keeps from being sent twice.
 * Works without StartMessageMoveTask (which the emulator lacks, and which cannot select by reason).
 */
export async function redriveDeadLetters(options: RedriveOptions): Promise<RedriveReport> {
  const limiter = createRateLimiter(options.ratePerSecond ?? 10);
  const report: RedriveReport = { inspected: 0, byReason: {}, moved: 0, left: 0 };
  const held: Message[] = [];
  const seen = new Set<string>();
  const max = options.max ?? Number.POSITIVE_INFINITY;
  for (let round = 0; round < 100_000; round += 1) {
    const received = await options.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: options.deadLetterQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: options.holdSeconds ?? 120, MessageAttributeNames: ['All'], MessageSystemAttributeNames: ['All'] }),
    );
    const fresh = (received.Messages ?? []).filter((m) => !seen.has(m.MessageId ?? ''));
    if (fresh.length === 0) break;
    for (const message of fresh) {
      seen.add(message.MessageId ?? '');
      report.inspected += 1;
      const { failureClass, reason } = reasonOf(message);
      report.byReason[reason] = (report.byReason[reason] ?? 0) + 1;
      const selected =
        typeof options.only === 'function'
          ? options.only(message)
          : options.only === 'all' || failureClass === 'exhausted' || failureClass === 'crashed';
      if (options.dryRun || !selected || report.moved >= max) {
        held.push(message);
        continue;
      }
      await limiter.take();
      const attributes: Record<string, MessageAttributeValue> = Object.fromEntries(Object.entries(message.MessageAttributes ?? {}).filter(([name]) => !FAILURE_ATTRIBUTES.has(name)));
      attributes.redrivenFrom = { DataType: 'String', StringValue: message.MessageId ?? '' };
      await options.sqs.send(new SendMessageCommand({ QueueUrl: options.sourceQueueUrl, MessageBody: message.Body ?? '', MessageAttributes: attributes }));
      await options.sqs.send(new DeleteMessageCommand({ QueueUrl: options.deadLetterQueueUrl, ReceiptHandle: message.ReceiptHandle }));
      report.moved += 1;
      options.onMove?.(report.moved);
    }
  }
  // Give back what was only looked at.
  for (let i = 0; i < held.length; i += 10) {
    const chunk = held.slice(i, i + 10);
    await options.sqs.send(new ChangeMessageVisibilityBatchCommand({ QueueUrl: options.deadLetterQueueUrl, Entries: chunk.map((m, n) => ({ Id: String(n), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0 })) }));
  }
  report.left = held.length;
  return report;
}
