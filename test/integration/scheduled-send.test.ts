import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobStatus } from '#core/job-status.js';
import { toDispatchId } from '#core/message-id.js';
import { scopedJobKey } from '#core/tenant.js';
import type { Twin } from '#local/twin.js';
import { createEmailProducer, createJobControl, InvalidEmailJobError } from '#producer/index.js';
import { runCommandLine } from '../support/command-line.js';
import { emailJobFactory } from '../support/factories.js';
import { eventTap, startTestTwin, type TestTwin } from '../support/twin-harness.js';

let testTwin: TestTwin;
let twin: Twin;
const events: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  // Two producer services as tenants besides the default one (the twin's own key).
  testTwin = await startTestTwin({ tenants: { 'producer-shop': 'shop', 'producer-crm': 'crm' } });
  twin = testTwin.twin;
});
afterAll(async () => {
  await testTwin?.stop();
});

const { waitFor } = eventTap(() => twin, events);
const eventFor = (key: string, type?: string) =>
  events.find((e) => e.idempotencyKey === key && (!type || e.type === type));
const producer = () => createEmailProducer({ sqs: twin.clients.sqsClient, queueUrl: twin.resources.jobsQueueUrl });
const control = () => createJobControl({ dynamodb: twin.clients.dynamodb, tableName: twin.resources.jobStatusTable });
/** What the relay received for a job, found by its X-Dispatch-Id header. */
const receivedFor = (key: string) =>
  twin.smtp.received.filter((m) =>
    m.raw
      .toString('utf8')
      .toLowerCase()
      .includes(`x-dispatch-id: ${toDispatchId(key)}`),
  );
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const statusOf = async (key: string, tenant?: string) => (await control().getStatus(key, { tenant })) as JobStatus;
/** A tenant's producer, signing with its own access key (the twin's SQS reports it as the SenderId). */
const producerOf = (tenant: string) =>
  createEmailProducer({
    sqs: new SQSClient({
      region: 'eu-west-1',
      endpoint: twin.manifest.endpoints.sqs,
      credentials: { accessKeyId: `producer-${tenant}`, secretAccessKey: 'x' },
    }),
    queueUrl: twin.resources.jobsQueueUrl,
    tenant,
  });
const at = (msFromNow: number) => new Date(Date.now() + msFromNow).toISOString();

