import {
  BatchGetCommand,
  GetCommand,
  UpdateCommand,
  type BatchGetCommandOutput,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import type { Attempt, Checkpoint, Lease, MailboxStateStore, Resync } from '#core/mailbox/ports.js';
import { forEachBounded, slices } from '#core/bounded.js';
import { conditional, isConditionFailure } from './conditional-write.js';
import { TableKeys } from './table-keys.js';

const PK = TableKeys.mailboxState.partitionKey;
const TTL = TableKeys.mailboxState.ttlAttribute;
/** Unprocessed batch items (throttling) are retried with a growing pause, five times at most. */
const backoff = async (attempt: number, what: string) => {
  if (attempt > 5) throw new Error(what);
  await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 25 * 2 ** attempt) * Math.random()));
};
const checkpointKey = (mailboxId: string) => `checkpoint#${mailboxId}`;

/** Seen markers are grouped by UID: one item holds the message keys of a thousand consecutive UIDs. */
const SEEN_BUCKET_UIDS = 1000;
const bucketOf = (uid: number) => Math.floor(uid / SEEN_BUCKET_UIDS);
const seenKey = (mailboxId: string, uidValidity: string, bucket: number) =>
  `seen#${mailboxId}#${uidValidity}#${bucket}`;

/**
 * Leases, checkpoints and seen-markers in one DynamoDB table, by key prefix:
 * `checkpoint#<mailbox>` holds the checkpoint (compare-and-set, never backwards) and the lease (owner, expiry and a
 * fencing token `fence` that every take raises and nothing lowers), so that a checkpoint write checks the lease in
 * the same condition; `seen#<mailbox>#<uidvalidity>#<bucket>`: the keys of the messages published from UIDs
 * `bucket × 1000` to `bucket × 1000 + 999`, as a string set that each chunk adds to (one write per chunk rather than
 * one per message), with a TTL of `seenTtlDays` from the last write and the fence of the last writer, so that a run
 * overtaken by a later lease cannot write after it.
 */
