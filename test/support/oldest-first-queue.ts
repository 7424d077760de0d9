import { randomUUID } from 'node:crypto';
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type Message,
  type MessageAttributeValue,
} from '@aws-sdk/client-sqs';

type Stored = {
  id: string;
  body: string;
  attributes: Record<string, MessageAttributeValue>;
  sentAt: number;
  visibleAt: number;
  handle?: string;
};

/**
 * Queues that always return the oldest visible messages first (as SQS may: it promises no order), with visibility
 * timeouts and receipt handles that go stale when a message is received again. Speaks the five SQS commands the
 * redrive tool sends, for the order SQS does not let a test choose.
 */
export function createOldestFirstQueues(clock: () => number = Date.now) {
  const queues = new Map<string, Stored[]>();
  const queue = (url: string) => {
    if (!queues.has(url)) queues.set(url, []);
    return queues.get(url) as Stored[];
  };
  let sequence = 0;
  const byHandle = (url: string, handle: string | undefined) =>
    queue(url).find((m) => m.handle !== undefined && m.handle === handle);
  return {
    queue,
    async send(command: unknown): Promise<object> {
      const now = clock();
      if (command instanceof SendMessageCommand) {
        const { QueueUrl, MessageBody, MessageAttributes } = command.input;
        const id = randomUUID();
        queue(QueueUrl as string).push({
          id,
          body: MessageBody ?? '',
          attributes: MessageAttributes ?? {},
          sentAt: now + (sequence += 1) / 1000,
          visibleAt: 0,
        });
        return { MessageId: id };
      }
      if (command instanceof ReceiveMessageCommand) {
        const { QueueUrl, MaxNumberOfMessages, VisibilityTimeout } = command.input;
        const visible = queue(QueueUrl as string)
          .filter((m) => m.visibleAt <= now)
          .sort((a, b) => a.sentAt - b.sentAt)
          .slice(0, MaxNumberOfMessages ?? 1);
        const messages: Message[] = visible.map((m) => {
          m.visibleAt = now + (VisibilityTimeout ?? 30) * 1000;
          m.handle = randomUUID();
          return { MessageId: m.id, ReceiptHandle: m.handle, Body: m.body, MessageAttributes: m.attributes };
        });
        return { Messages: messages };
      }
      if (command instanceof DeleteMessageCommand) {
        const { QueueUrl, ReceiptHandle } = command.input;
        const found = byHandle(QueueUrl as string, ReceiptHandle);
        if (!found)
          throw Object.assign(new Error('The receipt handle has expired'), { name: 'ReceiptHandleIsInvalid' });
        queue(QueueUrl as string).splice(queue(QueueUrl as string).indexOf(found), 1);
        return {};
      }
      if (command instanceof ChangeMessageVisibilityBatchCommand) {
        const { QueueUrl, Entries } = command.input;
        const failed = [];
        for (const entry of Entries ?? []) {
          const found = byHandle(QueueUrl as string, entry.ReceiptHandle);
          if (found) found.visibleAt = now + (entry.VisibilityTimeout ?? 0) * 1000;
          else failed.push({ Id: entry.Id, Code: 'ReceiptHandleIsInvalid', SenderFault: true });
        }
        return { Successful: [], Failed: failed };
      }
      if (command instanceof GetQueueAttributesCommand) {
        const all = queue(command.input.QueueUrl as string);
        const visible = all.filter((m) => m.visibleAt <= now).length;
        return {
          Attributes: {
            ApproximateNumberOfMessages: String(visible),
            ApproximateNumberOfMessagesNotVisible: String(all.length - visible),
          },
        };
      }
      throw new Error(`not supported here: ${(command as object).constructor.name}`);
    },
  };
}
