import { BatchGetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { hashAddress } from '#core/message-id.js';
import type { SuppressionList } from '#core/dispatch-job.js';
import { TableKeys } from './table-keys.js';

const KEY = TableKeys.suppression.partitionKey;

/** Why an address is suppressed. */
export type SuppressionReason = 'hard-bounce' | 'complaint' | 'manual';

export type SuppressionEntry = {
  address: string;
  reason: SuppressionReason;
  /** What put it there: the bounce's Message-ID hash, an operator, … */
  source: string;
  /** RFC 3463 status of the bounce, when there is one. */
  status?: string;
};

/**
 * The suppression list in DynamoDB, keyed by the address's hash (`addressHash`): the table holds no plain addresses,
 * yet any address can be looked up or removed by hashing it the same way.
 */
export function createSuppressionStore(client: DynamoDBDocumentClient, tableName: string): SuppressionList & {
  suppress(entry: SuppressionEntry, now?: Date): Promise<void>;
} {
  return {
    async findSuppressed(addresses) {
      const byHash = new Map(addresses.map((a) => [hashAddress(a), a.toLowerCase()]));
      const found = new Set<string>();
      let keys: Array<Record<string, unknown>> = [...byHash.keys()].map((hash) => ({ [KEY]: hash }));
      for (let round = 0; keys.length > 0 && round < 5; round += 1) {
        if (round > 0) await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** round));
        const result = await client.send(new BatchGetCommand({ RequestItems: { [tableName]: { Keys: keys.slice(0, 100), ProjectionExpression: KEY } } }));
        for (const item of result.Responses?.[tableName] ?? []) {
          const address = byHash.get(String(item[KEY]));
          if (address) found.add(address);
        }
        keys = [...((result.UnprocessedKeys?.[tableName]?.Keys as Array<Record<string, unknown>>) ?? []), ...keys.slice(100)];
      }
      if (keys.length > 0) throw new Error(`suppression lookup left ${keys.length} keys unprocessed`);
      return found;
    },
    async suppress(entry, now = new Date()) {
      await client.send(
        new PutCommand({
          TableName: tableName,
          Item: { [KEY]: hashAddress(entry.address), reason: entry.reason, source: entry.source, status: entry.status, createdAt: now.toISOString() },
        }),
      );
    },
  };
}
