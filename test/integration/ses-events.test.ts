import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { createReputationStore } from '#aws/reputation-store.js';
import { createSuppressionStore } from '#aws/suppression-store.js';
import { bucketStartOf, DEFAULT_REPUTATION_POLICY } from '#core/reputation.js';
import { DEFAULT_TENANT, scopedJobKey } from '#core/tenant.js';
import { DispatchTags, toTagToken } from '#core/dispatch-job.js';
import type { DispatchEvent } from '#core/events.js';
import { toReportKeyring, toReportToken, type ReportKeyring } from '#core/message-id.js';
import type { SesEventRecord } from '#core/ses-events.js';
import { createSesEventsHandler } from '#handlers/ses-events-handler.js';
import { buildReportReputation } from '#handlers/report-reputation.js';
import type { ReputationConfig } from '#functions/config.js';
import { DEFAULT_SETTINGS } from '#infra/settings.js';
import { createLambdaContext } from '#local/lambda-context.js';
import { createLocalResources, LOCAL_NAMES } from '#local/resources.js';
import { toSesEventRecord, toSnsEvent, type SesSend } from '#local/ses-events.js';
import { captureOutput } from '../support/captured-output.js';
import { startAwsEmulators, type AwsEmulators } from '../support/dispatch-harness.js';

const ACCOUNT = '111122223333';
const TOPIC = `arn:aws:sns:eu-west-1:${ACCOUNT}:email-dispatch-ses-events`;
const OURS = toReportKeyring({ current: 'k1', k1: 'our-report-key-for-ses-events-0000001' }, 'ours');
const THEIRS = toReportKeyring({ current: 'k1', k1: 'another-deployments-report-key-000002' }, 'theirs');

let aws: AwsEmulators;
let counter = 0;
beforeAll(async () => {
  aws = await startAwsEmulators();
});
afterAll(async () => {
  await aws?.stop();
});

/**
 * The consumer on a suppression table of its own, with a publisher that records what it was given; with
 * `reputation`, the guardrail on a tenant table of its own.
 */
const consumer = async (reputation?: Pick<ReputationConfig, 'policy'>) => {
  counter += 1;
  const suffixed = Object.entries(LOCAL_NAMES).map(([k, v]) => [k, `${v}-ses-${process.pid}-${counter}`]);
  const names = Object.fromEntries(suffixed) as typeof LOCAL_NAMES;
  const resources = await createLocalResources(aws.clients, DEFAULT_SETTINGS, names, { tap: false });
  const suppressions = createSuppressionStore(aws.clients.documents, resources.suppressionTable);
  const logger = new Logger({ serviceName: 'email-dispatch' });
  const metrics = new Metrics({ namespace: 'EmailDispatch', serviceName: 'email-dispatch', logger });
  const output = captureOutput(logger, metrics);
  const published: DispatchEvent[] = [];
  const handler = createSesEventsHandler({
    logger,
    metrics,
    expected: { topicArn: TOPIC, accountId: ACCOUNT },
    reportKeys: async () => OURS,
    suppress: (entry) => suppressions.suppress(entry),
    events: { publish: async (event) => void published.push(event) },
    reputation: buildReportReputation(
      reputation && { ...reputation, table: resources.tenantStateTable },
      aws.clients.documents,
    ),
  });
  const deliver = (records: SesEventRecord[], topicArn = TOPIC) =>
    handler(toSnsEvent(topicArn, records), createLambdaContext('ses-events', 30_000));
  const tenants = createReputationStore(aws.clients.documents, resources.tenantStateTable, DEFAULT_REPUTATION_POLICY);
  return { handler, deliver, suppressions, published, output, tenants };
};

/** A send as SES saw it, tagged by the dispatcher of the deployment whose keys are `keys`. */
const sendOf = (destination: string[], keys: ReportKeyring = OURS, key = `job-${Math.random()}`): SesSend => ({
  messageId: `0102-${Math.random().toString(36).slice(2)}`,
  destination,
  tags: {
    [DispatchTags.key]: [Buffer.from(key).toString('base64url')],
    [DispatchTags.token]: [toTagToken(toReportToken(key, keys))],
  },
  at: new Date(),
});
const bounceOf = (send: SesSend, recipient: string, type = 'Permanent', subType = 'General', status = '5.1.1') => {
  const record = toSesEventRecord(send, recipient, 'Bounce', ACCOUNT);
  const bouncedRecipients = [{ emailAddress: recipient, action: 'failed', status }];
  return { ...record, bounce: { bounceType: type, bounceSubType: subType, bouncedRecipients } } as SesEventRecord;
};

