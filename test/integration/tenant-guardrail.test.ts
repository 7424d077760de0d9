import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSnsEventPublisher } from '#aws/event-publisher.js';
import { createMailboxStateStore } from '#aws/mailbox-state-store.js';
import { createRawMessageStore } from '#aws/raw-message-store.js';
import { createReputationStore } from '#aws/reputation-store.js';
import type { EmailJob } from '#core/email-job.js';
import { toReportKeyring } from '#core/message-id.js';
import { DEFAULT_REPUTATION_POLICY, type ReputationStore } from '#core/reputation.js';
import { createPollMailboxHandler } from '#handlers/poll-mailbox-handler.js';
import { buildReportReputation } from '#handlers/report-reputation.js';
import { buildDsn } from '#local/dsn.js';
import { createLambdaContext } from '#local/lambda-context.js';
import { captureOutput } from '../support/captured-output.js';
import { startAwsEmulators, startDispatchHarness } from '../support/dispatch-harness.js';
import type { AwsEmulators, DispatchHarness } from '../support/dispatch-harness.js';
import { emailJobFactory } from '../support/factories.js';
import { createReportMailbox, credentialsOf, pollerConfigFor, startImapPeer } from '../support/poller-harness.js';
import type { ImapPeer } from '../support/poller-harness.js';

const BOUNCE_DOMAIN = 'bounces.example.com';
const KEYS = toReportKeyring({ current: 'k1', k1: 'guardrail-report-key-of-this-deployment' }, 'k1');
/** The guardrail's limits with a volume floor a test can reach: 10 recipients in the window. */
const POLICY = { ...DEFAULT_REPUTATION_POLICY, minRecipients: 10 };
/** Each tenant's producer signs with its own access key, which the emulator reports as the message's SenderId. */
const TENANTS = ['shop', 'billing', 'alpha', 'beta', 'gamma', 'delta', 'replay'];
const TENANT_SENDERS = Object.fromEntries(TENANTS.map((tenant) => [`producer-${tenant}`, tenant]));

let aws: AwsEmulators;
let imap: ImapPeer;
let dispatcher: DispatchHarness;
let standingReads: string[] = [];
let counterWrites: string[] = [];

beforeAll(async () => {
  [aws, imap] = await Promise.all([startAwsEmulators(), startImapPeer()]);
  dispatcher = await startDispatchHarness(aws, {
    env: {
      REPORT_KEYS_SECRET_ID: 'local',
      BOUNCE_DOMAIN,
      RETRY_BASE_SECONDS: '1',
      RETRY_MAX_DELAY_SECONDS: '1',
      REPUTATION_MIN_RECIPIENTS: String(POLICY.minRecipients),
      TENANT_PAUSE_CACHE_MS: '1000',
      // Held jobs are looked at again every second; a job handed back twice without a send would be given up.
      TENANT_PAUSE_RECHECK_SECONDS: '1',
      MAX_RECEIVE_COUNT: '2',
      TENANT_SENDERS: JSON.stringify(TENANT_SENDERS),
      SYSTEM_SENDERS: 'local',
    },
    environment: { reportKeys: { get: async () => KEYS } },
    adjust: (deps) => {
      const reputation = deps.reputation;
      if (!reputation) throw new Error('the harness should configure the guardrail (TENANT_STATE_TABLE)');
      const store: ReputationStore = {
        ...reputation.store,
        standing: (tenant) => {
          standingReads.push(tenant);
          return reputation.store.standing(tenant);
        },
        add: (tenant, bucket, counts) => {
          counterWrites.push(tenant);
          return reputation.store.add(tenant, bucket, counts);
        },
      };
      deps.reputation = { ...reputation, store };
    },
  });
});
afterAll(async () => {
  await dispatcher?.stop();
  await imap?.stop();
  await aws?.stop();
});

/** Puts jobs on the jobs queue as a tenant's producer does: signed as its sender, the tenant attribute and group. */
const enqueue = async (tenant: string, jobs: EmailJob[]) => {
  const sqs = new SQSClient({
    region: 'eu-west-1',
    endpoint: aws.fauxqs.endpoint,
    credentials: { accessKeyId: `producer-${tenant}`, secretAccessKey: 'x' },
  });
  const attributes = { tenant: { DataType: 'String', StringValue: tenant } };
  for (let i = 0; i < jobs.length; i += 10) {
    const entries = jobs.slice(i, i + 10).map((job, n) => ({
      Id: String(n),
      MessageBody: JSON.stringify(job),
      MessageGroupId: tenant,
      MessageAttributes: attributes,
    }));
    await sqs.send(new SendMessageBatchCommand({ QueueUrl: dispatcher.resources.jobsQueueUrl, Entries: entries }));
  }
  sqs.destroy();
};
const jobsFor = (tenant: string, count: number, label: string) =>
  Array.from({ length: count }, (_, i) => emailJobFactory({ to: [`${tenant}-${label}-${i}@customer.example`] }));
