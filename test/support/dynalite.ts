import { afterAll, beforeAll } from 'vitest';
import { createAwsClients, type AwsClients } from '#aws/clients.js';
import { LOCAL_CREDENTIALS, startDynalite, type Emulator } from '#local/emulators.js';
import { createTable } from '#local/resources.js';

/**
 * A DynamoDB emulator for the test file that calls this, started before its first test (with `tables`, each a name,
 * its partition key and an optional TTL attribute) and stopped after its last; `clients` reach it.
 */
export function useDynalite(tables: Array<[name: string, partitionKey: string, ttlAttribute?: string]> = []) {
  let dynamo: Emulator | undefined;
  let clients: AwsClients | undefined;
  beforeAll(async () => {
    dynamo = await startDynalite();
    clients = createAwsClients({
      region: 'eu-west-1',
      credentials: LOCAL_CREDENTIALS,
      endpoints: { dynamodb: dynamo.endpoint },
    });
    for (const [name, key, ttl] of tables) await createTable(clients, name, key, ttl);
  });
  afterAll(async () => {
    await dynamo?.stop();
  });
  return {
    get clients(): AwsClients {
      if (!clients) throw new Error('dynalite starts in beforeAll; use it inside a test or hook');
      return clients;
    },
  };
}