describe('the SES event consumer', () => {
  it('suppresses a permanently bounced recipient of our message and publishes a verified bounce.detected', async () => {
    const c = await consumer();
    const send = sendOf(['gone@customer.example', 'fine@customer.example']);

    const summary = await c.deliver([bounceOf(send, 'gone@customer.example')]);

    expect(summary).toMatchObject({ handled: 1, suppressed: 1, refused: 0 });
    const suppressed = await c.suppressions.findSuppressed(['gone@customer.example', 'fine@customer.example']);
    expect(suppressed).toEqual(new Set(['gone@customer.example']));
    const classification = { bounceType: 'Permanent', bounceSubType: 'General' };
    expect(c.published[0]).toMatchObject({ type: 'bounce.detected', source: 'ses', verified: true, classification });
  });

  it('refuses notifications from another topic, about another account’s mail, or unreadable', async () => {
    const c = await consumer();
    const send = sendOf(['ceo@customer.example']);
    const bounce = bounceOf(send, 'ceo@customer.example');
    const otherAccount = { ...bounce, mail: { ...bounce.mail, sendingAccountId: '999988887777' } };

    const fromElsewhere = await c.deliver([bounce], 'arn:aws:sns:eu-west-1:999988887777:email-dispatch-ses-events');
    const aboutOthers = await c.deliver([otherAccount]);
    const malformed = toSnsEvent(TOPIC, [bounce]);
    (malformed.Records[0] as { Sns: { Message: string } }).Sns.Message = '{"eventType":"Bounce","mail":{}}';
    const unreadable = await c.handler(malformed, createLambdaContext('ses-events', 30_000));

    expect(fromElsewhere).toMatchObject({ handled: 0, refused: 1 });
    expect(aboutOthers).toMatchObject({ handled: 0, refused: 1 });
    expect(unreadable).toMatchObject({ handled: 0, refused: 1 });
    expect(c.output.lines.join('\n')).toContain('mail.messageId is missing');
    expect(await c.suppressions.findSuppressed(['ceo@customer.example'])).toEqual(new Set());
    expect(c.published).toEqual([]);
    expect(c.output.metric('SesEventsRefused')).toBe(3);
  });

  it('publishes verified: false and suppresses no one for tags not made with our keys or a non-recipient', async () => {
    const c = await consumer();
    const theirs = sendOf(['ceo@customer.example'], THEIRS);
    const ours = sendOf(['insider@customer.example']);

    const untagged = { ...ours, tags: {} };
    const ceo = 'ceo@customer.example';
    await c.deliver([bounceOf(theirs, ceo), bounceOf(ours, ceo), bounceOf(untagged, 'insider@customer.example')]);

    const verdicts = c.published.map((e) => e as unknown as { verified: boolean; verification: { reason: string } });
    expect(verdicts.map((e) => [e.verified, e.verification.reason])).toEqual([
      [false, 'forged-token'],
      [false, 'not-a-recipient'],
      [false, 'no-token'],
    ]);
    const suppressed = await c.suppressions.findSuppressed(['ceo@customer.example', 'insider@customer.example']);
    expect(suppressed).toEqual(new Set());
    expect(c.output.metric('UnverifiedReports')).toBe(3);
  });

  it.each([
    ['Transient', 'MailboxFull', '4.2.2', false],
    ['Undetermined', 'Undetermined', '5.0.0', false],
    ['Permanent', 'General', '5.7.1', false],
    ['Permanent', 'General', '5.1.10', true],
    ['Permanent', 'NoEmail', '', true],
    ['Permanent', 'OnAccountSuppressionList', '', true],
  ] as const)('maps a %s/%s bounce (status %s) onto the policy: suppress %s', async (type, sub, status, suppress) => {
    const c = await consumer();
    const send = sendOf(['someone@customer.example']);

    await c.deliver([bounceOf(send, 'someone@customer.example', type, sub, status)]);

    expect(c.published[0]).toMatchObject({ verified: true, classification: { recipients: [{ suppress }] } });
    expect((await c.suppressions.findSuppressed(['someone@customer.example'])).size).toBe(suppress ? 1 : 0);
  });

  it('turns a delivery, a delay and a complaint into delivered, delayed and complaint events', async () => {
    const c = await consumer();
    const send = sendOf(['a@customer.example', 'b@customer.example', 'c@customer.example']);

    await c.deliver([
      toSesEventRecord(send, 'a@customer.example', 'Delivery', ACCOUNT),
      toSesEventRecord(send, 'b@customer.example', 'DeliveryDelay', ACCOUNT),
      toSesEventRecord(send, 'c@customer.example', 'Complaint', ACCOUNT),
    ]);

    expect(c.published.map((e) => e.type)).toEqual(['email.delivered', 'delivery.delayed', 'complaint.detected']);
    const all = ['a@customer.example', 'b@customer.example', 'c@customer.example'];
    // The complaint is about the default tenant's mail: a global entry, as before tenants (see Tenants).
    const suppressed = await c.suppressions.findSuppressed(all, 'default');
    expect(suppressed).toEqual(new Set(['c@customer.example']));
  });
  it('turns an SES Reject into email.rejected for every destination, and suppresses no one', async () => {
    // Prepare: SES refused the message itself (a virus), for all of its recipients
    const c = await consumer();
    const send = sendOf(['x@customer.example', 'y@customer.example']);
    const { mail } = toSesEventRecord(send, 'x@customer.example', 'Delivery', ACCOUNT);
    const reject = { eventType: 'Reject', mail, reject: { reason: 'Bad content' } } as SesEventRecord;

    // Act
    const summary = await c.deliver([reject]);

    // Assess
    expect(summary).toMatchObject({ handled: 1, suppressed: 0, unverified: 0 });
    expect(c.published).toEqual([
      expect.objectContaining({
        type: 'email.rejected',
        source: 'ses',
        verified: true,
        reason: 'ses-reject',
        detail: 'Bad content',
        recipients: [
          { recipient: 'x@customer.example', status: 'rejected' },
          { recipient: 'y@customer.example', status: 'rejected' },
        ],
      }),
    ]);
    const both = ['x@customer.example', 'y@customer.example'];
    expect(await c.suppressions.findSuppressed(both)).toEqual(new Set());
  });
});