export function createMailboxStateStore(
  client: DynamoDBDocumentClient,
  tableName: string,
  options: { seenTtlDays?: number; clock?: () => number } = {},
): MailboxStateStore {
  const clock = options.clock ?? Date.now;
  const seenTtlSeconds = (options.seenTtlDays ?? 60) * 86_400;
  /** The key sets of the given buckets that exist, read a hundred items a request. */
  const readBuckets = async (
    mailboxId: string,
    uidValidity: string,
    buckets: number[],
  ): Promise<Map<number, Set<string>>> => {
    const found = new Map<number, Set<string>>();
    const prefix = seenKey(mailboxId, uidValidity, 0).slice(0, -1);
    for (const group of slices(buckets, 100)) {
      let keys: Array<Record<string, unknown>> | undefined = group.map((b) => ({
        [PK]: seenKey(mailboxId, uidValidity, b),
      }));
      for (let attempt = 0; keys && keys.length > 0; attempt += 1) {
        if (attempt > 0) await backoff(attempt, 'seen markers could not all be read');
        const result: BatchGetCommandOutput = await client.send(
          new BatchGetCommand({
            RequestItems: {
              [tableName]: {
                Keys: keys,
                ProjectionExpression: '#pk, #keys',
                ExpressionAttributeNames: { '#pk': PK, '#keys': 'keys' },
              },
            },
          }),
        );
        for (const item of result.Responses?.[tableName] ?? [])
          found.set(Number(String(item[PK]).slice(prefix.length)), (item.keys as Set<string> | undefined) ?? new Set());
        keys = result.UnprocessedKeys?.[tableName]?.Keys;
      }
    }
    return found;
  };
  return {
    async acquireLease(mailboxId, owner, untilMs) {
      try {
        const result = await client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: { [PK]: checkpointKey(mailboxId) },
            UpdateExpression:
              'SET leaseOwner = :owner, leaseUntil = :until, fence = if_not_exists(fence, :zero) + :one',
            ConditionExpression: 'attribute_not_exists(leaseUntil) OR leaseUntil < :now OR leaseOwner = :owner',
            ExpressionAttributeValues: { ':owner': owner, ':until': untilMs, ':now': clock(), ':zero': 0, ':one': 1 },
            ReturnValues: 'UPDATED_NEW',
          }),
        );
        return { mailboxId, owner, fence: Number(result.Attributes?.fence) };
      } catch (error) {
        if (isConditionFailure(error)) return undefined;
        throw error;
      }
    },
    async renewLease(lease: Lease, untilMs: number) {
      return conditional(() =>
        client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: { [PK]: checkpointKey(lease.mailboxId) },
            UpdateExpression: 'SET leaseUntil = :until REMOVE attempt',
            ConditionExpression: 'fence = :fence',
            ExpressionAttributeValues: { ':until': untilMs, ':fence': lease.fence },
          }),
        ),
      );
    },
    async releaseLease(lease: Lease) {
      // The fence stays: the next take raises it further.
      await conditional(() =>
        client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: { [PK]: checkpointKey(lease.mailboxId) },
            UpdateExpression: 'REMOVE leaseOwner, leaseUntil',
            ConditionExpression: 'fence = :fence',
            ExpressionAttributeValues: { ':fence': lease.fence },
          }),
        ),
      );
    },
    async getCheckpoint(mailboxId) {
      const key = { [PK]: checkpointKey(mailboxId) };
      const result = await client.send(new GetCommand({ TableName: tableName, Key: key, ConsistentRead: true }));
      // The item may hold only a lease: a mailbox never checkpointed.
      if (result.Item?.uidValidity === undefined) return undefined;
      const verifyUpTo = result.Item.verifyUpTo as number | undefined;
      const resync = result.Item.resync as Resync | undefined;
      const attempt = result.Item.attempt as Attempt | undefined;
      return {
        uidValidity: String(result.Item.uidValidity),
        lastUid: Number(result.Item.lastUid),
        highestModseq: (result.Item.highestModseq as string | null) ?? undefined,
        verifyUpTo: verifyUpTo === undefined ? undefined : Number(verifyUpTo),
        resync: resync
          ? {
              until: Number(resync.until),
              previous: resync.previous.map((p) => ({
                uidValidity: String(p.uidValidity),
                upToUid: Number(p.upToUid),
              })),
            }
          : undefined,
        attempt: attempt ? { uid: Number(attempt.uid), runs: Number(attempt.runs) } : undefined,
      };
    },
    async advanceCheckpoint(lease: Lease, next: Checkpoint, expected: Checkpoint | undefined) {
      // Forward only: the same UIDVALIDITY with a higher UID, or a new UIDVALIDITY replacing exactly what we read.
      const sameValidity = expected !== undefined && expected.uidValidity === next.uidValidity;
      const removed = [...(next.resync ? [] : ['resync']), ...(next.attempt ? [] : ['attempt'])];
      const condition = !expected
        ? 'attribute_not_exists(uidValidity)'
        : sameValidity
          ? 'uidValidity = :uv AND lastUid < :uid'
          : 'uidValidity = :expectedUv AND lastUid = :expectedUid';
      return conditional(() =>
        client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: { [PK]: checkpointKey(lease.mailboxId) },
            UpdateExpression: [
              'SET uidValidity = :uv, lastUid = :uid, highestModseq = :modseq, updatedAt = :at',
              next.verifyUpTo !== undefined ? ', verifyUpTo = :verify' : '',
              next.resync ? ', resync = :resync' : '',
              // A move clears the attempt (the run got past where it started), or records where the run goes on.
              next.attempt ? ', attempt = :attempt' : '',
              removed.length > 0 ? ` REMOVE ${removed.join(', ')}` : '',
            ].join(''),
            ConditionExpression: `fence = :fence AND ${condition}`,
            ExpressionAttributeValues: {
              ':fence': lease.fence,
              ':uv': next.uidValidity,
              ':uid': next.lastUid,
              ':modseq': next.highestModseq ?? null,
              ':at': new Date(clock()).toISOString(),
              ...(next.verifyUpTo !== undefined ? { ':verify': next.verifyUpTo } : {}),
              ...(next.resync ? { ':resync': next.resync } : {}),
              ...(next.attempt ? { ':attempt': next.attempt } : {}),
              ...(expected && !sameValidity
                ? { ':expectedUv': expected.uidValidity, ':expectedUid': expected.lastUid }
                : {}),
            },
          }),
        ),
      );
    },
    async raiseVerifyMark(lease: Lease, uidValidity, upToUid, expected) {
      const condition = !expected
        ? 'attribute_not_exists(uidValidity)'
        : expected.verifyUpTo === undefined
          ? 'uidValidity = :uv AND attribute_not_exists(verifyUpTo)'
          : 'uidValidity = :uv AND verifyUpTo = :expected';
      return conditional(() =>
        client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: { [PK]: checkpointKey(lease.mailboxId) },
            UpdateExpression:
              'SET uidValidity = if_not_exists(uidValidity, :uv), lastUid = if_not_exists(lastUid, :zero), verifyUpTo = :verify, updatedAt = :at',
            ConditionExpression: `fence = :fence AND ${condition}`,
            ExpressionAttributeValues: {
              ':fence': lease.fence,
              ':uv': uidValidity,
              ':zero': 0,
              ':verify': upToUid,
              ':at': new Date(clock()).toISOString(),
              ...(expected?.verifyUpTo !== undefined ? { ':expected': expected.verifyUpTo } : {}),
            },
          }),
        ),
      );
    },
    async recordAttempt(lease: Lease, attempt: Attempt) {
      return conditional(() =>
        client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: { [PK]: checkpointKey(lease.mailboxId) },
            UpdateExpression: 'SET attempt = :attempt',
            ConditionExpression: 'fence = :fence AND attribute_exists(uidValidity)',
            ExpressionAttributeValues: { ':attempt': attempt, ':fence': lease.fence },
          }),
        ),
      );
    },
    async seenAmong(mailboxId, uidValidity, messages) {
      const buckets = [...new Set(messages.map((m) => bucketOf(m.uid)))];
      const marked = await readBuckets(mailboxId, uidValidity, buckets);
      return new Set(messages.filter((m) => marked.get(bucketOf(m.uid))?.has(m.key)).map((m) => m.key));
    },
    async seenUpTo(mailboxId, uidValidity, upToUid) {
      const seen = new Set<string>();
      const buckets = Array.from({ length: bucketOf(upToUid) + 1 }, (_, i) => i);
      for (const keys of (await readBuckets(mailboxId, uidValidity, buckets)).values())
        for (const key of keys) seen.add(key);
      return seen;
    },
    async markSeen(lease: Lease, uidValidity, messages) {
      const byBucket = new Map<number, Set<string>>();
      for (const m of messages) {
        const bucket = bucketOf(m.uid);
        byBucket.set(bucket, (byBucket.get(bucket) ?? new Set()).add(m.key));
      }
      const expires = Math.ceil(clock() / 1000) + seenTtlSeconds;
      let refused = false;
      await forEachBounded([...byBucket], 4, async ([bucket, keys]) => {
        const written = await conditional(() =>
          client.send(
            new UpdateCommand({
              TableName: tableName,
              Key: { [PK]: seenKey(lease.mailboxId, uidValidity, bucket) },
              UpdateExpression: 'ADD #keys :keys SET #ttl = :ttl, fence = :fence',
              ConditionExpression: 'attribute_not_exists(fence) OR fence <= :fence',
              ExpressionAttributeNames: { '#keys': 'keys', '#ttl': TTL },
              ExpressionAttributeValues: { ':keys': keys, ':ttl': expires, ':fence': lease.fence },
            }),
          ),
        );
        refused ||= !written;
      });
      return !refused;
    },
  };
}
