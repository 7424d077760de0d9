import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { createSnsEventPublisher } from '#aws/event-publisher.js';
import { createSuppressionStore } from '#aws/suppression-store.js';
import { EmailAddressSchema } from '#core/email-job.js';
import { isTenantName } from '#core/tenant.js';
import { maskAddress, removeSuppression, type SuppressionRecord, type SuppressionTarget } from '#core/suppression.js';
import { nothingListeningFor, toUsageLine } from './cli.js';
import type { StateTarget } from './target.js';

export const SUPPRESSION_USAGE = `Usage: npm run suppression -- <command> [--json] [--outputs cdk-outputs.json]
  list [--limit N]                      live entries of every scope, most recently seen first
  check ADDRESS [--tenant T]            whether ADDRESS is suppressed (for tenant T's mail), and why
  add ADDRESS --reason REASON [--tenant T] [--detail TEXT] [--permanent | --expires-at ISO-8601]
                                        hard-bounce, complaint, unsubscribe and manual are permanent; others expire;
                                        --tenant stops only T's mail (never for hard-bounce: a dead address is global)
  remove ADDRESS|HASH [--tenant T]      takes the entry (T's own with --tenant) off the list (logged and published)
Targets the local twin (npm start) unless given --outputs (the JSON of cdk deploy --outputs-file).
--json prints machine-readable output; -h, --help this text. Exit status: 0 done, 1 failed, 2 bad arguments.`;

/** A wrong command line: printed with the usage, exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type CommandIo = {
  out: (line: string) => void;
  err: (line: string) => void;
  resolve: (args: { outputs?: string }) => StateTarget;
};

const HASH = /^[0-9a-f]{24}$/i;

const toTarget = (value: string): SuppressionTarget => {
  if (HASH.test(value)) return { addressHash: value };
  if (!EmailAddressSchema.safeParse(value).success)
    throw new UsageError(
      `ADDRESS must be an email address or a 24-character address hash, got "${maskAddress(value)}"`,
    );
  return { address: value };
};

const describe = (r: SuppressionRecord) =>
  [
    `${r.maskedAddress} (${r.addressHash})`,
    `  reason   ${r.reason}${r.status ? ` ${r.status}` : ''}${r.detail ? `: ${r.detail}` : ''}`,
    `  source   ${r.source}${r.verified !== undefined ? ` (verified: ${String(r.verified)})` : ''}`,
    `  seen     ${r.count}× from ${r.firstSeen} to ${r.lastSeen}`,
    `  expires  ${r.expiresAt ? new Date(r.expiresAt * 1000).toISOString() : 'never'}   scope ${r.scope}`,
  ].join('\n');

/**
 * Runs one `npm run suppression` command; resolves with the exit status. Errors are one line, never a stack trace.
 */
export async function runSuppressionCommand(argv: string[], io: CommandIo): Promise<number> {
  const readArguments = () =>
    parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        reason: { type: 'string' },
        detail: { type: 'string' },
        permanent: { type: 'boolean' },
        'expires-at': { type: 'string' },
        limit: { type: 'string' },
        tenant: { type: 'string' },
        json: { type: 'boolean', default: false },
        outputs: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  let parsed: ReturnType<typeof readArguments>;
  try {
    parsed = readArguments();
  } catch (error) {
    io.err(`${toUsageLine(error as Error)}\n\n${SUPPRESSION_USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, argument, ...extra] = positionals;
  if (values.help || command === undefined) {
    (values.help ? io.out : io.err)(SUPPRESSION_USAGE);
    return values.help ? 0 : 2;
  }
  const print = (json: unknown, text: string) => io.out(values.json ? JSON.stringify(json, null, 2) : text);
  try {
    if (extra.length > 0) throw new UsageError(`unexpected arguments after ${command}: ${extra.length}`);
    if (command !== 'list' && argument === undefined) {
      if (['check', 'add', 'remove'].includes(command)) throw new UsageError(`${command} needs an ADDRESS`);
    }
    const { tenant } = values;
    if (tenant !== undefined && !isTenantName(tenant))
      throw new UsageError(`--tenant must be a tenant name (1–32 of a-z 0-9 and inner hyphens), got "${tenant}"`);
    if (tenant !== undefined && command === 'list')
      throw new UsageError('list shows every scope; --tenant is for check, add, remove');
    const run = async (): Promise<number> => {
      switch (command) {
        case 'list': {
          const limit = values.limit === undefined ? 1000 : Number(values.limit);
          if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive whole number');
          const records = await store().list({ limit });
          print(records, records.length === 0 ? 'the suppression list is empty' : records.map(describe).join('\n'));
          return 0;
        }
        case 'check': {
          const target = toTarget(argument as string);
          if (!('address' in target)) throw new UsageError('check needs an address, not a hash');
          const record = await store().check(target.address, undefined, tenant);
          print(
            { suppressed: record !== undefined, entry: record },
            record ? `suppressed: ${describe(record)}` : `${maskAddress(target.address)} is not suppressed`,
          );
          return 0;
        }
        case 'add': {
          const target = toTarget(argument as string);
          if (!('address' in target)) throw new UsageError('add needs an address, not a hash');
          if (!values.reason)
            throw new UsageError('add needs --reason (hard-bounce, complaint, manual, or your own word)');
          if (values.permanent && values['expires-at'])
            throw new UsageError('--permanent and --expires-at exclude each other');
          const expiresAt = values['expires-at'];
          if (expiresAt !== undefined && !(Date.parse(expiresAt) > Date.now()))
            throw new UsageError('--expires-at must be an ISO 8601 time in the future');
          const { created, record } = await store().suppress({
            address: target.address,
            reason: values.reason,
            source: `operator:${operator()}`,
            detail: values.detail,
            // An explicit expiry makes even a permanent reason expire.
            permanent: values.permanent ?? (expiresAt ? false : undefined),
            expiresAt: expiresAt ? new Date(expiresAt).toISOString() : undefined,
            tenant,
          });
          print(
            { created, entry: record },
            `${created ? 'suppressed' : 'already suppressed; entry refreshed'}: ${describe(record)}`,
          );
          return 0;
        }
        case 'remove': {
          const removed = await removeSuppression(
            { store: store(), publish: (event) => events().publish(event), log: logToStderr },
            { ...toTarget(argument as string), tenant },
            `operator:${operator()}`,
          );
          print({ removed }, `removed: ${describe(removed)}`);
          return 0;
        }
        default:
          throw new UsageError(`unknown command "${command}" (list, check, add, remove)`);
      }
    };
    let resolved: StateTarget | undefined;
    const target = () => (resolved ??= io.resolve({ outputs: values.outputs }));
    const store = () =>
      createSuppressionStore(target().clients.documents, target().suppressionTable, {
        ttlDays: target().suppressionTtlDays,
      });
    const events = () => createSnsEventPublisher(target().clients.sns, target().eventsTopicArn);
    const logToStderr = (message: string, facts: Record<string, unknown>) =>
      io.err(JSON.stringify({ level: 'INFO', message, timestamp: new Date().toISOString(), ...facts }));
    return await run();
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`${error.message}\n\n${SUPPRESSION_USAGE}`);
      return 2;
    }
    io.err(nothingListeningFor(error) ?? `suppression ${command} failed: ${oneLine(error)}`);
    return 1;
  }
}

const operator = () => {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
};

const oneLine = (error: unknown) => {
  const e = error as { name?: string; message?: string };
  return (e.message || e.name || String(error)).split('\n')[0];
};
