import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import { describe, expect, it } from 'vitest';
import { createIdempotencyStore, createUnpublishedOutcomes, toIdempotencyRecordId } from '#aws/idempotency-store.js';
import { TableKeys } from '#aws/table-keys.js';
import { createTable } from '#local/resources.js';
import { useDynalite } from '../support/dynalite.js';

const dynalite = useDynalite();
let tables = 0;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A fresh table and a store on it, configured as the dispatch handler configures it. */
async function freshStore() {
  tables += 1;
  const tableName = `fence-${process.pid}-${tables}`;
  await createTable(dynalite.clients, tableName, TableKeys.idempotency.partitionKey);
  const store = createIdempotencyStore(dynalite.clients.dynamodb, tableName);
  store.configure({ config: new IdempotencyConfig({ eventKeyJmesPath: 'idempotencyKey' }), keyPrefix: 'email-job' });
  const read = async (idempotencyKey: string) => {
    const result = await dynalite.clients.dynamodb.send(
      new GetItemCommand({
        TableName: tableName,
        Key: { [TableKeys.idempotency.partitionKey]: { S: toIdempotencyRecordId('email-job', idempotencyKey) } },
        ConsistentRead: true,
      }),
    );
    return result.Item;
  };
  return { store, tableName, read };
}

describe('fenced idempotency records', () => {
  it('lets a late attempt neither release nor overwrite the record of the attempt that took over its claim', async () => {
    // Prepare: attempt A claims, its claim expires, attempt B takes over and completes
    const { store, read } = await freshStore();
    const late = { idempotencyKey: 'fence-1' };
    const current = { idempotencyKey: 'fence-1' };
    await store.saveInProgress(late, 1);
    await sleep(20);
    await store.saveInProgress(current, 60_000);
    await store.saveSuccess(current, { action: 'delivered', by: 'B' });

    // Act: A ends late, once with a transient failure (release) and once as if it had sent (complete)
    await store.deleteRecord(late);
    const completion = store.saveSuccess(late, { action: 'delivered', by: 'A' });

    // Assess
    await expect(completion).rejects.toMatchObject({ name: 'IdempotencyClaimLostError' });
    const item = await read('fence-1');
    expect(item?.status?.S).toBe('COMPLETED');
    expect(item?.data?.M?.by?.S).toBe('B');
  });

  it('still releases and completes the record an attempt claimed itself', async () => {
    // Prepare
    const { store, read } = await freshStore();
    const released = { idempotencyKey: 'fence-2' };
    const completed = { idempotencyKey: 'fence-3' };
    await store.saveInProgress(released, 60_000);
    await store.saveInProgress(completed, 60_000);

    // Act
    await store.deleteRecord(released);
    await store.saveSuccess(completed, { action: 'rejected' });

    // Assess
    expect(await read('fence-2')).toBeUndefined();
    expect((await read('fence-3'))?.status?.S).toBe('COMPLETED');
  });

  it('clears the unpublished-outcome mark of a completed record, and leaves other records alone', async () => {
    // Prepare
    const { store, tableName, read } = await freshStore();
    const marks = createUnpublishedOutcomes(dynalite.clients.dynamodb, tableName, 'email-job');
    const job = { idempotencyKey: 'fence-4' };
    await store.saveInProgress(job, 60_000);
    await store.saveSuccess(job, { action: 'delivered', unpublished: true });
    const marked = await read('fence-4');

    // Act
    await marks.clear('fence-4');
    await marks.clear('fence-4');
    await marks.clear('never-completed');

    // Assess
    expect(marked?.data?.M?.unpublished?.BOOL).toBe(true);
    expect((await read('fence-4'))?.data?.M?.unpublished).toBeUndefined();
    expect(await read('never-completed')).toBeUndefined();
  });
});