describe('scheduled sends in the twin', () => {
  it('holds a job until its sendAt, sends it at its first attempt, then records it delivered and bounced', async () => {
    // Prepare: due in 5 s, to an address the twin's relay accepts and then bounces.
    const job = emailJobFactory({ to: ['gone@bounce.test'], sendAt: at(5000) });
    const dueMs = Date.parse(job.sendAt as string);

    // Act
    await producer().sendEmail(job);
    await sleep(2500);
    const whileHeld = await statusOf(job.idempotencyKey);
    const sentEarly = receivedFor(job.idempotencyKey).length;
    await waitFor('the delivery', () => !!eventFor(job.idempotencyKey, 'email.delivered'));
    const delivered = await statusOf(job.idempotencyKey);
    let bounced = delivered;
    await waitFor('the bounce on the status', async () => {
      bounced = await statusOf(job.idempotencyKey);
      return bounced.state === 'bounced';
    });

    // Assess: held without a send, then sent once at or after its time, as the first attempt of a new message.
    expect(whileHeld).toMatchObject({ state: 'scheduled', sendAt: job.sendAt });
    expect(sentEarly).toBe(0);
    const received = receivedFor(job.idempotencyKey);
    expect(received).toHaveLength(1);
    expect(received[0]?.receivedAt).toBeGreaterThanOrEqual(dueMs);
    expect(eventFor(job.idempotencyKey, 'email.delivered')).toMatchObject({ attempts: 1 });
    expect(delivered).toMatchObject({
      state: 'delivered',
      attempts: 1,
      outcome: { reason: 'accepted', recipients: [{ address: 'g***@bounce.test', status: 'accepted' }] },
    });
    expect(delivered.outcome?.messageId).toMatch(/^<.+>$/);
    expect(bounced).toMatchObject({
      state: 'bounced',
      outcome: { reason: 'accepted' },
      report: { kind: 'bounce', recipients: [{ address: 'g***@bounce.test', status: '5.1.1' }] },
    });
    expect(JSON.stringify(bounced)).not.toContain('gone@bounce.test');
  });

  it('never sends a cancelled job: the relay gets nothing and email.cancelled is published', async () => {
    // Prepare
    const job = emailJobFactory({ to: ['alice@example.net'], sendAt: at(4000) });
    await producer().sendEmail(job);
    await sleep(1500);

    // Act
    const cancel = await control().cancel(job.idempotencyKey);
    await waitFor('the cancelled event', () => !!eventFor(job.idempotencyKey, 'email.cancelled'));
    await sleep(Math.max(0, Date.parse(job.sendAt as string) + 3000 - Date.now()));

    // Assess
    expect(cancel).toMatchObject({ cancelled: true, previousState: 'scheduled', sendAt: job.sendAt });
    expect(receivedFor(job.idempotencyKey)).toEqual([]);
    expect(eventFor(job.idempotencyKey, 'email.delivered')).toBeUndefined();
    expect(await statusOf(job.idempotencyKey)).toMatchObject({ state: 'cancelled' });
    expect(await control().cancel(job.idempotencyKey)).toMatchObject({ cancelled: false, reason: 'already-cancelled' });

    // The command line answers the same, from the running twin.
    const twinDir = testTwin.dataDir;
    const status = await runCommandLine('status', [job.idempotencyKey, '--json'], { twinDir });
    const again = await runCommandLine('cancel', [job.idempotencyKey], { twinDir });
    const unknown = await runCommandLine('cancel', ['never-sent-key'], { twinDir });
    expect([status.code, JSON.parse(status.stdout).state]).toEqual([1, 'cancelled']);
    expect([again.code, again.stdout.trim()]).toEqual([1, `not cancelled ${job.idempotencyKey}: already cancelled`]);
    expect(unknown.code).toBe(0);
    expect(unknown.stdout).toContain('not seen by the dispatcher yet; a job with this key will not be sent');
  });

  it('refuses a sendAt beyond the limit, in the producer and at the dispatcher, with the reason', async () => {
    // Prepare: 73 hours ahead; the dispatcher sees one that did not come through the library.
    const job = emailJobFactory({ sendAt: at(73 * 3600 * 1000) });

    // Act
    const refused = await producer()
      .sendEmail(job)
      .catch((error: unknown) => error);
    await twin.clients.sqsClient.send(
      new SendMessageCommand({ QueueUrl: twin.resources.jobsQueueUrl, MessageBody: JSON.stringify(job) }),
    );
    await waitFor('the rejection', () => !!eventFor(job.idempotencyKey, 'email.rejected'));

    // Assess
    expect(refused).toBeInstanceOf(InvalidEmailJobError);
    expect((refused as Error).message).toContain('sendAt: must be at most 72 hours ahead');
    expect(eventFor(job.idempotencyKey, 'email.rejected')).toMatchObject({
      reason: 'send-at-too-far',
      detail: expect.stringContaining('72 hours'),
    });
    expect(await statusOf(job.idempotencyKey)).toMatchObject({
      state: 'rejected',
      outcome: { reason: 'send-at-too-far' },
    });
  });

  it('tells a rejected job and a deferred one (with its next attempt and reason), and cancels the deferred one', async () => {
    // Prepare
    const rejected = emailJobFactory({ to: ['nobody@reject.test'] });
    const deferred = emailJobFactory({ to: ['later@slow.test'] });

    // Act
    await producer().sendEmails([rejected, deferred]);
    await waitFor('the rejection', () => !!eventFor(rejected.idempotencyKey, 'email.rejected'));
    let waiting = await statusOf(deferred.idempotencyKey);
    await waitFor('the deferral', async () => {
      waiting = await statusOf(deferred.idempotencyKey);
      return waiting?.state === 'deferred';
    });
    // A cancel that meets the attempt in progress says so; once deferred it stops the job.
    let cancel = await control().cancel(deferred.idempotencyKey);
    for (let i = 0; i < 20 && !cancel.cancelled; i += 1) {
      await sleep(200);
      cancel = await control().cancel(deferred.idempotencyKey);
    }
    await waitFor('the cancelled event', () => !!eventFor(deferred.idempotencyKey, 'email.cancelled'));

    // Assess
    expect(await statusOf(rejected.idempotencyKey)).toMatchObject({
      state: 'rejected',
      outcome: {
        reason: 'smtp-rcpt-550',
        recipients: [{ address: 'n***@reject.test', status: 'rejected', responseCode: 550 }],
      },
    });
    expect(waiting).toMatchObject({ state: 'deferred', lastReason: expect.stringContaining('451') });
    expect(Date.parse(waiting.nextAttemptAt as string)).toBeGreaterThan(Date.parse(waiting.updatedAt) - 1);
    expect(cancel).toMatchObject({ cancelled: true, previousState: 'deferred' });
    expect(await statusOf(deferred.idempotencyKey)).toMatchObject({ state: 'cancelled' });
  });

  it("keeps each tenant's scheduled job, cancel and status apart when they use the same key", async () => {
    // Prepare: shop and crm both schedule `order-4711` a few seconds ahead.
    const key = `order-${Date.now()}`;
    const shopJob = emailJobFactory({ idempotencyKey: key, to: ['shop-customer@example.net'], sendAt: at(4000) });
    const crmJob = emailJobFactory({ idempotencyKey: key, to: ['crm-customer@example.net'], sendAt: at(4000) });
    await producerOf('shop').sendEmail(shopJob);
    await producerOf('crm').sendEmail(crmJob);
    await sleep(1500);

    // Act: shop cancels its job; crm's is left alone.
    const cancel = await control().cancel(key, { tenant: 'shop' });
    const ofTenant = (tenant: string, type: string) =>
      events.find((e) => e.idempotencyKey === key && e.tenant === tenant && e.type === type);
    await waitFor("crm's delivery", () => !!ofTenant('crm', 'email.delivered'));
    await waitFor("shop's cancelled event", () => !!ofTenant('shop', 'email.cancelled'));

    // Assess: only crm's job reached the relay; each tenant's status is its own, and so is the command line's answer.
    expect(cancel).toMatchObject({ cancelled: true, previousState: 'scheduled' });
    expect(receivedFor(scopedJobKey('shop', key))).toEqual([]);
    expect(receivedFor(scopedJobKey('crm', key))).toHaveLength(1);
    expect(receivedFor(key)).toEqual([]);
    expect(await statusOf(key, 'shop')).toMatchObject({ state: 'cancelled' });
    expect(await statusOf(key, 'crm')).toMatchObject({ state: 'delivered', attempts: 1 });
    expect(await statusOf(key)).toBeUndefined();
    const status = await runCommandLine('status', [key, '--tenant', 'crm', '--json'], { twinDir: testTwin.dataDir });
    expect(JSON.parse(status.stdout)).toMatchObject({ state: 'delivered', tenant: 'crm' });
  });
});
