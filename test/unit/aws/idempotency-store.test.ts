import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import { describe, expect, it } from 'vitest';
import { createIdempotencyStore, toIdempotencyRecordId } from '#aws/idempotency-store.js';

describe('toIdempotencyRecordId', () => {
  it('gives the id Powertools gives the same key, so a takeover can be tied to its job', () => {
    const store = createIdempotencyStore(new DynamoDBClient({ region: 'eu-west-1' }), 'idempotency');
    store.configure({ config: new IdempotencyConfig({ eventKeyJmesPath: 'idempotencyKey' }), keyPrefix: 'email-job' });
    const powertools = (store as unknown as { getHashedIdempotencyKey(data: unknown): string }).getHashedIdempotencyKey(
      { idempotencyKey: 'order-4711/receipt', subject: 'x' },
    );
    expect(toIdempotencyRecordId('email-job', 'order-4711/receipt')).toBe(powertools);
  });
});
