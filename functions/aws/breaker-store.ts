import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { BreakerState, BreakerStore } from '#core/circuit-breaker.js';
import type { TransportName } from '#core/email-job.js';
import { conditional } from './conditional-write.js';
import { TableKeys } from './table-keys.js';

const KEY = TableKeys.transportState.partitionKey;

/**
 * The transports' breakers in DynamoDB, one item per transport (`transport` = `smtp` | `ses`), read eventually
 * consistent (half a read unit) and changed only by conditional updates.
 */
export function createBreakerStore(client: DynamoDBDocumentClient, tableName: string): BreakerStore {
  const key = (transport: TransportName) => ({ [KEY]: transport });
  return {
    async read(transport) {
      const { Item } = await client.send(new GetCommand({ TableName: tableName, Key: key(transport) }));
      if (Item?.state !== 'open') return { state: 'closed' };
      return {
        state: 'open',
        openedAtMs: Number(Item.openedAtMs),
        nextProbeAtMs: Number(Item.nextProbeAtMs),
        probeIntervalMs: Number(Item.probeIntervalMs),
        reason: String(Item.reason ?? ''),
      } satisfies BreakerState;
    },
    async open(transport, state, attemptStartedAtMs) {
      // An attempt that began before the last close is stale evidence (a close is written with the wall clock too).
      const stale =
        attemptStartedAtMs === undefined ? '' : ' AND (attribute_not_exists(closedAtMs) OR closedAtMs <= :started)';
      return conditional(() =>
        client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: key(transport),
            UpdateExpression:
              'SET #state = :open, openedAtMs = :openedAt, nextProbeAtMs = :next, probeIntervalMs = :interval, reason = :reason',
            ConditionExpression: `(attribute_not_exists(#state) OR #state <> :open)${stale}`,
            ExpressionAttributeNames: { '#state': 'state' },
            ExpressionAttributeValues: {
              ':open': 'open',
              ':openedAt': state.openedAtMs,
              ':next': state.nextProbeAtMs,
              ':interval': state.probeIntervalMs,
              ':reason': state.reason,
              ...(attemptStartedAtMs === undefined ? {} : { ':started': attemptStartedAtMs }),
            },
          }),
        ),
      );
    },
    async claimProbe(transport, dueAtMs, next) {
      return conditional(() =>
        client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: key(transport),
            UpdateExpression: 'SET nextProbeAtMs = :next, probeIntervalMs = :interval',
            ConditionExpression: '#state = :open AND nextProbeAtMs = :due',
            ExpressionAttributeNames: { '#state': 'state' },
            ExpressionAttributeValues: {
              ':open': 'open',
              ':due': dueAtMs,
              ':next': next.nextProbeAtMs,
              ':interval': next.probeIntervalMs,
            },
          }),
        ),
      );
    },
    async close(transport) {
      await conditional(() =>
        client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: key(transport),
            UpdateExpression: 'SET #state = :closed, closedAtMs = :now',
            ConditionExpression: '#state = :open',
            ExpressionAttributeNames: { '#state': 'state' },
            ExpressionAttributeValues: { ':open': 'open', ':closed': 'closed', ':now': Date.now() },
          }),
        ),
      );
    },
  };
}
