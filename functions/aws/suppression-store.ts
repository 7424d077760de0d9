import { setTimeout as sleep } from 'node:timers/promises';
import {
  BatchGetCommand,
  DeleteCommand,
  GetCommand,
  PutCommand,
  ScanCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { hashAddress } from '#core/message-id.js';
import {
  DEFAULT_SUPPRESSION_TTL_DAYS,
  hashOfTarget,
  isActive,
  mergeSuppression,
  scopeOf,
  type SuppressionRecord,
  type SuppressionStore,
} from '#core/suppression.js';
import { isConditionFailure } from './conditional-write.js';
import { TableKeys } from './table-keys.js';

const KEY = TableKeys.suppression.partitionKey;
const TTL = TableKeys.suppression.ttlAttribute;

export type SuppressionStoreOptions = {
  /** How long entries for non-permanent reasons suppress. @default 30 days */
  ttlDays?: number;
  /** Called once per address newly suppressed (not for repeats): where the spike metric is counted. */
  onCreated?: (record: SuppressionRecord) => void;
};

/**
 * The item key of an entry: the address's hash for a global entry, `<hash>#<tenant>` for a tenant's, so that a
 * lookup for one tenant's mail reads both in one BatchGetItem and no tenant's entry shadows the global one.
 */
const keyOf = (addressHash: string, tenant: string | undefined) =>
  tenant === undefined ? addressHash : `${addressHash}#${tenant}`;
const tenantOfScope = (scope: SuppressionRecord['scope']) =>
  scope.startsWith('tenant:') ? scope.slice('tenant:'.length) : undefined;

/** An item as stored, including ones written before entries had first/last seen, a count or a scope. */
const toRecord = (item: Record<string, unknown>): SuppressionRecord => ({
  addressHash: String(item[KEY]).split('#')[0] ?? '',
  maskedAddress: typeof item.maskedAddress === 'string' ? item.maskedAddress : '***',
  scope: String(item[KEY]).includes('#') ? `tenant:${String(item[KEY]).split('#')[1]}` : 'global',
  reason: String(item.reason ?? 'unknown'),
  source: String(item.source ?? 'unknown'),
  status: item.status as string | undefined,
  detail: item.detail as string | undefined,
  verified: item.verified as string | boolean | undefined,
  permanent: item.permanent === undefined ? item[TTL] === undefined : item.permanent === true,
  firstSeen: String(item.firstSeen ?? item.createdAt ?? ''),
  lastSeen: String(item.lastSeen ?? item.createdAt ?? ''),
  count: Number(item.count ?? 1),
  expiresAt: typeof item[TTL] === 'number' ? item[TTL] : undefined,
});

const toItem = (record: SuppressionRecord): Record<string, unknown> => {
  const { addressHash, expiresAt, ...rest } = record;
  const key = keyOf(addressHash, tenantOfScope(record.scope));
  const item: Record<string, unknown> = { [KEY]: key, ...rest, [TTL]: expiresAt };
  return Object.fromEntries(Object.entries(item).filter(([, value]) => value !== undefined));
};

/**
 * The suppression list in DynamoDB, keyed by the address's hash (`addressHash`): the table holds no plain addresses,
 * yet any address can be looked up or removed by hashing it the same way. Entries for non-permanent reasons carry
 * `expiresAt` (the table's TTL attribute); since DynamoDB deletes expired items only eventually, every read checks it.
 */
export function createSuppressionStore(
  client: DynamoDBDocumentClient,
  tableName: string,
  options: SuppressionStoreOptions = {},
): SuppressionStore {
  const ttlDays = options.ttlDays ?? DEFAULT_SUPPRESSION_TTL_DAYS;
  const read = (key: string) =>
    client.send(new GetCommand({ TableName: tableName, Key: { [KEY]: key }, ConsistentRead: true }));
  const get = async (key: string) => {
    const { Item } = await read(key);
    return Item ? toRecord(Item) : undefined;
  };
  return {
    async findSuppressed(addresses, tenant, signal) {
      const now = new Date();
      // Every key that stops this mail (global, and the tenant's own) to the address it is about.
      const byKey = new Map<string, string>();
      for (const address of addresses) {
        const hash = hashAddress(address);
        byKey.set(hash, address.toLowerCase());
        if (tenant !== undefined) byKey.set(keyOf(hash, tenant), address.toLowerCase());
      }
      const found = new Set<string>();
      let keys: Array<Record<string, unknown>> = [...byKey.keys()].map((key) => ({ [KEY]: key }));
      for (let round = 0; keys.length > 0 && round < 5; round += 1) {
        if (round > 0) await sleep(50 * 2 ** round, undefined, { signal });
        const result = await client.send(
          new BatchGetCommand({
            RequestItems: {
              [tableName]: {
                Keys: keys.slice(0, 100),
                ProjectionExpression: '#key, #ttl',
                ExpressionAttributeNames: { '#key': KEY, '#ttl': TTL },
              },
            },
          }),
        );
        for (const item of result.Responses?.[tableName] ?? []) {
          const address = byKey.get(String(item[KEY]));
          if (address && isActive({ expiresAt: typeof item[TTL] === 'number' ? item[TTL] : undefined }, now))
            found.add(address);
        }
        keys = [
          ...((result.UnprocessedKeys?.[tableName]?.Keys as Array<Record<string, unknown>>) ?? []),
          ...keys.slice(100),
        ];
      }
      if (keys.length > 0) throw new Error(`suppression lookup left ${keys.length} keys unprocessed`);
      return found;
    },

    async suppress(request, now = new Date()) {
      // Read, merge, write if nothing changed in between: two reports for one address at once both count.
      for (let attempt = 0; attempt < 5; attempt += 1) {
        const { Item } = await read(keyOf(hashAddress(request.address), tenantOfScope(scopeOf(request))));
        const existing = Item ? toRecord(Item) : undefined;
        const merged = mergeSuppression(existing, request, now, ttlDays);
        // Entries written before versions existed have none: the first update gives them one.
        const version = typeof Item?.version === 'number' ? Item.version : undefined;
        try {
          await client.send(
            new PutCommand({
              TableName: tableName,
              Item: { ...toItem(merged.record), version: (version ?? 0) + 1 },
              ConditionExpression: !Item
                ? 'attribute_not_exists(#key)'
                : version === undefined
                  ? 'attribute_not_exists(#version)'
                  : '#version = :version',
              ExpressionAttributeNames: Item ? { '#version': 'version' } : { '#key': KEY },
              ExpressionAttributeValues: version === undefined ? undefined : { ':version': version },
            }),
          );
        } catch (error) {
          if (isConditionFailure(error)) continue;
          throw error;
        }
        if (merged.created) options.onCreated?.(merged.record);
        return merged;
      }
      throw new Error('suppression entry kept changing under five attempts to update it');
    },

    async check(address, now = new Date(), tenant) {
      const hash = hashAddress(address);
      for (const key of tenant === undefined ? [hash] : [keyOf(hash, tenant), hash]) {
        const record = await get(key);
        if (record && isActive(record, now)) return record;
      }
      return undefined;
    },

    async list({ limit = 1000, now = new Date() } = {}) {
      const records: SuppressionRecord[] = [];
      let startKey: Record<string, unknown> | undefined;
      // Bounded: an operator's list, not an export; `limit` live entries at most.
      for (let page = 0; page < 100 && records.length < limit; page += 1) {
        const result = await client.send(new ScanCommand({ TableName: tableName, ExclusiveStartKey: startKey }));
        for (const item of result.Items ?? []) {
          const record = toRecord(item);
          if (isActive(record, now)) records.push(record);
        }
        startKey = result.LastEvaluatedKey;
        if (!startKey) break;
      }
      return records.sort((a, b) => b.lastSeen.localeCompare(a.lastSeen)).slice(0, limit);
    },

    async remove(target) {
      const result = await client.send(
        new DeleteCommand({
          TableName: tableName,
          Key: { [KEY]: keyOf(hashOfTarget(target), target.tenant) },
          ReturnValues: 'ALL_OLD',
        }),
      );
      return result.Attributes ? toRecord(result.Attributes) : undefined;
    },
  };
}
