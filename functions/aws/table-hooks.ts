import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';

type Args = { input: object };
type Result = { output: object };

/**
 * What a table's hook does with one command addressed to it: it may change the input, must call `next` once, and may
 * look at the result.
 */
export type TableHook = (commandName: string, args: Args, next: (args: Args) => Promise<Result>) => Promise<Result>;

const registries = new WeakMap<DynamoDBClient, Map<string, TableHook>>();

/**
 * The hooks of a DynamoDB client, by table name: one middleware per client hands each command to the hook of the table
 * it names, if any. Installed once, when a client is first asked (createAwsClients asks at creation), so the client's
 * stack never changes after its first request: clients that cache their resolved stack (`cacheMiddleware`) see every
 * hook registered later. A hook set again for a table replaces the one before.
 */
export function tableHooks(client: DynamoDBClient): Map<string, TableHook> {
  const known = registries.get(client);
  if (known) return known;
  const hooks = new Map<string, TableHook>();
  registries.set(client, hooks);
  client.middlewareStack.add(
    (next, context) => (args) => {
      const table = (args.input as { TableName?: unknown }).TableName;
      const hook = typeof table === 'string' ? hooks.get(table) : undefined;
      if (!hook) return next(args);
      return hook(context.commandName ?? '', args, next as (args: Args) => Promise<Result>) as ReturnType<typeof next>;
    },
    { step: 'initialize', name: 'tableHooks' },
  );
  return hooks;
}
