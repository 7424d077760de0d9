import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import { TableKeys } from './table-keys.js';

/** Powertools' DynamoDB persistence for job keys, on the given client (so the local twin can point it at dynalite). */
export function createIdempotencyStore(client: DynamoDBClient, tableName: string) {
  return new DynamoDBPersistenceLayer({
    tableName,
    awsSdkV3Client: client,
    keyAttr: TableKeys.idempotency.partitionKey,
    expiryAttr: TableKeys.idempotency.ttlAttribute,
  });
}
