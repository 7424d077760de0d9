import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSuppressionStore } from '#aws/suppression-store.js';
import { hashAddress } from '#core/message-id.js';
import { DEFAULT_SETTINGS } from '#infra/settings.js';
import { createLocalResources, type LocalResources } from '#local/resources.js';
import { runSuppressionCommand } from '#tools/suppression-commands.js';
import { resourceNames, startAwsEmulators, type AwsEmulators } from '../support/dispatch-harness.js';

let aws: AwsEmulators;
let resources: LocalResources;

beforeAll(async () => {
  aws = await startAwsEmulators();
  resources = await createLocalResources(aws.clients, DEFAULT_SETTINGS, resourceNames(`cli-${process.pid}`));
});
afterAll(async () => {
  await aws?.stop();
});

/**
 * Runs `npm run suppression -- …argv` in-process against the emulators, as a deployment whose suppressions for
 * non-permanent reasons last `ttlDays` (its SuppressionTtlDays output; none: the default); resolves with its status
 * and output.
 */
async function cliOf(ttlDays: number | undefined, ...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const status = await runSuppressionCommand(argv, {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    resolve: () => ({
      description: 'emulators',
      clients: aws.clients,
      suppressionTable: resources.suppressionTable,
      eventsTopicArn: resources.eventsTopicArn,
      suppressionTtlDays: ttlDays,
    }),
  });
  return {
    status,
    out: out.join('\n'),
    err: err.join('\n'),
    json: () => JSON.parse(out.join('\n')) as Record<string, unknown>,
  };
}

const cli = (...argv: string[]) => cliOf(undefined, ...argv);

