import { PublishBatchCommand, PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { forEachBounded, slices } from '#core/bounded.js';
import type { DispatchEvent, EventPublisher } from '#core/events.js';

/** Subscription filters match on `type`, and on `tenant` for a tenant's own events. */
const attributesOf = (event: DispatchEvent) => ({
  type: { DataType: 'String', StringValue: event.type },
  ...(typeof event.tenant === 'string' ? { tenant: { DataType: 'String', StringValue: event.tenant } } : {}),
});

/** Publishes events to the SNS events topic, with `type` (and `tenant`) as message attributes for subscription filters. */
export function createSnsEventPublisher(client: SNSClient, topicArn: string): EventPublisher {
  return {
    async publish(event: DispatchEvent) {
      await client.send(
        new PublishCommand({
          TopicArn: topicArn,
          Message: JSON.stringify(event),
          MessageAttributes: attributesOf(event),
        }),
      );
    },
    /** PublishBatch in tens: one request for a whole batch's outcomes instead of one per job. */
    async publishBatch(events: DispatchEvent[]) {
      const failed: Array<{ event: DispatchEvent; error: string }> = [];
      // A few requests in flight: a chunk of a hundred inbound events is ten requests.
      await forEachBounded(slices(events, 10), 4, async (chunk) => {
        try {
          const result = await client.send(
            new PublishBatchCommand({
              TopicArn: topicArn,
              PublishBatchRequestEntries: chunk.map((event, n) => ({
                Id: String(n),
                Message: JSON.stringify(event),
                MessageAttributes: attributesOf(event),
              })),
            }),
          );
          for (const f of result.Failed ?? []) {
            const event = chunk[Number(f.Id)];
            if (event) failed.push({ event, error: `${f.Code}: ${f.Message ?? ''}` });
          }
        } catch (error) {
          failed.push(...chunk.map((event) => ({ event, error: (error as Error).message })));
        }
      });
      return failed;
    },
  };
}