describe('the SES event consumer and the reputation guardrail', () => {
  it("counts a verified hard bounce against the tenant its job's key is scoped to, and pauses it over the limit", async () => {
    // Prepare: shop sent 20 recipients in this hour; two of its messages bounce, one report is another deployment's.
    const c = await consumer({
      policy: { ...DEFAULT_REPUTATION_POLICY, minRecipients: 20, minReports: 1 },
    });
    const bucket = bucketStartOf(Date.now(), DEFAULT_REPUTATION_POLICY);
    await c.tenants.add('shop', bucket, { sent: 20 });
    const first = sendOf(['gone-1@customer.example'], OURS, scopedJobKey('shop', 'order-1'));
    const second = sendOf(['gone-2@customer.example'], OURS, scopedJobKey('shop', 'order-2'));
    const forged = sendOf(['gone-3@customer.example'], THEIRS, scopedJobKey('shop', 'order-3'));
    const other = sendOf(['gone-4@customer.example'], OURS, 'order-4');

    // Act
    await c.deliver([bounceOf(first, 'gone-1@customer.example'), bounceOf(forged, 'gone-3@customer.example')]);
    const afterOne = await c.tenants.standing('shop');
    await c.deliver([bounceOf(second, 'gone-2@customer.example'), bounceOf(other, 'gone-4@customer.example')]);

    // Assess: one bounce in 20 (5 %) is over the 4 % limit already; the forged report counts for no tenant.
    const { buckets } = await c.tenants.read('shop', [bucket]);
    expect(afterOne.paused).toMatchObject({ reason: 'bounce-rate', bounceRate: 0.05 });
    expect(buckets.get(bucket)).toEqual({ sent: 20, bounces: 2, complaints: 0 });
    expect((await c.tenants.read(DEFAULT_TENANT, [bucket])).buckets.get(bucket)?.bounces).toBe(1);
    expect(c.published.filter((e) => e.type === 'tenant.paused')).toEqual([
      expect.objectContaining({ tenant: 'shop', reason: 'bounce-rate', pausedBy: 'guardrail' }),
    ]);
    expect(c.output.metric('TenantsPaused')).toBe(1);
  });
});

describe('the SES event consumer and redelivered notifications', () => {
  it('counts a bounce SNS delivers twice once against its tenant', async () => {
    // Prepare
    const c = await consumer({ policy: DEFAULT_REPUTATION_POLICY });
    const bucket = bucketStartOf(Date.now(), DEFAULT_REPUTATION_POLICY);
    const send = sendOf(['gone@customer.example', 'gone-too@customer.example'], OURS, scopedJobKey('shop', 'o-9'));
    const report = bounceOf(send, 'gone@customer.example');

    // Act: the same notification, delivered again (SNS delivers at least once), alone and beside another.
    await c.deliver([report]);
    await c.deliver([report, report]);

    // Assess
    const { buckets } = await c.tenants.read('shop', [bucket]);
    expect(buckets.get(bucket)).toEqual({ sent: 0, bounces: 1, complaints: 0 });
  });
});

describe('the SES event consumer and one address reported on many jobs', () => {
  it("counts an address once against a tenant however many of the tenant's jobs it is reported on", async () => {
    // Prepare: one recipient kept three of shop's mails (a sign-up, two password resets) and reports all three.
    const c = await consumer({ policy: DEFAULT_REPUTATION_POLICY });
    const bucket = bucketStartOf(Date.now(), DEFAULT_REPUTATION_POLICY);
    const sends = ['a', 'b', 'c'].map((k) => sendOf(['kept@customer.example'], OURS, scopedJobKey('shop', `job-${k}`)));

    // Act
    await c.deliver(sends.map((send) => toSesEventRecord(send, 'kept@customer.example', 'Complaint', ACCOUNT)));

    // Assess
    const { buckets } = await c.tenants.read('shop', [bucket]);
    expect(buckets.get(bucket)).toEqual({ sent: 0, bounces: 0, complaints: 1 });
  });
});
