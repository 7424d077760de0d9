import type { SQSClient } from '@aws-sdk/client-sqs';
import { LIFETIME_START_ATTRIBUTE, type JobRequeue } from '#core/send-router.js';
import { TENANT_ATTRIBUTE } from '#core/tenant-identity.js';

/**
 * Requeues a job on the jobs queue as a new message, delayed (at most 900 s, SQS's limit), with its lifetime start,
 * its tenant and any other attributes given.
 */
export function createJobRequeue(client: () => Promise<SQSClient>, queueUrl: string): JobRequeue {
  return {
    async requeue(body, { delaySeconds, lifetimeStartMs, tenant, attributes = {} }) {
      const [sqs, { SendMessageCommand }] = await Promise.all([client(), import('@aws-sdk/client-sqs')]);
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: queueUrl,
          MessageBody: body,
          DelaySeconds: Math.min(900, Math.max(0, Math.round(delaySeconds))),
          MessageAttributes: {
            ...Object.fromEntries(
              Object.entries(attributes).map(([name, value]) => [name, { DataType: 'String', StringValue: value }]),
            ),
            [LIFETIME_START_ATTRIBUTE]: { DataType: 'Number', StringValue: String(Math.round(lifetimeStartMs)) },
            // Sent by the dispatcher's own role (a system sender): the tenant it was checked to be stays with it.
            ...(tenant ? { [TENANT_ATTRIBUTE]: { DataType: 'String', StringValue: tenant } } : {}),
          },
          ...(tenant ? { MessageGroupId: tenant } : {}),
        }),
      );
    },
  };
}
