import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';

/** The attribute holding the record's expiry (epoch seconds): the table's TTL attribute. */
export const IDEMPOTENCY_EXPIRY_ATTRIBUTE = 'expiration';

/** Powertools' DynamoDB persistence for job keys, on the given client (so the local twin can point it at dynalite). */
export function createIdempotencyStore(client: DynamoDBClient, tableName: string) {
  return new DynamoDBPersistenceLayer({ tableName, awsSdkV3Client: client, expiryAttr: IDEMPOTENCY_EXPIRY_ATTRIBUTE });
}