async function publishedEvents() {
  const r = await aws.clients.sqsClient.send(
    new ReceiveMessageCommand({ QueueUrl: resources.eventsTapQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
  );
  if (r.Messages?.length)
    await aws.clients.sqsClient.send(
      new DeleteMessageBatchCommand({
        QueueUrl: resources.eventsTapQueueUrl,
        Entries: r.Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
      }),
    );
  return (r.Messages ?? []).map((m) => JSON.parse(m.Body ?? '{}') as Record<string, unknown>);
}

describe('npm run suppression', () => {
  it('adds an address, finds it with check and list, and a second add counts instead of duplicating', async () => {
    // Act
    const added = await cli(
      'add',
      'Carol@Customer.example',
      '--reason',
      'manual',
      '--detail',
      'asked to stop',
      '--json',
    );
    const again = await cli('add', 'carol@customer.example', '--reason', 'manual', '--json');
    const checked = await cli('check', 'carol@customer.example', '--json');
    const listed = await cli('list', '--json');
    const text = await cli('list');

    // Assess
    expect(added.status).toBe(0);
    expect(added.json()).toMatchObject({
      created: true,
      entry: { maskedAddress: 'c***@customer.example', reason: 'manual', permanent: true, count: 1, scope: 'global' },
    });
    expect(again.json()).toMatchObject({ created: false, entry: { count: 2 } });
    expect(checked.json()).toMatchObject({
      suppressed: true,
      entry: { addressHash: hashAddress('carol@customer.example'), count: 2 },
    });
    const entry = (listed.json() as unknown as Array<Record<string, unknown>>).find(
      (e) => e.addressHash === hashAddress('carol@customer.example'),
    );
    expect(entry).toMatchObject({
      source: expect.stringMatching(/^operator:/),
      firstSeen: expect.any(String),
      lastSeen: expect.any(String),
    });
    expect(entry?.expiresAt).toBeUndefined();
    expect(text.out).toContain('c***@customer.example');
    expect(text.out).not.toContain('carol@customer.example');
  });

  it('removes an entry by address, logs it masked, publishes suppression.removed', async () => {
    // Prepare
    await cli('add', 'dave@customer.example', '--reason', 'complaint');
    await publishedEvents();

    // Act
    const removed = await cli('remove', 'dave@customer.example');
    const checked = await cli('check', 'dave@customer.example', '--json');
    const suppressed = await createSuppressionStore(aws.clients.documents, resources.suppressionTable).findSuppressed([
      'dave@customer.example',
    ]);
    const events = await publishedEvents();

    // Assess
    expect(removed.status).toBe(0);
    expect(removed.err).toContain('"message":"suppression removed"');
    expect(removed.err).toContain('d***@customer.example');
    expect(removed.err).not.toContain('dave@customer.example');
    expect(checked.json()).toMatchObject({ suppressed: false });
    expect(suppressed.size).toBe(0);
    expect(events).toEqual([
      expect.objectContaining({
        type: 'suppression.removed',
        addressHash: hashAddress('dave@customer.example'),
        maskedAddress: 'd***@customer.example',
        reason: 'complaint',
        removedBy: expect.stringMatching(/^operator:/),
      }),
    ]);
  });

  it("keeps a tenant's complaints and unsubscribes to its own mail, and hard bounces global", async () => {
    // Prepare
    const store = createSuppressionStore(aws.clients.documents, resources.suppressionTable);
    const find = async (address: string, tenant: string) => [...(await store.findSuppressed([address], tenant))];

    // Act
    const added = await cli('add', 'gina@customer.example', '--reason', 'unsubscribe', '--tenant', 'shop', '--json');
    const bounced = await cli('add', 'hal@customer.example', '--reason', 'hard-bounce', '--tenant', 'shop', '--json');
    const forShop = await cli('check', 'gina@customer.example', '--tenant', 'shop', '--json');
    const forCrm = await cli('check', 'gina@customer.example', '--tenant', 'crm', '--json');

    // Assess
    expect(added.json()).toMatchObject({ created: true, entry: { scope: 'tenant:shop' } });
    expect(bounced.json()).toMatchObject({ entry: { scope: 'global' } });
    expect(forShop.json()).toMatchObject({ suppressed: true, entry: { scope: 'tenant:shop' } });
    expect(forCrm.json()).toMatchObject({ suppressed: false });
    expect(await find('gina@customer.example', 'shop')).toEqual(['gina@customer.example']);
    expect(await find('gina@customer.example', 'crm')).toEqual([]);
    expect(await find('hal@customer.example', 'crm')).toEqual(['hal@customer.example']);
    const listed = (await cli('list', '--json')).json() as unknown as Array<Record<string, unknown>>;
    expect(listed.find((r) => r.addressHash === hashAddress('gina@customer.example'))?.scope).toBe('tenant:shop');
    // The tenant's entry is removed by naming the tenant; the global list never held it.
    expect((await cli('remove', 'gina@customer.example')).status).toBe(1);
    expect((await cli('remove', 'gina@customer.example', '--tenant', 'shop')).status).toBe(0);
    expect(await find('gina@customer.example', 'shop')).toEqual([]);
    expect((await cli('add', 'x@customer.example', '--reason', 'manual', '--tenant', 'Shop')).status).toBe(2);
    await publishedEvents();
  });

  it("checks and removes the default tenant's complaint without --tenant, as a single-producer deployment always did", async () => {
    // Prepare: a verified complaint about a job of a deployment without tenants (its jobs are the default tenant's)
    const store = createSuppressionStore(aws.clients.documents, resources.suppressionTable);
    const address = 'irked@customer.example';
    await store.suppress({
      address,
      reason: 'complaint',
      source: 'arf:test',
      verified: 'message-id',
      tenant: 'default',
    });

    // Act
    const checked = await cli('check', address, '--json');
    const removed = await cli('remove', address);

    // Assess
    expect(checked.json()).toMatchObject({ suppressed: true, entry: { reason: 'complaint', scope: 'global' } });
    expect(removed.status).toBe(0);
    expect([...(await store.findSuppressed([address], 'default'))]).toEqual([]);
    await publishedEvents();
  });

  it('removes an entry by the hash a list shows', async () => {
    // Prepare
    await cli('add', 'erin@customer.example', '--reason', 'manual');

    // Act
    const removed = await cli('remove', hashAddress('erin@customer.example'), '--json');

    // Assess
    expect(removed.json()).toMatchObject({ removed: { maskedAddress: 'e***@customer.example' } });
    expect((await cli('check', 'erin@customer.example', '--json')).json()).toMatchObject({ suppressed: false });
  });

  it('lets a non-permanent entry expire: it suppresses until then, never after', async () => {
    // Prepare
    const expiresAt = new Date(Date.now() + 2000).toISOString();

    // Act
    const added = await cli(
      'add',
      'frank@customer.example',
      '--reason',
      'soft-bounce',
      '--expires-at',
      expiresAt,
      '--json',
    );
    const before = await createSuppressionStore(aws.clients.documents, resources.suppressionTable).findSuppressed([
      'frank@customer.example',
    ]);
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const after = await createSuppressionStore(aws.clients.documents, resources.suppressionTable).findSuppressed([
      'frank@customer.example',
    ]);
    const checked = await cli('check', 'frank@customer.example', '--json');
    const listed = await cli('list', '--json');

    // Assess
    expect(added.json()).toMatchObject({
      created: true,
      entry: { permanent: false, expiresAt: Math.floor(Date.parse(expiresAt) / 1000) },
    });
    expect(before).toEqual(new Set(['frank@customer.example']));
    expect(after.size).toBe(0);
    expect(checked.json()).toMatchObject({ suppressed: false });
    expect((listed.json() as unknown as Array<{ maskedAddress: string }>).map((e) => e.maskedAddress)).not.toContain(
      'f***@customer.example',
    );
  });

  it("gives non-permanent entries the store's TTL; a report after expiry starts afresh", async () => {
    // Prepare
    const store = createSuppressionStore(aws.clients.documents, resources.suppressionTable, { ttlDays: 7 });
    const t0 = new Date('2030-01-01T00:00:00Z');

    // Act
    const first = await store.suppress(
      { address: 'gina@customer.example', reason: 'mailbox-full', source: 'dsn:bounces/1', status: '4.2.2' },
      t0,
    );
    const later = new Date(t0.getTime() + 8 * 86_400_000);
    const expired = await store.check('gina@customer.example', later);
    const fresh = await store.suppress(
      { address: 'gina@customer.example', reason: 'mailbox-full', source: 'dsn:bounces/9' },
      later,
    );

    // Assess
    expect(first.record.expiresAt).toBe(t0.getTime() / 1000 + 7 * 86_400);
    expect(expired).toBeUndefined();
    expect(fresh).toMatchObject({
      created: true,
      record: { count: 1, firstSeen: later.toISOString(), source: 'dsn:bounces/9' },
    });
  });

  it("gives an operator's entry for a non-permanent reason the deployment's TTL", async () => {
    // Act
    const before = Date.now();
    const deployed = await cliOf(7, 'add', 'kim@customer.example', '--reason', 'mailbox-full', '--json');
    const byDefault = await cli('add', 'lou@customer.example', '--reason', 'mailbox-full', '--json');

    // Assess
    const expiry = (run: { json: () => Record<string, unknown> }) =>
      (run.json() as { entry: { expiresAt: number } }).entry.expiresAt;
    const inDays = (days: number) => Math.floor(before / 1000) + days * 86_400;
    expect(expiry(deployed)).toBeGreaterThanOrEqual(inDays(7));
    expect(expiry(deployed)).toBeLessThan(inDays(7) + 120);
    expect(expiry(byDefault)).toBeGreaterThanOrEqual(inDays(30));
    expect(expiry(byDefault)).toBeLessThan(inDays(30) + 120);
  });

  it('counts an address as newly suppressed once: repeats of a live entry do not feed the spike metric', async () => {
    // Prepare
    const created: string[] = [];
    const store = createSuppressionStore(aws.clients.documents, resources.suppressionTable, {
      onCreated: (r) => created.push(r.maskedAddress),
    });

    // Act
    await Promise.all([
      store.suppress({
        address: 'hank@customer.example',
        reason: 'hard-bounce',
        source: 'dsn:bounces/1',
        status: '5.1.1',
      }),
      store.suppress({
        address: 'hank@customer.example',
        reason: 'hard-bounce',
        source: 'dsn:bounces/2',
        status: '5.1.1',
      }),
    ]);
    await store.suppress({
      address: 'ivy@customer.example',
      reason: 'complaint',
      source: 'dsn:bounces/3',
      verified: 'message-id-token',
    });
    const hank = await store.check('hank@customer.example');

    // Assess
    expect(created.sort()).toEqual(['h***@customer.example', 'i***@customer.example']);
    expect(hank).toMatchObject({ count: 2, permanent: true });
  });

  it('reads and updates entries the store wrote before they had counts and expiry', async () => {
    // Prepare: an item as the earlier store wrote it
    const createdAt = '2025-06-01T00:00:00.000Z';
    await aws.clients.documents.send(
      new PutCommand({
        TableName: resources.suppressionTable,
        Item: {
          addressHash: hashAddress('jack@customer.example'),
          reason: 'hard-bounce',
          source: 'dsn:abc',
          createdAt,
        },
      }),
    );
    const store = createSuppressionStore(aws.clients.documents, resources.suppressionTable);

    // Act
    const before = await store.check('jack@customer.example');
    const updated = await store.suppress({
      address: 'jack@customer.example',
      reason: 'hard-bounce',
      source: 'dsn:def',
    });

    // Assess
    expect(before).toMatchObject({ permanent: true, count: 1, firstSeen: createdAt, maskedAddress: '***' });
    expect(updated).toMatchObject({ created: false, record: { count: 2, firstSeen: createdAt, source: 'dsn:def' } });
  });

  it('refuses bad input with one line naming the field, and no stack trace', async () => {
    // Act
    const noReason = await cli('add', 'x@customer.example');
    const badAddress = await cli('check', 'not-an-address');
    const unknown = await cli('forget', 'x@customer.example');
    const missing = await cli('remove', 'nobody@customer.example');
    const help = await cli('--help');
    const nothing = await cli();

    // Assess
    expect(noReason).toMatchObject({ status: 2, err: expect.stringMatching(/^add needs --reason/) });
    expect(badAddress).toMatchObject({ status: 2, err: expect.stringMatching(/^ADDRESS must be an email address/) });
    expect(unknown).toMatchObject({ status: 2, err: expect.stringMatching(/^unknown command "forget"/) });
    expect(help).toMatchObject({ status: 0, out: expect.stringContaining('npm run suppression -- <command>') });
    expect(nothing).toMatchObject({ status: 2, err: expect.stringContaining('list [--limit N]') });
    expect(missing.status).toBe(1);
    expect(missing.err).toBe('suppression remove failed: n***@customer.example is not on the suppression list');
  });

  it('says in one line that no twin is running, from the real command', () => {
    // Prepare
    const empty = mkdtempSync(join(tmpdir(), 'email-dispatch-no-twin-'));

    // Act
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'tools/suppression.ts', 'list'], {
      env: { ...process.env, TWIN_DIR: empty },
      encoding: 'utf8',
      timeout: 60_000,
    });
    rmSync(empty, { recursive: true, force: true });

    // Assess
    expect(run.status).toBe(1);
    expect(run.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^suppression list failed: no local twin found .*npm start/),
    ]);
  });
});
