import { ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAwsClients } from '#aws/clients.js';
import { LOCAL_CREDENTIALS, startDynalite, type Emulator } from '#local/emulators.js';
import { createTable } from '#local/resources.js';

describe('the AWS clients of a container', () => {
  let dynamo: Emulator;
  const connections: string[] = [];
  beforeAll(async () => {
    dynamo = await startDynalite();
    dynamo.server?.on('connection', (socket) => connections.push(`${socket.remotePort}`));
  });
  afterAll(async () => {
    await dynamo?.stop();
  });

  it('reach DynamoDB over one pool of sockets, the document client too', async () => {
    // Prepare
    const clients = createAwsClients({
      region: 'eu-west-1',
      credentials: LOCAL_CREDENTIALS,
      endpoints: { dynamodb: dynamo.endpoint },
    });
    await createTable(clients, 'pool-check', 'pk');
    const opened = connections.length;

    // Act: one call after the other, each client in turn
    await clients.dynamodb.send(new ListTablesCommand({}));
    const item = await clients.documents.send(new GetCommand({ TableName: 'pool-check', Key: { pk: 'absent' } }));
    await clients.dynamodb.send(new ListTablesCommand({}));

    // Assess: the calls reused the socket the table's creation opened, the document client's call too
    expect(item.Item).toBeUndefined();
    expect(opened).toBe(1);
    expect(connections).toHaveLength(opened);
    clients.destroy();
  });
});
