import { PublishBatchCommand, PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import type { DispatchEvent, EventPublisher } from '#core/events.js';

/** Publishes events to the SNS events topic, with `type` as a message attribute for subscription filters. */
export function createSnsEventPublisher(client: SNSClient, topicArn: string): EventPublisher {
  return {
    async publish(event: DispatchEvent) {
      await client.send(
        new PublishCommand({
          TopicArn: topicArn,
          Message: JSON.stringify(event),
          MessageAttributes: { type: { DataType: 'String', StringValue: event.type } },
        }),
      );
    },
    /** PublishBatch in tens: one request for a whole batch's outcomes instead of one per job. */
    async publishBatch(events: DispatchEvent[]) {
      const failed: Array<{ event: DispatchEvent; error: string }> = [];
      for (let i = 0; i < events.length; i += 10) {
        const chunk = events.slice(i, i + 10);
        try {
          const result = await client.send(
            new PublishBatchCommand({
              TopicArn: topicArn,
              PublishBatchRequestEntries: chunk.map((event, n) => ({ Id: String(n), Message: JSON.stringify(event), MessageAttributes: { type: { DataType: 'String', StringValue: event.type } } })),
            }),
          );
          for (const f of result.Failed ?? []) {
            const event = chunk[Number(f.Id)];
            if (event) failed.push({ event, error: `${f.Code}: ${f.Message ?? ''}` });
          }
        } catch (error) {
          failed.push(...chunk.map((event) => ({ event, error: (error as Error).message })));
        }
      }
      return failed;
    },
  };
}
