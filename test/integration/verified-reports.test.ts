import { SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { createSnsEventPublisher } from '#aws/event-publisher.js';
import { createRawMessageStore } from '#aws/raw-message-store.js';
import { createSuppressionStore } from '#aws/suppression-store.js';
import type { DispatchEvent } from '#core/events.js';
import { toReportKeyring, type ReportKeyring } from '#core/message-id.js';
import { syncMailbox, type SyncDeps } from '#core/mailbox/sync-mailbox.js';
import { createPollMailboxHandler } from '#handlers/poll-mailbox-handler.js';
import { openImapSession } from '#imap/imap-session.js';
import { buildDsn } from '#local/dsn.js';
import { createLambdaContext } from '#local/lambda-context.js';
import { createEmailProducer } from '#producer/email-producer.js';
import { captureOutput } from '../support/captured-output.js';
import { startAwsEmulators, startDispatchHarness } from '../support/dispatch-harness.js';
import type { AwsEmulators, DispatchHarness } from '../support/dispatch-harness.js';
import { emailJobFactory } from '../support/factories.js';
import { bounceMessage, complaintMessage } from '../support/mail-samples.js';
import { createSyncDeps, credentialsOf, pollerConfigFor, startImapPeer } from '../support/poller-harness.js';
import type { ImapPeer } from '../support/poller-harness.js';

const BOUNCE_DOMAIN = 'bounces.example.com';
const FIRST = 'first-report-key-of-this-deployment-0001';
const SECOND = 'second-report-key-of-this-deployment-02';
const K1 = toReportKeyring({ current: 'k1', k1: FIRST }, 'k1');
const ROTATED = toReportKeyring({ current: 'k2', k1: FIRST, k2: SECOND }, 'k1+k2');
const RETIRED = toReportKeyring({ current: 'k2', k2: SECOND }, 'k2');

let aws: AwsEmulators;
let imap: ImapPeer;
let dispatcher: DispatchHarness;
// The deployment's report keys as Secrets Manager would hold them at the moment; tests rotate them.
let keys: ReportKeyring = K1;
let mailboxCounter = 0;

beforeAll(async () => {
  [aws, imap] = await Promise.all([startAwsEmulators(), startImapPeer()]);
  dispatcher = await startDispatchHarness(aws, {
    env: { REPORT_KEYS_SECRET_ID: 'local', BOUNCE_DOMAIN },
    environment: { reportKeys: { get: async () => keys } },
  });
});
afterAll(async () => {
  await dispatcher?.stop();
  await imap?.stop();
  await aws?.stop();
});

const newMailbox = async () => {
  mailboxCounter += 1;
  const name = `Reports${mailboxCounter}`;
  await imap.createMailbox(name);
  return name;
};

/** Sends a job through the real dispatch handler to the SMTP sink; returns what the sink received. */
const send = async (to: string[]) => {
  const job = emailJobFactory({ to });
  await dispatcher.enqueue(job);
  await dispatcher.deliverAll();
  const received = dispatcher.sink.received.find((m) => m.to.join(',') === to.join(',') && !sent.has(m.queueId));
  if (!received) throw new Error('the job did not reach the sink');
  sent.add(received.queueId);
  const headers = received.raw.toString('utf8').split(/\r?\n\r?\n/)[0] ?? '';
  const messageId = /^Message-ID:\s*(<[^>]+>)/im.exec(headers)?.[1] ?? '';
  return { job, headers, messageId, envelopeFrom: received.from };
};
const sent = new Set<string>();

/** The poller on a fresh mailbox, verifying against the dispatcher's table and writing its suppression list. */
const pollerFor = async (mailbox: string) => {
  const session = () => openImapSession(imap.settings(mailbox), credentialsOf());
  const idempotencyTable = dispatcher.resources.idempotencyTable;
  const verify = { keys: async () => keys, idempotencyTable, bounceDomain: BOUNCE_DOMAIN };
  const sync = await createSyncDeps(aws, session, verify);
  const suppressions = createSuppressionStore(aws.clients.documents, dispatcher.resources.suppressionTable);
  const deps: SyncDeps = { ...sync.deps, suppress: (entry) => suppressions.suppress(entry) };
  return { ...sync, deps, suppressions };
};
const run = (deps: SyncDeps, mailboxId: string) =>
  syncMailbox(deps, {
    mailboxId,
    runId: `run-${Math.random()}`,
    startFrom: 'beginning',
    stopAtMs: Date.now() + 30_000,
  });
const verifiedOf = (e: DispatchEvent) => (e as { verified?: boolean }).verified;
const verdicts = (published: DispatchEvent[]) => published.map((e) => ({ type: e.type, verified: verifiedOf(e) }));
/** The DSN a customer's MX sends when `recipient` does not exist, quoting the original's headers. */
const dsnFor = (recipient: string, originalHeaders: string) =>
  buildDsn({
    reportingMta: 'mx.customer.example',
    to: 'noreply@example.com',
    recipient,
    status: '5.1.1',
    diagnostic: '550 5.1.1 User unknown',
    originalHeaders,
  });

describe('bounces and complaints verified against what we sent', () => {
  it('signs every message: the Message-ID and the VERP envelope sender carry a token', async () => {
    const { messageId, envelopeFrom } = await send(['reader@customer.example']);

    expect(messageId).toMatch(/^<k1\.[a-z2-7]{26}\.[a-z2-7]{16}@example\.com>$/);
    expect(envelopeFrom).toBe(`bounces+${messageId.slice(1, messageId.indexOf('@'))}@${BOUNCE_DOMAIN}`);
  });

  it('verifies a genuine DSN for a job we sent and suppresses the recipient; the next job is rejected', async () => {
    // Prepare
    const { headers } = await send(['ceo@customer.example', 'cfo@customer.example']);
    const mailbox = await newMailbox();
    const { deps, published, suppressions } = await pollerFor(mailbox);
    await imap.append(mailbox, [dsnFor('ceo@customer.example', headers)]);

    // Act
    await run(deps, mailbox);
    const next = emailJobFactory({ to: ['ceo@customer.example'] });
    await dispatcher.enqueue(next);
    await dispatcher.deliverAll();

    // Assess
    expect(published).toHaveLength(1);
    const verification = { reason: 'verified', via: 'message-id' };
    expect(published[0]).toMatchObject({ type: 'bounce.detected', verified: true, verification });
    const suppressed = await suppressions.findSuppressed(['ceo@customer.example', 'cfo@customer.example']);
    expect(suppressed).toEqual(new Set(['ceo@customer.example']));
    const events = await dispatcher.events();
    const outcome = events.find((e) => e.idempotencyKey === next.idempotencyKey);
    expect(outcome).toMatchObject({ type: 'email.rejected', reason: 'all-recipients-suppressed' });
  });

  it('verifies a bounce for a recipient the relay refused for now (its follow-up carries the same token)', async () => {
    // Prepare: the relay greylists one of the two recipients; the other gets the message now.
    const greylist = { code: 450, message: '4.2.0 Greylisted' };
    dispatcher.sink.addRule({ stage: 'rcpt', address: 'later@customer.example', reply: greylist, times: 1 });
    await dispatcher.enqueue(emailJobFactory({ to: ['now@customer.example', 'later@customer.example'] }));
    await dispatcher.deliverAll();
    const received = dispatcher.sink.received.find((m) => m.to.join() === 'now@customer.example');
    const headers = received?.raw.toString('utf8').split(/\r?\n\r?\n/)[0] ?? '';
    const mailbox = await newMailbox();
    const { deps, published, suppressions } = await pollerFor(mailbox);
    await imap.append(mailbox, [dsnFor('later@customer.example', headers)]);

    // Act
    await run(deps, mailbox);

    // Assess
    expect(verdicts(published)).toEqual([{ type: 'bounce.detected', verified: true }]);
    const suppressed = await suppressions.findSuppressed(['now@customer.example', 'later@customer.example']);
    expect(suppressed).toEqual(new Set(['later@customer.example']));
  });

  it('verifies a bounce that quotes nothing through the VERP address it was delivered to', async () => {
    const { envelopeFrom } = await send(['gone@partner.example']);
    const mailbox = await newMailbox();
    const { deps, published, suppressions } = await pollerFor(mailbox);
    const headers = [`Delivered-To: ${envelopeFrom}`];
    const bounce = bounceMessage('gone@partner.example', { quoteOriginal: false, headers });
    await imap.append(mailbox, [bounce]);

    await run(deps, mailbox);

    expect(published[0]).toMatchObject({ type: 'bounce.detected', verified: true, verification: { via: 'envelope' } });
    expect(await suppressions.findSuppressed(['gone@partner.example'])).toEqual(new Set(['gone@partner.example']));
  });

  it('publishes forged DSNs and ARF reports with verified: false, counts them, and suppresses no one', async () => {
    // Prepare: a real message to someone else, whose Message-ID an outsider has seen.
    const { messageId: realMessageId } = await send(['insider@customer.example']);
    const madeUp = '<k1.abcdefghijklmnopqrstuvwxyz.abcdefghijklmnop@example.com>';
    const madeUpVerp = `bounces+${madeUp.slice(1, madeUp.indexOf('@'))}@${BOUNCE_DOMAIN}`;
    const victim = 'boss@customer.example';
    const forged = [
      bounceMessage(victim, { quoteOriginal: false }),
      bounceMessage(victim, { originalMessageId: madeUp }),
      bounceMessage(victim, { originalMessageId: realMessageId }),
      complaintMessage(victim, { quoteOriginal: false }),
      complaintMessage(victim, { originalMessageId: '<made-up@example.com>' }),
      complaintMessage(victim, { originalMessageId: realMessageId }),
      // Delivered to a VERP address whose token we never made.
      bounceMessage(victim, { quoteOriginal: false, headers: [`Delivered-To: ${madeUpVerp}`] }),
    ];
    const mailbox = await newMailbox();
    const { deps, resources, suppressions } = await pollerFor(mailbox);
    const config = pollerConfigFor(imap, resources, mailbox, 'forged');
    const logger = new Logger({ serviceName: 'email-dispatch' });
    const metrics = new Metrics({ namespace: 'EmailDispatch', serviceName: 'email-dispatch', logger });
    const output = captureOutput(logger, metrics);
    const published: DispatchEvent[] = [];
    const events = createSnsEventPublisher(aws.clients.sns, resources.eventsTopicArn);
    const handler = createPollMailboxHandler({
      config,
      logger,
      metrics,
      state: deps.state,
      events: { publish: async (e) => (published.push(e), events.publish(e)) },
      suppress: deps.suppress,
      verifyReport: deps.verifyReport,
      storeRaw: createRawMessageStore(aws.clients.s3, resources.bucket),
      credentialsFor: () => credentialsOf(),
      tls: { ca: imap.cert.cert },
    });
    await imap.append(mailbox, forged);

    // Act
    const summary = await handler({}, createLambdaContext('poll-mailbox', 30_000));

    // Assess
    expect(summary).toEqual({ forged: { status: 'synced', processed: forged.length } });
    expect(verdicts(published).sort((a, b) => a.type.localeCompare(b.type))).toEqual([
      ...Array(4).fill({ type: 'bounce.detected', verified: false }),
      ...Array(3).fill({ type: 'complaint.detected', verified: false }),
    ]);
    const reasons = published.map((e) => (e as unknown as { verification: { reason: string } }).verification.reason);
    const times = (n: number, reason: string) => Array<string>(n).fill(reason);
    const expected = [...times(2, 'forged-token'), ...times(3, 'no-token'), ...times(2, 'not-a-recipient')];
    expect(reasons.sort()).toEqual(expected);
    expect(await suppressions.findSuppressed([victim, 'insider@customer.example'])).toEqual(new Set());
    expect(output.metric('UnverifiedReports')).toBe(forged.length);
    expect(output.metric('AddressesSuppressed')).toBe(0);
    // The reports are logged (their diagnostics name the victim), with every address masked.
    const logs = output.lines.join('\n');
    expect(logs).toContain('<***@customer.example>: Recipient address rejected');
    expect(logs).not.toContain(victim);
  });

  it('still verifies a message signed with the old key after a rotation, while the old key is listed', async () => {
    // Prepare: one message signed before the rotation, one after.
    keys = K1;
    const before = await send(['early@customer.example']);
    keys = ROTATED;
    const after = await send(['late@customer.example']);
    const rotatedBox = await newMailbox();
    const rotated = await pollerFor(rotatedBox);
    const dsns = [dsnFor('early@customer.example', before.headers), dsnFor('late@customer.example', after.headers)];
    await imap.append(rotatedBox, dsns);

    // Act: with both keys listed, then with the old one retired.
    await run(rotated.deps, rotatedBox);
    keys = RETIRED;
    const retiredBox = await newMailbox();
    const retired = await pollerFor(retiredBox);
    await imap.append(retiredBox, [dsnFor('early@customer.example', before.headers)]);
    await run(retired.deps, retiredBox);
    keys = K1;

    // Assess
    expect(before.messageId.startsWith('<k1.')).toBe(true);
    expect(after.messageId.startsWith('<k2.')).toBe(true);
    expect(rotated.published.map((e) => (e as { verified?: boolean }).verified)).toEqual([true, true]);
    const both = ['early@customer.example', 'late@customer.example'];
    expect(await rotated.suppressions.findSuppressed(both)).toEqual(new Set(both));
    expect(retired.published[0]).toMatchObject({ verified: false, verification: { reason: 'forged-token' } });
  });
});

describe("one tenant's forged bounce against another tenant", () => {
  it("stops only the forging tenant's mail when a bounce by mail names an address it sent to", async () => {
    // Prepare: the shop mails a customer the crm also mails, reads the signed Message-ID from its own outcome event,
    // and mails the bounce mailbox a DSN quoting it, naming the customer as gone
    const tenants = await startDispatchHarness(aws, {
      env: {
        REPORT_KEYS_SECRET_ID: 'local',
        BOUNCE_DOMAIN,
        TENANT_SENDERS: JSON.stringify({ 'producer-shop': 'shop', 'producer-crm': 'crm' }),
        SYSTEM_SENDERS: 'local',
      },
      environment: { reportKeys: { get: async () => keys } },
    });
    try {
      const producerFor = (accessKeyId: string, tenant: string) =>
        createEmailProducer({
          sqs: new SQSClient({
            region: 'eu-west-1',
            endpoint: aws.fauxqs.endpoint,
            credentials: { accessKeyId, secretAccessKey: 'x' },
          }),
          queueUrl: tenants.resources.jobsQueueUrl,
          tenant,
        });
      const customer = 'loyal@customer.example';
      await producerFor('producer-shop', 'shop').sendEmail(emailJobFactory({ to: [customer] }));
      await tenants.deliverAll();
      const [delivered] = await tenants.events();
      expect(delivered).toMatchObject({ type: 'email.delivered', tenant: 'shop' });
      const mailbox = await newMailbox();
      const session = () => openImapSession(imap.settings(mailbox), credentialsOf());
      const verify = {
        keys: async () => keys,
        idempotencyTable: tenants.resources.idempotencyTable,
        bounceDomain: BOUNCE_DOMAIN,
      };
      const sync = await createSyncDeps(aws, session, verify);
      const suppressions = createSuppressionStore(aws.clients.documents, tenants.resources.suppressionTable);
      const deps: SyncDeps = { ...sync.deps, suppress: (entry) => suppressions.suppress(entry) };
      await imap.append(mailbox, [dsnFor(customer, `Message-ID: ${String(delivered?.messageId)}`)]);

      // Act
      await run(deps, mailbox);
      await producerFor('producer-crm', 'crm').sendEmail(emailJobFactory({ to: [customer] }));
      await producerFor('producer-shop', 'shop').sendEmail(emailJobFactory({ to: [customer] }));
      await tenants.deliverAll();

      // Assess: the report verified (the shop did send to the customer) and stops the shop's mail, not the crm's
      expect(sync.published[0]).toMatchObject({ type: 'bounce.detected', verified: true, tenant: 'shop' });
      expect(await suppressions.findSuppressed([customer], 'shop')).toEqual(new Set([customer]));
      expect(await suppressions.findSuppressed([customer], 'crm')).toEqual(new Set());
      const outcomes = await tenants.events();
      expect(outcomes.find((e) => e.tenant === 'crm')).toMatchObject({ type: 'email.delivered' });
      expect(outcomes.find((e) => e.tenant === 'shop')).toMatchObject({
        type: 'email.rejected',
        reason: 'all-recipients-suppressed',
      });
    } finally {
      await tenants.stop();
    }
  });
});