const receivedBy = (prefix: string) => dispatcher.sink.received.filter((m) => m.to.some((t) => t.startsWith(prefix)));
const headersOf = (raw: Buffer) => raw.toString('utf8').split(/\r?\n\r?\n/)[0] ?? '';
const store = () => createReputationStore(aws.clients.documents, dispatcher.resources.tenantStateTable, POLICY);

/** The IMAP poller's handler on a fresh mailbox holding `messages`, wired as in production, run once. */
const pollReports = async (messages: string[]) => {
  const { mailbox, number, sync, suppressions } = await createReportMailbox(aws, imap, dispatcher, messages, {
    keys: async () => KEYS,
    bounceDomain: BOUNCE_DOMAIN,
  });
  const logger = new Logger({ serviceName: 'email-dispatch' });
  const metrics = new Metrics({ namespace: 'EmailDispatch', serviceName: 'email-dispatch', logger });
  const output = captureOutput(logger, metrics);
  const reputation = { table: dispatcher.resources.tenantStateTable, policy: POLICY };
  const handler = createPollMailboxHandler({
    config: pollerConfigFor(imap, sync.resources, mailbox, `reports-${number}`),
    logger,
    metrics,
    state: createMailboxStateStore(aws.clients.documents, sync.resources.mailboxStateTable),
    events: createSnsEventPublisher(aws.clients.sns, dispatcher.resources.eventsTopicArn),
    suppress: (entry) => suppressions.suppress(entry),
    verifyReport: sync.deps.verifyReport,
    storeRaw: createRawMessageStore(aws.clients.s3, sync.resources.bucket),
    reputation: buildReportReputation(reputation, aws.clients.documents),
    credentialsFor: () => credentialsOf(),
    tls: { ca: imap.cert.cert },
  });
  await handler({}, createLambdaContext('poll-mailbox', 30_000));
  return output;
};

/** Delivers until `done` holds or the bound is reached (held jobs come back after their 1 s recheck). */
const deliverUntil = async (done: () => boolean, polls = 40) => {
  for (let i = 0; i < polls && !done(); i += 1) {
    const { received } = await dispatcher.deliver();
    if (received === 0) await new Promise((resolve) => setTimeout(resolve, 250));
  }
};

