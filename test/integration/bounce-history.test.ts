import { GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { createBounceHistoryStore } from '#aws/bounce-history-store.js';
import { TableKeys } from '#aws/table-keys.js';
import { hashAddress } from '#core/message-id.js';
import { useDynalite } from '../support/dynalite.js';

const TABLE = 'mailbox-state';
const dynalite = useDynalite([[TABLE, TableKeys.mailboxState.partitionKey, TableKeys.mailboxState.ttlAttribute]]);

describe('the days an address failed, in the poller state table', () => {
  it('adds a day once however often it is recorded, drops the days before the window, and stores no address', async () => {
    // Prepare
    const history = createBounceHistoryStore(dynalite.clients.documents, TABLE);
    const record = (day: string, since: string) =>
      history.recordDay('Someone@Example.net', 'host-unknown', day, { since, expiresAt: 2_000_000_000 });

    // Act
    await record('2030-03-01', '2030-02-16');
    await record('2030-03-01', '2030-02-16');
    await record('2030-03-04', '2030-02-19');
    const late = await record('2030-03-20', '2030-03-07');
    const again = await record('2030-03-21', '2030-03-04');

    // Assess: the first day fell out of the window on the 20th and is gone from the item; kinds are apart.
    expect(late).toEqual(['2030-03-20']);
    expect(again.sort()).toEqual(['2030-03-20', '2030-03-21']);
    const soft = await history.recordDay('someone@example.net', 'soft', '2030-03-21', {
      since: '2030-03-08',
      expiresAt: 2_000_000_000,
    });
    expect(soft).toEqual(['2030-03-21']);
    const { Item } = await dynalite.clients.documents.send(
      new GetCommand({
        TableName: TABLE,
        Key: { [TableKeys.mailboxState.partitionKey]: `bounces#host-unknown#${hashAddress('someone@example.net')}` },
      }),
    );
    expect([...(Item?.days as Set<string>)].sort()).toEqual(['2030-03-20', '2030-03-21']);
    expect(Item?.[TableKeys.mailboxState.ttlAttribute]).toBe(2_000_000_000);
    const { Items } = await dynalite.clients.documents.send(new ScanCommand({ TableName: TABLE }));
    expect(JSON.stringify(Items).toLowerCase()).not.toContain('someone@example.net');
  });
});
