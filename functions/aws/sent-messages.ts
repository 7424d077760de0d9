import { GetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { fromBase32 } from '#core/message-id.js';
import { DEFAULT_TENANT, isTenantName } from '#core/tenant.js';
import type { SentMessages } from '#core/verify-report.js';
import { TableKeys } from './table-keys.js';

/** The part of a job's stored result (the dispatcher's idempotency record) that reports are checked against. */
type StoredResult = { recipients?: Array<{ hash?: unknown; status?: unknown }>; tenant?: unknown; key?: unknown };

/**
 * What the dispatcher sent, read from its idempotency table: a handle is the MD5 digest Powertools names the key's
 * record by (`<prefix>#<base64 digest>`), and the completed record's data holds the recipients' keyed hashes. Only
 * recipients the provider accepted (or deferred: a follow-up sends them the same message) count; a record still in
 * progress has none yet. The record names the job's tenant and its tenant-scoped key, so a verified report is
 * counted against that tenant and marks that job's status.
 */
export function createSentMessages(
  client: DynamoDBDocumentClient,
  tableName: string,
  keyPrefix = 'email-job',
): SentMessages {
  return {
    async sentMessageOf(handle) {
      const digest = fromBase32(handle);
      if (!digest || digest.length < 16) return undefined;
      const id = `${keyPrefix}#${digest.subarray(0, 16).toString('base64')}`;
      const { Item } = await client.send(
        new GetCommand({
          TableName: tableName,
          Key: { [TableKeys.idempotency.partitionKey]: id },
          ProjectionExpression: '#status, #data',
          ExpressionAttributeNames: { '#status': 'status', '#data': 'data' },
        }),
      );
      if (Item?.status !== 'COMPLETED') return undefined;
      const stored = (Item.data ?? {}) as StoredResult;
      // A recipient refused for now gets the same message (and token) from a follow-up: reports about it count too.
      const accepted = (stored.recipients ?? []).filter(
        (r) => (r.status === 'accepted' || r.status === 'deferred') && typeof r.hash === 'string',
      );
      // Records written before tenants name none: the default tenant's.
      const tenant = isTenantName(stored.tenant) ? stored.tenant : DEFAULT_TENANT;
      const key = typeof stored.key === 'string' ? stored.key : undefined;
      return { recipientHashes: accepted.map((r) => r.hash as string), tenant, key };
    },
  };
}