describe('the per-tenant reputation guardrail', () => {
  it('pauses a tenant whose mail bounces over the limit while another tenant keeps sending, and resume sends the held jobs', async () => {
    // Prepare: both tenants send ten mails; three of shop's recipients do not exist.
    await enqueue('shop', jobsFor('shop', 10, 'first'));
    await enqueue('billing', jobsFor('billing', 10, 'first'));
    await dispatcher.deliverAll();
    expect(receivedBy('shop-first')).toHaveLength(10);
    const dsns = receivedBy('shop-first')
      .slice(0, 3)
      .map((m) =>
        buildDsn({
          reportingMta: 'mx.customer.example',
          to: 'noreply@example.com',
          recipient: m.to[0] as string,
          status: '5.1.1',
          diagnostic: '550 5.1.1 User unknown',
          originalHeaders: headersOf(m.raw),
        }),
      );
    await dispatcher.events();

    // Act: the poller reads the bounces; then both tenants send again.
    const poller = await pollReports(dsns);
    // A pause reaches every dispatcher instance within the standing's cache time (1 s here).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await enqueue('shop', jobsFor('shop', 3, 'held'));
    await enqueue('billing', jobsFor('billing', 3, 'later'));
    await dispatcher.deliverAll();

    // Assess: shop alone is paused, with its rates; billing's mail went out, shop's waits on the queue.
    const standing = await store().standing('shop');
    expect(standing.paused).toMatchObject({
      tenant: 'shop',
      reason: 'bounce-rate',
      pausedBy: 'guardrail',
      bounceRate: 0.3,
      counts: { sent: 10, bounces: 3, complaints: 0 },
    });
    expect((await store().standing('billing')).paused).toBeUndefined();
    expect(poller.metric('TenantsPaused')).toBe(1);
    const events = await dispatcher.events();
    expect(events.filter((e) => e.type === 'tenant.paused')).toEqual([
      expect.objectContaining({ tenant: 'shop', reason: 'bounce-rate', bounceRate: 0.3 }),
    ]);
    expect(receivedBy('billing-later')).toHaveLength(3);
    expect(receivedBy('shop-held')).toHaveLength(0);
    expect(await dispatcher.queueDepth({ delayed: true })).toBe(3);
    expect(dispatcher.output.metric('TenantJobsHeld')).toBeGreaterThanOrEqual(3);

    // Act: the pause lasts through several rechecks, more than the receives a job may spend.
    await deliverUntil(() => (dispatcher.output.metric('TenantJobsHeld') ?? 0) >= 12);

    // Assess: each recheck held the jobs again as new messages: none given up, none sent, all still waiting.
    expect(dispatcher.output.metric('TenantJobsHeld')).toBeGreaterThanOrEqual(12);
    expect(await dispatcher.deadLetters()).toEqual([]);
    expect(receivedBy('shop-held')).toHaveLength(0);
    expect(await dispatcher.queueDepth({ delayed: true })).toBe(3);

    // Act: an operator resumes shop; the held jobs go out at their next recheck.
    const lifted = await store().resume('shop', 'operator:test', new Date().toISOString());
    await deliverUntil(() => receivedBy('shop-held').length >= 3);

    // Assess: each held job sent once; nothing dead-lettered.
    expect(lifted?.reason).toBe('bounce-rate');
    // What the resume's bucket held is kept with it: only what it gains later counts again.
    expect((await store().standing('shop')).resumedBaseline).toMatchObject({ bounces: 3 });
    expect(receivedBy('shop-held')).toHaveLength(3);
    expect(new Set(receivedBy('shop-held').map((m) => m.to[0])).size).toBe(3);
    expect(await dispatcher.deadLetters()).toEqual([]);
    expect(await dispatcher.queueDepth({ delayed: true })).toBe(0);
  });

  it('counts a report replayed by a recipient once, however often and in whichever runs it arrives', async () => {
    // Prepare: replay sent one mail now and 99 others earlier in this hour; its recipient keeps a copy of the bounce.
    await enqueue('replay', jobsFor('replay', 1, 'once'));
    await dispatcher.deliverAll();
    const [sent] = receivedBy('replay-once');
    const now = Date.now();
    const bucket = Math.floor(now / (POLICY.bucketSeconds * 1000)) * POLICY.bucketSeconds * 1000;
    await store().add('replay', bucket, { sent: 99 });
    const copy = () =>
      buildDsn({
        reportingMta: 'mx.customer.example',
        to: 'noreply@example.com',
        recipient: sent?.to[0] as string,
        status: '5.1.1',
        diagnostic: '550 5.1.1 User unknown',
        originalHeaders: headersOf(sent?.raw ?? Buffer.alloc(0)),
      });

    // Act: the same report, mailed back three times in one run and twice in another (each with its own Message-ID).
    await pollReports([copy(), copy(), copy()]);
    await pollReports([copy(), copy()]);

    // Assess: one bounce in 100 recipients (1 %), under the 4 % limit; five would have paused the tenant.
    const { buckets, standing } = await store().read('replay', [bucket]);
    expect(buckets.get(bucket)).toEqual({ sent: 100, bounces: 1, complaints: 0 });
    expect(standing.paused).toBeUndefined();
  });

  it("reads each tenant's standing once for a batch, however many of its jobs the batch holds", async () => {
    // Prepare: a batch of ten, five jobs each of two tenants, after the standings' cache time.
    await enqueue('alpha', jobsFor('alpha', 5, 'batch'));
    await enqueue('beta', jobsFor('beta', 5, 'batch'));
    await new Promise((resolve) => setTimeout(resolve, 1100));
    standingReads = [];

    // Act
    const result = await dispatcher.deliver(10);

    // Assess
    expect(result).toMatchObject({ received: 10, succeeded: 10 });
    expect(standingReads.sort()).toEqual(['alpha', 'beta']);
  });

  it('counts the recipients a batch sent with one write per tenant, not one per message', async () => {
    // Prepare
    const before = await store().read('gamma', []);
    await enqueue('gamma', jobsFor('gamma', 7, 'count'));
    await enqueue('delta', jobsFor('delta', 3, 'count'));
    counterWrites = [];

    // Act
    await dispatcher.deliver(10);
    const now = Date.now();
    const bucket = Math.floor(now / (POLICY.bucketSeconds * 1000)) * POLICY.bucketSeconds * 1000;
    const after = await store().read('gamma', [bucket]);

    // Assess
    expect(before.standing).toEqual({});
    expect(after.buckets.get(bucket)).toEqual({ sent: 7, bounces: 0, complaints: 0 });
    expect(counterWrites.sort()).toEqual(['delta', 'gamma']);
  });
});
