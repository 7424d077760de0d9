import type { SQSClient } from '@aws-sdk/client-sqs';
import type { DeadLetterSink, VisibilityControl } from '#core/dispatch-ports.js';

/**
 * Sends a job that will never be sent to the dead-letter queue, its body untouched and its reason as attributes.
 * `client` is asked for on first use: a batch where every job is delivered never loads the SQS client.
 */
export function createDeadLetterSink(client: () => Promise<SQSClient>, queueUrl: string): DeadLetterSink {
  return {
    async send(body, reason) {
      const [sqs, { SendMessageCommand }] = await Promise.all([client(), import('@aws-sdk/client-sqs')]);
      const attributes = Object.fromEntries(
        Object.entries(reason)
          .filter(([, value]) => value !== undefined && value !== '')
          // SQS attribute values are limited and should stay readable in the console.
          .map(([name, value]) => [name, { DataType: 'String', StringValue: String(value).slice(0, 1024) }]),
      );
      await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body, MessageAttributes: attributes }));
    },
  };
}

/** The retry backoff through ChangeMessageVisibility on the jobs queue (at most 12 hours). */
export function createVisibilityControl(client: () => Promise<SQSClient>, queueUrl: string): VisibilityControl {
  return {
    async postpone(record, delaySeconds) {
      const [sqs, { ChangeMessageVisibilityCommand }] = await Promise.all([client(), import('@aws-sdk/client-sqs')]);
      await sqs.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: queueUrl,
          ReceiptHandle: record.receiptHandle,
          VisibilityTimeout: Math.min(43_200, Math.max(0, Math.round(delaySeconds))),
        }),
      );
    },
  };
}
