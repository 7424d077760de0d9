import { DeleteCommand, GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Checkpoint, MailboxStateStore } from '#core/sync-mailbox.js';
import { TableKeys } from './table-keys.js';

const PK = TableKeys.mailboxState.partitionKey;
const TTL = TableKeys.mailboxState.ttlAttribute;
const isConditionFailure = (error: unknown) => (error as { name?: string }).name === 'ConditionalCheckFailedException';

/**
 * Leases, checkpoints and seen-markers in one DynamoDB table, by key prefix:
 * `lease#<mailbox>` (conditional put with expiry), `checkpoint#<mailbox>` (compare-and-set, never backwards),
 * `seen#<mailbox>#<message key>` (with a TTL of `seenTtlDays`).
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
      return { uidValidity: String(result.Item.uidValidity), lastUid: Number(result.Item.lastUid), highestModseq: (result.Item.highestModseq as string | null) ?? undefined };
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
            UpdateExpression: 'SET uidValidity = :uv, lastUid = :uid, highestModseq = :modseq, updatedAt = :at',
            ConditionExpression: condition,
            ExpressionAttributeNames: !expected ? { '#pk': PK } : undefined,
            ExpressionAttributeValues: {
              ':uv': next.uidValidity,
              ':uid': next.lastUid,
              ':modseq': next.highestModseq ?? null,
              ':at': new Date(clock()).toISOString(),
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
    async hasSeen(mailboxId, messageKey) {
      const result = await client.send(new GetCommand({ TableName: tableName, Key: { [PK]: `seen#${mailboxId}#${messageKey}` }, ProjectionExpression: '#pk', ExpressionAttributeNames: { '#pk': PK } }));
      return result.Item !== undefined;
    },
    async markSeen(mailboxId, messageKey) {
      await client.send(new PutCommand({ TableName: tableName, Item: { [PK]: `seen#${mailboxId}#${messageKey}`, [TTL]: Math.ceil(clock() / 1000) + seenTtlSeconds } }));
    },
  };
}
