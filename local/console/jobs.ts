import {
  ChangeMessageVisibilityBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  type Message,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { reasonOf, redriveDeadLetters } from '#tools/redrive-dead-letters.js';

export type QueueDepth = { visible: number; inFlight: number; delayed: number };

/** A dead-lettered job as the console lists it. */
export type DeadLetter = {
  id: string;
  failureClass: string;
  reason: string;
  detail?: string;
  /** For invalid jobs: the fields the validation named (`subject`, `to.0`). */
  fields: string[];
  idempotencyKey?: string;
  sentAt?: string;
  receiveCount: number;
  body: string;
};

const toDeadLetter = (m: Message): DeadLetter => {
  const attrs = m.MessageAttributes ?? {};
  const { failureClass, reason } = reasonOf(m);
  const detail = attrs.failureDetail?.StringValue;
  // The handler writes validation problems as `path: message; path: message` (describeIssues).
  const fields =
    failureClass === 'invalid' && detail
      ? detail
          .split('; ')
          .map((part) => part.split(': ')[0] ?? '')
          .filter((f) => f !== '' && f !== '(job)')
      : [];
  const sent = Number(m.Attributes?.SentTimestamp);
  return {
    id: m.MessageId ?? '',
    failureClass,
    reason,
    detail,
    fields,
    idempotencyKey: attrs.idempotencyKey?.StringValue,
    sentAt: Number.isFinite(sent) && sent > 0 ? new Date(sent).toISOString() : undefined,
    receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? 0),
    body: (m.Body ?? '').slice(0, 4000),
  };
};

/**
 * The jobs queue and its DLQ as the console shows them: depths, the dead letters with their reasons, and redrive
 * (chosen jobs, or all of one reason) through the same code as `npm run redrive`. DLQ work is done one at a time,
 * so a listing never hides messages from a redrive running beside it.
 */
export function createJobsView(options: { sqs: SQSClient; queueUrl: string; deadLetterQueueUrl: string }) {
  const { sqs } = options;
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const next = chain.then(work, work);
    chain = next.catch(() => undefined);
    return next;
  };

  const depth = async (queueUrl: string): Promise<QueueDepth> => {
    const r = await sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: queueUrl,
        AttributeNames: [
          'ApproximateNumberOfMessages',
          'ApproximateNumberOfMessagesNotVisible',
          'ApproximateNumberOfMessagesDelayed',
        ],
      }),
    );
    return {
      visible: Number(r.Attributes?.ApproximateNumberOfMessages ?? 0),
      inFlight: Number(r.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
      delayed: Number(r.Attributes?.ApproximateNumberOfMessagesDelayed ?? 0),
    };
  };

  return {
    async depths() {
      const [jobs, deadLetters] = await Promise.all([depth(options.queueUrl), depth(options.deadLetterQueueUrl)]);
      return { jobs, deadLetters };
    },

    /** Every dead letter: received with a short hold until no new ones come, then made visible again at once. */
    deadLetters(): Promise<DeadLetter[]> {
      return serial(async () => {
        const seen = new Map<string, Message>();
        for (let round = 0; round < 1000; round += 1) {
          const r = await sqs.send(
            new ReceiveMessageCommand({
              QueueUrl: options.deadLetterQueueUrl,
              MaxNumberOfMessages: 10,
              WaitTimeSeconds: 0,
              VisibilityTimeout: 30,
              MessageAttributeNames: ['All'],
              MessageSystemAttributeNames: ['All'],
            }),
          );
          const fresh = (r.Messages ?? []).filter((m) => !seen.has(m.MessageId ?? ''));
          for (const m of fresh) seen.set(m.MessageId ?? '', m);
          if (fresh.length === 0) break;
        }
        const held = [...seen.values()];
        for (let i = 0; i < held.length; i += 10) {
          const chunk = held.slice(i, i + 10);
          await sqs.send(
            new ChangeMessageVisibilityBatchCommand({
              QueueUrl: options.deadLetterQueueUrl,
              Entries: chunk.map((m, n) => ({ Id: String(n), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0 })),
            }),
          );
        }
        return held.map(toDeadLetter).sort((a, b) => (b.sentAt ?? '').localeCompare(a.sentAt ?? ''));
      });
    },

    /** Moves the chosen dead letters (by SQS message id, or every one with this reason) back to the jobs queue. */
    redrive(selection: { ids?: string[]; reason?: string }) {
      const ids = new Set(selection.ids ?? []);
      return serial(() =>
        redriveDeadLetters({
          sqs,
          deadLetterQueueUrl: options.deadLetterQueueUrl,
          sourceQueueUrl: options.queueUrl,
          only: (m) =>
            ids.has(m.MessageId ?? '') || (selection.reason !== undefined && reasonOf(m).reason === selection.reason),
          ratePerSecond: 100,
          holdSeconds: 30,
        }),
      );
    },
  };
}
