import { UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { BounceHistory } from '#core/mailbox/repeated-bounces.js';
import { hashAddress } from '#core/message-id.js';
import { TableKeys } from './table-keys.js';

const PK = TableKeys.mailboxState.partitionKey;
const TTL = TableKeys.mailboxState.ttlAttribute;

/**
 * The days each address failed each way, in the poller's state table: one item per address and kind,
 * `bounces#<kind>#<address hash>` (no plain address), holding the days as a string set. Adding a day is idempotent (a
 * report read twice adds nothing), days before the window are dropped, and the item expires a window after its last
 * failure.
 */
export function createBounceHistoryStore(client: DynamoDBDocumentClient, tableName: string): BounceHistory {
  return {
    async recordDay(address, kind, day, { since, expiresAt }) {
      const Key = { [PK]: `bounces#${kind}#${hashAddress(address)}` };
      const result = await client.send(
        new UpdateCommand({
          TableName: tableName,
          Key,
          UpdateExpression: 'ADD #days :day SET #ttl = :ttl',
          ExpressionAttributeNames: { '#days': 'days', '#ttl': TTL },
          ExpressionAttributeValues: { ':day': new Set([day]), ':ttl': expiresAt },
          ReturnValues: 'ALL_NEW',
        }),
      );
      const days = [...((result.Attributes?.days as Set<string> | undefined) ?? [])];
      const old = days.filter((d) => d < since);
      if (old.length > 0)
        await client.send(
          new UpdateCommand({
            TableName: tableName,
            Key,
            UpdateExpression: 'DELETE #days :old',
            ExpressionAttributeNames: { '#days': 'days' },
            ExpressionAttributeValues: { ':old': new Set(old) },
          }),
        );
      return days.filter((d) => d >= since);
    },
  };
}
