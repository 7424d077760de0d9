import {
  BatchGetCommand,
  BatchWriteCommand,
  DeleteCommand,
  GetCommand,
  PutCommand,
  UpdateCommand,
  type BatchGetCommandOutput,
  type BatchWriteCommandInput,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import type { Checkpoint, MailboxStateStore } from '#core/sync-mailbox.js';
import { forEachBounded, slices } from '#core/bounded.js';
import { TableKeys } from './table-keys.js';

const PK = TableKeys.mailboxState.partitionKey;
const TTL = TableKeys.mailboxState.ttlAttribute;
/** Unprocessed batch items (throttling) are retried with a growing pause, five times at most. */
const backoff = async (attempt: number, what: string) => {
  if (attempt > 5) throw new Error(what);
  await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 25 * 2 ** attempt) * Math.random()));
};
const isConditionFailure = (error: unknown) => (error as { name?: string }).name === 'ConditionalCheckFailedException';

/**
 * Leases, checkpoints and seen-markers in one DynamoDB table, by key prefix:
 * `lease#<mailbox>` (conditional put with expiry), `checkpoint#<mailbox>` (compare-and-set, never backwards),
 * `seen#<mailbox>#<message key>` (with a TTL of `seenTtlDays`, read and written in batches).
 */
export function createMailboxStateStore(client: DynamoDBDocumentClient, tableName: string, options: { seenTtlDays?: number; clock?: () => number } = {}): MailboxStateStore {
  const clock = options.clock ?? Date.now;
  const seenTtlSeconds = (options.seenTtlDays ?? 60) * 86_400;
  return {
    async acquireLease(mailboxId, owner, untilMs) {
      try {
        await client.send(
          new PutCommand({
            TableName: tableName,
            Item: { [PK]: `lease#${mailboxId}`, owner, leaseUntil: untilMs, [TTL]: Math.ceil(untilMs / 1000) + 3600 },
            ConditionExpression: 'attribute_not_exists(#pk) OR leaseUntil < :now OR #owner = :owner',
            ExpressionAttributeNames: { '#pk': PK, '#owner': 'owner' },
            ExpressionAttributeValues: { ':now': clock(), ':owner': owner },
          }),
        );
        return true;
      } catch (error) {
        if (isConditionFailure(error)) return false;
        throw error;
      }
    },
    async releaseLease(mailboxId, owner) {
      await client
        .send(new DeleteCommand({ TableName: tableName, Key: { [PK]: `lease#${mailboxId}` }, ConditionExpression: '#owner = :owner', ExpressionAttributeNames: { '#owner': 'owner' }, ExpressionAttributeValues: { ':owner': owner } }))
        .catch((error: unknown) => {
          if (!isConditionFailure(error)) throw error;
        });
    },
    async getCheckpoint(mailboxId) {
      const result = await client.send(new GetCommand({ TableName: tableName, Key: { [PK]: `checkpoint#${mailboxId}` }, ConsistentRead: true }));
      if (!result.Item) return undefined;
      const verifyUpTo = result.Item.verifyUpTo as number | undefined;
      return { uidValidity: String(result.Item.uidValidity), lastUid: Number(result.Item.lastUid), highestModseq: (result.Item.highestModseq as string | null) ?? undefined, verifyUpTo: verifyUpTo === undefined ? undefined : Number(verifyUpTo) };
    },
    async advanceCheckpoint(mailboxId, next: Checkpoint, expected: Checkpoint | undefined) {
      // Forward only: the same UIDVALIDITY with a higher UID, or a new UIDVALIDITY replacing exactly what we read.
      const sameValidity = expected !== undefined && expected.uidValidity === next.uidValidity;
      const condition = !expected
        ? 'attribute_not_exists(#pk)'
        : sameValidity
          ? 'uidValidity = :uv AND lastUid < :uid'
          : 'uidValidity = :expectedUv AND lastUid = :expectedUid';
      try {
        await client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: { [PK]: `checkpoint#${mailboxId}` },
            UpdateExpression: `SET uidValidity = :uv, lastUid = :uid, highestModseq = :modseq, updatedAt = :at${next.verifyUpTo !== undefined ? ', verifyUpTo = :verify' : ''}`,
            ConditionExpression: condition,
            ExpressionAttributeNames: !expected ? { '#pk': PK } : undefined,
            ExpressionAttributeValues: {
              ':uv': next.uidValidity,
              ':uid': next.lastUid,
              ':modseq': next.highestModseq ?? null,
              ':at': new Date(clock()).toISOString(),
              ...(next.verifyUpTo !== undefined ? { ':verify': next.verifyUpTo } : {}),
              ...(expected && !sameValidity ? { ':expectedUv': expected.uidValidity, ':expectedUid': expected.lastUid } : {}),
            },
          }),
        );
        return true;
      } catch (error) {
        if (isConditionFailure(error)) return false;
        throw error;
      }
    },
    async raiseVerifyMark(mailboxId, uidValidity, upToUid, expected) {
      try {
        await client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: { [PK]: `checkpoint#${mailboxId}` },
            UpdateExpression: 'SET uidValidity = if_not_exists(uidValidity, :uv), lastUid = if_not_exists(lastUid, :zero), verifyUpTo = :verify, updatedAt = :at',
            ConditionExpression: !expected
              ? 'attribute_not_exists(#pk)'
              : expected.verifyUpTo === undefined
                ? 'uidValidity = :uv AND attribute_not_exists(verifyUpTo)'
                : 'uidValidity = :uv AND verifyUpTo = :expected',
            ExpressionAttributeNames: !expected ? { '#pk': PK } : undefined,
            ExpressionAttributeValues: {
              ':uv': uidValidity,
              ':zero': 0,
              ':verify': upToUid,
              ':at': new Date(clock()).toISOString(),
              ...(expected?.verifyUpTo !== undefined ? { ':expected': expected.verifyUpTo } : {}),
            },
          }),
        );
        return true;
      } catch (error) {
        if (isConditionFailure(error)) return false;
        throw error;
      }
    },
    async seenAmong(mailboxId, messageKeys) {
      const seen = new Set<string>();
      const prefix = `seen#${mailboxId}#`;
      for (let i = 0; i < messageKeys.length; i += 100) {
        let keys: Array<Record<string, unknown>> | undefined = messageKeys.slice(i, i + 100).map((k) => ({ [PK]: `${prefix}${k}` }));
        for (let attempt = 0; keys && keys.length > 0; attempt += 1) {
          if (attempt > 0) await backoff(attempt, 'seen markers could not all be read');
          const result: BatchGetCommandOutput = await client.send(
            new BatchGetCommand({ RequestItems: { [tableName]: { Keys: keys, ProjectionExpression: '#pk', ExpressionAttributeNames: { '#pk': PK } } } }),
          );
          for (const item of result.Responses?.[tableName] ?? []) seen.add(String(item[PK]).slice(prefix.length));
          keys = result.UnprocessedKeys?.[tableName]?.Keys;
        }
      }
      return seen;
    },
    async markSeen(mailboxId, messageKeys) {
      const expires = Math.ceil(clock() / 1000) + seenTtlSeconds;
      await forEachBounded(slices(messageKeys, 25), 4, async (keys) => {
        let writes: BatchWriteCommandInput['RequestItems'] | undefined = {
          [tableName]: keys.map((k) => ({ PutRequest: { Item: { [PK]: `seen#${mailboxId}#${k}`, [TTL]: expires } } })),
        };
        for (let attempt = 0; writes && Object.keys(writes).length > 0; attempt += 1) {
          if (attempt > 0) await backoff(attempt, 'seen markers could not all be written');
          writes = (await client.send(new BatchWriteCommand({ RequestItems: writes }))).UnprocessedItems;
        }
      });
    },
  };
}
