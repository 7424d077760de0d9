import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash, randomUUID } from 'node:crypto';
import { UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import type { PublishedOutcomes } from '#core/dispatch-ports.js';
import { isConditionFailure } from './conditional-write.js';
import { tableHooks } from './table-hooks.js';
import { TableKeys } from './table-keys.js';

/** The attribute holding the claim token of the attempt that owns an idempotency record. */
const CLAIM_ATTRIBUTE = 'claim';

/** The claim of the attempt whose store call is running (the middleware below reads it). */
const currentClaim = new AsyncLocalStorage<string>();

/** The completion write found another attempt's claim (or none): this attempt no longer owns the record. */
class IdempotencyClaimLostError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IdempotencyClaimLostError';
  }
}

/** How often the completion write is tried, and the pause before each retry (ms). */
const COMPLETION_RETRY_DELAYS_MS = [100, 400] as const;

type Expression = {
  TableName?: string;
  Item?: Record<string, { S?: string }>;
  ReturnValues?: string;
  ConditionExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: Record<string, { S?: string }>;
};

/**
 * Powertools' DynamoDB persistence layer with fenced records: each claim (the INPROGRESS PutItem) carries a fresh
 * token, and the attempt that made it completes (UpdateItem) or releases (DeleteItem) the record only while the
 * record still carries that token. A late attempt whose claim was taken over can then neither delete the completed
 * record of the attempt that replaced it nor overwrite it. Powertools' own conditions and layout are kept; the token
 * travels with the attempt's payload object (Powertools hands the same one to every call of one attempt).
 */
type Payload = Parameters<DynamoDBPersistenceLayer['saveInProgress']>[0];
type Result = Parameters<DynamoDBPersistenceLayer['saveSuccess']>[1];

class FencedDynamoDBPersistenceLayer extends DynamoDBPersistenceLayer {
  readonly #claims = new WeakMap<object, string>();

  override async saveInProgress(data: Payload, remainingTimeInMillis?: number): Promise<void> {
    const token = randomUUID();
    await currentClaim.run(token, () => super.saveInProgress(data, remainingTimeInMillis));
    this.#claims.set(data as object, token);
  }

  /** The completion write, retried (bounded) unless the claim was lost or the attempt's deadline passed. */
  override async saveSuccess(data: Payload, result: Result): Promise<void> {
    const token = this.#claims.get(data as object);
    const write = () =>
      token ? currentClaim.run(token, () => super.saveSuccess(data, result)) : super.saveSuccess(data, result);
    for (let attempt = 0; ; attempt += 1) {
      try {
        await write();
        return;
      } catch (error) {
        const name = (error as Error).name;
        if (isConditionFailure(error))
          throw new IdempotencyClaimLostError('the record was claimed by another attempt', { cause: error });
        const pause = COMPLETION_RETRY_DELAYS_MS[attempt];
        if (pause === undefined || name === 'AbortError') throw error;
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    }
  }

  override async deleteRecord(data: Payload): Promise<void> {
    const token = this.#claims.get(data as object);
    await (token ? currentClaim.run(token, () => super.deleteRecord(data)) : super.deleteRecord(data));
  }

  protected override async _deleteRecord(
    record: Parameters<DynamoDBPersistenceLayer['_deleteRecord']>[0],
  ): Promise<void> {
    try {
      await super._deleteRecord(record);
    } catch (error) {
      // Someone else's record now (a takeover, or completed by it): it is not ours to release.
      if (!isConditionFailure(error)) throw error;
    }
  }
}

/**
 * Powertools' DynamoDB persistence for job keys, fenced (see FencedDynamoDBPersistenceLayer), on the given client (so
 * the local twin can point it at dynalite).
 *
 * `onTakeover` is told when an attempt replaces an expired INPROGRESS record: the attempt before it died after
 * claiming the job (a crash or a timeout), so the job may already have gone out. Powertools keeps this to itself;
 * asking DynamoDB for the replaced item (ReturnValues ALL_OLD) on the claiming PutItem costs nothing extra.
 * One hook per client and table (table-hooks.ts): a store made again for them replaces the earlier one's, rather than
 * stacking a second hook on every request.
 */
export function createIdempotencyStore(
  client: DynamoDBClient,
  tableName: string,
  onTakeover?: (recordId: string) => void,
) {
  // Only this table's commands made inside an attempt's claim are touched; others on the shared client pass through.
  tableHooks(client).set(tableName, async (commandName, args, next) => {
    const input = args.input as Expression;
    const claim = currentClaim.getStore();
    if (claim === undefined) return next(args);
    const claiming = commandName === 'PutItemCommand';
    if (claiming && input.Item) {
      input.Item[CLAIM_ATTRIBUTE] = { S: claim };
      input.ReturnValues = 'ALL_OLD';
    }
    if (commandName === 'UpdateItemCommand' || commandName === 'DeleteItemCommand') {
      input.ConditionExpression = [input.ConditionExpression, '#claim = :claim'].filter(Boolean).join(' AND ');
      input.ExpressionAttributeNames = { ...input.ExpressionAttributeNames, '#claim': CLAIM_ATTRIBUTE };
      input.ExpressionAttributeValues = { ...input.ExpressionAttributeValues, ':claim': { S: claim } };
    }
    const result = await next(args);
    const old = (result.output as { Attributes?: Record<string, { S?: string }> }).Attributes;
    if (claiming && old?.status?.S === 'INPROGRESS')
      onTakeover?.(input.Item?.[TableKeys.idempotency.partitionKey]?.S ?? '');
    return result;
  });
  return new FencedDynamoDBPersistenceLayer({
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

/**
 * Marks whether a completed record's outcome event went out (`data.published`, which a replay sees through Powertools'
 * response hook), and the opposite in `data.unpublished`, the mark the dispatcher read before `published`: a rollback
 * to it republishes what this one would. A record that is not COMPLETED (expired, released) is left alone.
 */
export function createPublishedOutcomes(
  client: DynamoDBClient,
  tableName: string,
  keyPrefix: string,
): PublishedOutcomes {
  return {
    async mark(idempotencyKey, published) {
      await client
        .send(
          new UpdateItemCommand({
            TableName: tableName,
            Key: { [TableKeys.idempotency.partitionKey]: { S: toIdempotencyRecordId(keyPrefix, idempotencyKey) } },
            UpdateExpression: 'SET #data.#published = :published, #data.#unpublished = :unpublished',
            ConditionExpression: '#status = :completed',
            ExpressionAttributeNames: {
              '#status': 'status',
              '#data': 'data',
              '#published': 'published',
              '#unpublished': 'unpublished',
            },
            ExpressionAttributeValues: {
              ':completed': { S: 'COMPLETED' },
              ':published': { BOOL: published },
              ':unpublished': { BOOL: !published },
            },
          }),
        )
        .catch((error: Error) => {
          if (!isConditionFailure(error)) throw error;
        });
    },
  };
}
