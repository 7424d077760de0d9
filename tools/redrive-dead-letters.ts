import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type Message,
  type MessageAttributeValue,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { slices } from '#core/bounded.js';
import { createRateLimiter } from '#core/rate-limiter.js';
import { REDRIVEN_SENDER_ATTRIBUTE, SENDER_REFUSALS } from '#core/tenant-identity.js';

/**
 * Which dead letters to move: transient ones (given up after retries, or crashing the handler), all, or those a
 * predicate picks (the console's selected jobs or one reason).
 */
export type RedriveSelection = 'transient' | 'all' | ((message: Message) => boolean);

export type RedriveOptions = {
  sqs: Pick<SQSClient, 'send'>;
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
  /** Stops the run between two messages (never between a message's copy and its deletion); held ones are released. */
  signal?: AbortSignal;
};

/**
 * What a run did. `inspected` counts distinct messages; `left` and `leftBefore` are the DLQ's own counts
 * (visible + in flight) after the held messages were released, and before the run.
 */
export type RedriveReport = {
  inspected: number;
  byReason: Record<string, number>;
  moved: number;
  left: number;
  leftBefore: number;
  interrupted: boolean;
};

/** A dead letter's reason: what the handler wrote on it, or `crashed` for one the redrive policy moved. */
export function reasonOf(message: Message): { failureClass: string; reason: string } {
  const attrs = message.MessageAttributes ?? {};
  const failureClass = attrs.failureClass?.StringValue ?? 'crashed';
  return {
    failureClass,
    reason:
      failureClass === 'crashed'
        ? 'crashed (maxReceiveCount reached)'
        : `${failureClass}: ${attrs.failureReason?.StringValue ?? 'unknown'}`,
  };
}

const FAILURE_ATTRIBUTES = new Set(['failureClass', 'failureReason', 'failureDetail', 'sourceMessageId']);

/** Visible plus in-flight messages, as the queue counts them. */
async function queueDepth(sqs: RedriveOptions['sqs'], queueUrl: string): Promise<{ visible: number; total: number }> {
  const result = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  const visible = Number(result.Attributes?.ApproximateNumberOfMessages ?? 0);
  return { visible, total: visible + Number(result.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0) };
}

/**
 * Moves dead letters back to the jobs queue as new messages (their attempt history reset), at a bounded rate.
 * A message is deleted from the DLQ only after the jobs queue has it, so an interrupted run loses nothing; what it
 * may leave is one job on both queues, which the idempotency key keeps from being sent twice.
 *
 * Messages it only looks at (not selected, a dry run, past `max`) are held hidden for `holdSeconds`; one that
 * reappears (its hold ran out, as in a slow run) is received again, keeps its latest receipt handle, and is not
 * counted twice. The run ends when every message the queue held at the start was seen or the queue shows none
 * visible, whatever order SQS returns them in. Works without StartMessageMoveTask (which the emulator lacks, and
 * which cannot select by reason). Never moves a job refused for its sender or its tenant claim, whatever the selection:
 * its re-send would carry a tenant no one checked.
 */
export async function redriveDeadLetters(options: RedriveOptions): Promise<RedriveReport> {
  const limiter = createRateLimiter(options.ratePerSecond ?? 10);
  const start = await queueDepth(options.sqs, options.deadLetterQueueUrl);
  const report: RedriveReport = {
    inspected: 0,
    byReason: {},
    moved: 0,
    left: 0,
    leftBefore: start.total,
    interrupted: false,
  };
  // Held messages by id, with their latest receipt handle.
  const held = new Map<string, Message>();
  const moved = new Set<string>();
  const max = options.max ?? Number.POSITIVE_INFINITY;
  let emptyRounds = 0;
  for (let round = 0; round < 100_000; round += 1) {
    if (options.signal?.aborted) {
      report.interrupted = true;
      break;
    }
    if (report.inspected >= start.total && start.total > 0) break;
    const received = await options.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: options.deadLetterQueueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 1,
        VisibilityTimeout: options.holdSeconds ?? 120,
        MessageAttributeNames: ['All'],
        MessageSystemAttributeNames: ['All'],
      }),
    );
    const messages = received.Messages ?? [];
    const fresh = messages.filter((m) => {
      const id = m.MessageId ?? '';
      if (!held.has(id) && !moved.has(id)) return true;
      // Seen before: its hold ran out. Keep the newest handle (the old one no longer works).
      if (held.has(id)) held.set(id, m);
      return false;
    });
    if (fresh.length === 0) {
      // Nothing new in this receive: done once the queue shows nothing visible (what is left is ours, held).
      emptyRounds = messages.length === 0 ? emptyRounds + 1 : 0;
      if (
        messages.length === 0 &&
        ((await queueDepth(options.sqs, options.deadLetterQueueUrl)).visible === 0 || emptyRounds >= 3)
      )
        break;
      continue;
    }
    emptyRounds = 0;
    for (const message of fresh) {
      const id = message.MessageId ?? '';
      report.inspected += 1;
      const { failureClass, reason } = reasonOf(message);
      report.byReason[reason] = (report.byReason[reason] ?? 0) + 1;
      // A job refused for its sender was never any tenant's: a move would re-send it as trusted (SENDER_REFUSALS).
      const selected =
        !SENDER_REFUSALS.has(message.MessageAttributes?.failureReason?.StringValue ?? '') &&
        (typeof options.only === 'function'
          ? options.only(message)
          : options.only === 'all' || failureClass === 'exhausted' || failureClass === 'crashed');
      if (options.dryRun || !selected || report.moved >= max || options.signal?.aborted) {
        held.set(id, message);
        continue;
      }
      await limiter.take();
      const attributes: Record<string, MessageAttributeValue> = Object.fromEntries(
        Object.entries(message.MessageAttributes ?? {}).filter(([name]) => !FAILURE_ATTRIBUTES.has(name)),
      );
      attributes.redrivenFrom = { DataType: 'String', StringValue: id };
      // Who put it in the DLQ (replacing any such attribute it came with): the dispatcher holds the tenant claim of
      // a message SQS moved there unchecked to that sender, not to this tool's (trusted) role.
      attributes[REDRIVEN_SENDER_ATTRIBUTE] = {
        DataType: 'String',
        StringValue: message.Attributes?.SenderId || 'unknown',
      };
      await options.sqs.send(
        new SendMessageCommand({
          QueueUrl: options.sourceQueueUrl,
          MessageBody: message.Body ?? '',
          MessageAttributes: attributes,
        }),
      );
      await options.sqs.send(
        new DeleteMessageCommand({ QueueUrl: options.deadLetterQueueUrl, ReceiptHandle: message.ReceiptHandle }),
      );
      moved.add(id);
      report.moved += 1;
      options.onMove?.(report.moved);
    }
  }
  // Give back what was only looked at, with the handles that still work.
  for (const chunk of slices([...held.values()], 10)) {
    await options.sqs.send(
      new ChangeMessageVisibilityBatchCommand({
        QueueUrl: options.deadLetterQueueUrl,
        Entries: chunk.map((m, n) => ({ Id: String(n), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0 })),
      }),
    );
  }
  report.left = (await queueDepth(options.sqs, options.deadLetterQueueUrl)).total;
  return report;
}
