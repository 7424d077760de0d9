import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import { describe, expect, it } from 'vitest';
import { createIdempotencyStore, createPublishedOutcomes, toIdempotencyRecordId } from '#aws/idempotency-store.js';
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
  /** Attempt A claims, its claim expires, B takes over and completes; then A ends late (release, then complete). */
  async function lateAttemptAfterTakeover(key: string) {
    const { store, read } = await freshStore();
    const late = { idempotencyKey: key };
    const current = { idempotencyKey: key };
    await store.saveInProgress(late, 1);
    await sleep(20);
    await store.saveInProgress(current, 60_000);
    await store.saveSuccess(current, { action: 'delivered', by: 'B' });
    await store.deleteRecord(late);
    const completion = await store.saveSuccess(late, { action: 'delivered', by: 'A' }).catch((error: Error) => error);
    return { completion, item: await read(key) };
  }

  it('lets a late attempt neither release nor overwrite the record of the attempt that took over its claim', async () => {
    // Prepare, Act: the takeover, then A ending late
    const { completion, item } = await lateAttemptAfterTakeover('fence-1');

    // Assess
    expect(completion).toMatchObject({ name: 'IdempotencyClaimLostError' });
    expect(item?.status?.S).toBe('COMPLETED');
    expect(item?.data?.M?.by?.S).toBe('B');
  });

  it('fences a store made on a client that has already sent the same commands (its stack is cached)', async () => {
    // Prepare: the client has claimed, completed and released records of another store's table
    await lateAttemptAfterTakeover('fence-warm');

    // Act: a new store, on a new table, on the same client
    const { completion, item } = await lateAttemptAfterTakeover('fence-cached');

    // Assess
    expect(completion).toMatchObject({ name: 'IdempotencyClaimLostError' });
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

  it("marks whether a completed record's outcome went out, and leaves other records alone", async () => {
    // Prepare
    const { store, tableName, read } = await freshStore();
    const marks = createPublishedOutcomes(dynalite.clients.dynamodb, tableName, 'email-job');
    const job = { idempotencyKey: 'fence-4' };
    await store.saveInProgress(job, 60_000);
    await store.saveSuccess(job, { action: 'delivered' });
    const claimed = { idempotencyKey: 'fence-5' };
    await store.saveInProgress(claimed, 60_000);

    const owed = { idempotencyKey: 'fence-6' };
    await store.saveInProgress(owed, 60_000);
    await store.saveSuccess(owed, { action: 'delivered' });

    // Act
    await marks.mark('fence-4', true);
    await marks.mark('fence-4', true);
    await marks.mark('fence-6', false);
    await marks.mark('fence-5', true);
    await marks.mark('never-claimed', true);

    // Assess: both marks, the second for the reader of `unpublished` alone
    expect((await read('fence-4'))?.data?.M).toMatchObject({
      action: { S: 'delivered' },
      published: { BOOL: true },
      unpublished: { BOOL: false },
    });
    expect((await read('fence-6'))?.data?.M).toMatchObject({ published: { BOOL: false }, unpublished: { BOOL: true } });
    expect((await read('fence-5'))?.status?.S).toBe('INPROGRESS');
    expect((await read('fence-5'))?.data).toBeUndefined();
    expect(await read('never-claimed')).toBeUndefined();
  });
});
