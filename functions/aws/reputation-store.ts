import {
  BatchGetCommand,
  GetCommand,
  ScanCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import {
  bucketStartOf,
  NO_COUNTS,
  type ReputationPolicy,
  type ReputationCounts,
  type ReputationStore,
  type TenantPause,
  type TenantStanding,
} from '#core/reputation.js';
import { TableKeys } from './table-keys.js';

const { partitionKey: KEY, ttlAttribute: TTL } = TableKeys.tenantState;

const countsKey = (tenant: string, bucketStartMs: number) => `counts#${tenant}#${bucketStartMs}`;
const standingKey = (tenant: string) => `standing#${tenant}`;
const reportKey = (tenant: string, id: string) => `report#${tenant}#${id}`;

/**
 * How long a counted report is remembered, beyond the window: a report verifies against the dispatcher's stored
 * result for as long as the idempotency record lives (15 days by default), so a replay within that time is known.
 */
const REPORT_MARK_SECONDS = 16 * 86_400;

const isConditionFailure = (error: unknown) => (error as { name?: string }).name === 'ConditionalCheckFailedException';

const toCounts = (item: Record<string, unknown> | undefined): ReputationCounts => ({
  sent: Number(item?.sent ?? 0),
  bounces: Number(item?.bounces ?? 0),
  complaints: Number(item?.complaints ?? 0),
});

const toPause = (item: Record<string, unknown>): TenantPause => ({
  tenant: String(item.tenant ?? ''),
  reason: String(item.reason ?? ''),
  pausedBy: String(item.pausedBy ?? ''),
  pausedAt: String(item.pausedAt ?? ''),
  bounceRate: item.bounceRate === undefined ? undefined : Number(item.bounceRate),
  complaintRate: item.complaintRate === undefined ? undefined : Number(item.complaintRate),
  counts: item.counts === undefined ? undefined : toCounts(item.counts as Record<string, unknown>),
});

const toStanding = (item: Record<string, unknown> | undefined): TenantStanding => {
  if (!item) return {};
  const baseline = item.resumedBaseline as Record<string, unknown> | undefined;
  const resumed = item.resumedAt
    ? {
        resumedAt: String(item.resumedAt),
        resumedBy: String(item.resumedBy ?? ''),
        ...(baseline
          ? { resumedBaseline: { ...toCounts(baseline), bucketStartMs: Number(baseline.bucketStartMs) } }
          : {}),
      }
    : {};
  return item.state === 'paused' ? { paused: toPause(item), ...resumed } : resumed;
};

/**
 * Per-tenant reputation in one DynamoDB table: a counter item per tenant and time bucket (`counts#<tenant>#<start>`,
 * changed only by atomic ADDs, deleted by TTL a day after it leaves the window) and a standing item per tenant
 * (`standing#<tenant>`: paused or resumed, changed only by conditional updates). A window and a standing are one
 * BatchGetItem; the dispatcher's check one eventually consistent GetItem.
 */
export function createReputationStore(
  client: DynamoDBDocumentClient,
  tableName: string,
  options: Pick<ReputationPolicy, 'windowSeconds' | 'bucketSeconds'>,
): ReputationStore & { standings(): Promise<Array<{ tenant: string; standing: TenantStanding }>> } {
  return {
    async add(tenant, bucketStartMs, counts) {
      const values = { ...NO_COUNTS, ...counts };
      await client.send(
        new UpdateCommand({
          TableName: tableName,
          Key: { [KEY]: countsKey(tenant, bucketStartMs) },
          UpdateExpression:
            'ADD sent :sent, bounces :bounces, complaints :complaints SET #ttl = :expires, tenant = :tenant',
          ExpressionAttributeNames: { '#ttl': TTL },
          ExpressionAttributeValues: {
            ':sent': values.sent,
            ':bounces': values.bounces,
            ':complaints': values.complaints,
            ':tenant': tenant,
            ':expires': Math.ceil(bucketStartMs / 1000) + options.windowSeconds + 86_400,
          },
        }),
      );
    },

    async markReports(tenant, ids) {
      const expires = Math.ceil(Date.now() / 1000) + Math.max(options.windowSeconds, REPORT_MARK_SECONDS);
      const fresh = new Set<string>();
      await Promise.all(
        [...new Set(ids)].map(async (id) => {
          try {
            await client.send(
              // An UpdateItem, the one write the report side is granted: it creates the marker or finds it there.
              new UpdateCommand({
                TableName: tableName,
                Key: { [KEY]: reportKey(tenant, id) },
                UpdateExpression: 'SET #ttl = :expires, tenant = :tenant',
                ConditionExpression: 'attribute_not_exists(#key)',
                ExpressionAttributeNames: { '#key': KEY, '#ttl': TTL },
                ExpressionAttributeValues: { ':expires': expires, ':tenant': tenant },
              }),
            );
            fresh.add(id);
          } catch (error) {
            if (!isConditionFailure(error)) throw error;
          }
        }),
      );
      return fresh;
    },

    async read(tenant, buckets) {
      const keys = [standingKey(tenant), ...buckets.map((start) => countsKey(tenant, start))];
      const items: Array<Record<string, unknown>> = [];
      let request: Record<string, { Keys: Array<Record<string, string>> }> | undefined = {
        [tableName]: { Keys: keys.map((k) => ({ [KEY]: k })) },
      };
      // Unprocessed keys (throttling) are asked again, a bounded number of times.
      for (let round = 0; request && Object.keys(request).length > 0 && round < 5; round += 1) {
        const answer = await client.send(new BatchGetCommand({ RequestItems: request }));
        items.push(...(answer.Responses?.[tableName] ?? []));
        request = answer.UnprocessedKeys as typeof request;
      }
      const byKey = new Map(items.map((item) => [String(item[KEY]), item]));
      return {
        buckets: new Map(buckets.map((start) => [start, toCounts(byKey.get(countsKey(tenant, start)))])),
        standing: toStanding(byKey.get(standingKey(tenant))),
      };
    },

    async standing(tenant) {
      const { Item } = await client.send(new GetCommand({ TableName: tableName, Key: { [KEY]: standingKey(tenant) } }));
      return toStanding(Item);
    },

    async pause(pause) {
      try {
        await client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: { [KEY]: standingKey(pause.tenant) },
            UpdateExpression:
              'SET #state = :paused, tenant = :tenant, reason = :reason, pausedBy = :by, pausedAt = :at, ' +
              'bounceRate = :bounceRate, complaintRate = :complaintRate, #counts = :counts',
            ConditionExpression: 'attribute_not_exists(#state) OR #state <> :paused',
            ExpressionAttributeNames: { '#state': 'state', '#counts': 'counts' },
            ExpressionAttributeValues: {
              ':paused': 'paused',
              ':tenant': pause.tenant,
              ':reason': pause.reason,
              ':by': pause.pausedBy,
              ':at': pause.pausedAt,
              ':bounceRate': pause.bounceRate ?? 0,
              ':complaintRate': pause.complaintRate ?? 0,
              ':counts': pause.counts ?? NO_COUNTS,
            },
          }),
        );
        return true;
      } catch (error) {
        if (isConditionFailure(error)) return false;
        throw error;
      }
    },

    async resume(tenant, resumedBy, resumedAt) {
      // What the resume's own bucket holds now: only what it gains after the resume counts against the tenant.
      const bucketStartMs = bucketStartOf(Date.parse(resumedAt), options);
      const { Item: bucket } = await client.send(
        new GetCommand({
          TableName: tableName,
          Key: { [KEY]: countsKey(tenant, bucketStartMs) },
          ConsistentRead: true,
        }),
      );
      try {
        const { Attributes } = await client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: { [KEY]: standingKey(tenant) },
            UpdateExpression: 'SET #state = :resumed, resumedAt = :at, resumedBy = :by, resumedBaseline = :baseline',
            ConditionExpression: '#state = :paused',
            ExpressionAttributeNames: { '#state': 'state' },
            ExpressionAttributeValues: {
              ':paused': 'paused',
              ':resumed': 'resumed',
              ':at': resumedAt,
              ':by': resumedBy,
              ':baseline': { ...toCounts(bucket), bucketStartMs },
            },
            ReturnValues: 'ALL_OLD',
          }),
        );
        return Attributes ? toPause(Attributes) : undefined;
      } catch (error) {
        if (isConditionFailure(error)) return undefined;
        throw error;
      }
    },

    /** Every tenant with a standing (paused now, or paused and resumed before), for the operator's status. */
    async standings() {
      const found: Array<{ tenant: string; standing: TenantStanding }> = [];
      let start: Record<string, unknown> | undefined;
      for (let page = 0; page < 100; page += 1) {
        const answer = await client.send(
          new ScanCommand({
            TableName: tableName,
            FilterExpression: 'begins_with(#key, :standing)',
            ExpressionAttributeNames: { '#key': KEY },
            ExpressionAttributeValues: { ':standing': 'standing#' },
            ExclusiveStartKey: start,
          }),
        );
        for (const item of answer.Items ?? []) found.push({ tenant: String(item.tenant), standing: toStanding(item) });
        start = answer.LastEvaluatedKey;
        if (!start) break;
      }
      return found.sort((a, b) => a.tenant.localeCompare(b.tenant));
    },
  };
}
