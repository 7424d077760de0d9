import type { SQSClient } from '@aws-sdk/client-sqs';
import { LIFETIME_START_ATTRIBUTE, type JobRequeue } from '#core/send-router.js';

/** Requeues a job on the jobs queue as a new message, delayed (at most 900 s, SQS's limit), with its lifetime start. */
export function createJobRequeue(client: () => Promise<SQSClient>, queueUrl: string): JobRequeue {
  return {
    async requeue(body, { delaySeconds, lifetimeStartMs }) {
      const [sqs, { SendMessageCommand }] = await Promise.all([client(), import('@aws-sdk/client-sqs')]);
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: queueUrl,
          MessageBody: body,
          DelaySeconds: Math.min(900, Math.max(0, Math.round(delaySeconds))),
          MessageAttributes: {
            [LIFETIME_START_ATTRIBUTE]: { DataType: 'Number', StringValue: String(Math.round(lifetimeStartMs)) },
          },
        }),
      );
    },
  };
}
