import { createHash } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import { TableKeys } from './table-keys.js';

/**
 * Powertools' DynamoDB persistence for job keys, on the given client (so the local twin can point it at dynalite).
 *
 * `onTakeover` is told when an attempt replaces an expired INPROGRESS record: the attempt before it died after
 * claiming the job (a crash or a timeout), so the job may already have gone out. Powertools keeps this to itself;
 * asking DynamoDB for the replaced item (ReturnValues ALL_OLD) on the claiming PutItem costs nothing extra.
 * One hook per client and table: a store made again for them replaces the earlier one's (rather than stacking a
 * second hook on every request, or failing on the duplicate name).
 */
export function createIdempotencyStore(client: DynamoDBClient, tableName: string, onTakeover?: (recordId: string) => void) {
  // Only the claiming PutItem on this table is touched; other commands on the shared client pass through.
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { TableName?: string; ReturnValues?: string; Item?: Record<string, { S?: string }> };
      const claiming = context.commandName === 'PutItemCommand' && input.TableName === tableName;
      if (claiming) input.ReturnValues = 'ALL_OLD';
      const result = await next(args);
      const old = (result.output as { Attributes?: Record<string, { S?: string }> }).Attributes;
      if (claiming && old?.status?.S === 'INPROGRESS') onTakeover?.(input.Item?.[TableKeys.idempotency.partitionKey]?.S ?? '');
      return result;
    },
    { step: 'initialize', name: `idempotencyTakeover:${tableName}`, override: true },
  );
  return new DynamoDBPersistenceLayer({
    tableName,
    awsSdkV3Client: client,
    keyAttr: TableKeys.idempotency.partitionKey,
    expiryAttr: TableKeys.idempotency.ttlAttribute,
  });
}

/**
 * The id Powertools gives a key's record with its defaults (md5, base64 of the JSON of the key):
 * `<prefix>#<hash>`. Lets a takeover, reported by record id, be tied back to its job.
 */
export function toIdempotencyRecordId(prefix: string, idempotencyKey: string): string {
  return `${prefix}#${createHash('md5').update(JSON.stringify(idempotencyKey)).digest('base64')}`;
}
