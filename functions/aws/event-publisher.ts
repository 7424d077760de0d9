import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
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
  };
}
