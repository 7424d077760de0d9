import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { describe, expect, it } from 'vitest';
import { createJobStatusStore } from '#aws/job-status-store.js';
import { TableKeys } from '#aws/table-keys.js';
import { useDynalite } from '../support/dynalite.js';
import { DispatchTags, toTagToken } from '#core/dispatch-job.js';
import { toReportKeyring, toReportToken, type ReportKeyring } from '#core/message-id.js';
import type { SesEventRecord } from '#core/ses-events.js';
import { createDispatchPolicy } from '#handlers/dispatch-policy.js';
import { DEFAULT_RETRY_POLICY } from '#core/retry-schedule.js';
import { toSqsRecord } from '#local/event-source.js';
import { emailJobFactory } from '../support/factories.js';
import { createSesEventsHandler } from '#handlers/ses-events-handler.js';
import { createLambdaContext } from '#local/lambda-context.js';
import { toSesEventRecord, toSnsEvent, type SesSend } from '#local/ses-events.js';
import { createJobControl } from '#producer/index.js';

const TABLE = 'job-status';
const dynalite = useDynalite([[TABLE, TableKeys.jobStatus.partitionKey, TableKeys.jobStatus.ttlAttribute]]);
let serial = 0;
const newJob = (tenant = 'default') => ({ tenant, idempotencyKey: `job-${(serial += 1)}` });

const store = () => createJobStatusStore(dynalite.clients.dynamodb, TABLE, { ttlSeconds: 3600 });
const control = () => createJobControl({ dynamodb: dynalite.clients.dynamodb, tableName: TABLE });
const outcome = {
  reason: 'accepted',
  providerMessageId: 'p-1',
  recipients: [{ address: 'a***@example.net', status: 'accepted' }],
};

describe('the job status table', () => {
  it('lets exactly one of a cancel and a send claim win, every time they race', async () => {
    // Prepare: 40 scheduled jobs, each claimed for a send and cancelled at the same moment.
    const jobs = Array.from({ length: 40 }, () => newJob());
    await Promise.all(jobs.map((job) => store().hold(job, new Date().toISOString())));

    // Act
    const results = await Promise.all(
      jobs.map(async (job) => {
        const [claim, cancel] = await Promise.all([
          store().claim(job, Date.now() + 60_000, 1),
          control().cancel(job.idempotencyKey),
        ]);
        return { claim, cancel, status: await control().getStatus(job.idempotencyKey) };
      }),
    );

    // Assess: never both, never neither; the record says who won.
    for (const { claim, cancel, status } of results) {
      expect([claim === 'claimed', cancel.cancelled]).toContainEqual(true);
      expect(claim === 'claimed').toBe(!cancel.cancelled);
      expect(status?.state).toBe(cancel.cancelled ? 'cancelled' : 'sending');
      if (!cancel.cancelled) expect(cancel).toMatchObject({ reason: 'in-progress' });
    }
  });

  it('stops a claim after a cancel, and answers a cancel of a sent job with what became of it', async () => {
    const early = newJob();
    const sent = newJob();

    expect(await control().cancel(early.idempotencyKey)).toMatchObject({ cancelled: true, previousState: 'unseen' });
    expect(await store().claim(early, Date.now() + 60_000, 1)).toBe('cancelled');
    expect(await store().hold(early, new Date().toISOString())).toBe('cancelled');
    expect(await control().cancel(early.idempotencyKey)).toMatchObject({
      cancelled: false,
      reason: 'already-cancelled',
    });

    expect(await store().claim(sent, Date.now() + 60_000, 1)).toBe('claimed');
    await store().record(sent, { state: 'delivered', attempts: 1, outcome });
    expect(await control().cancel(sent.idempotencyKey)).toMatchObject({
      cancelled: false,
      reason: 'sent',
      state: 'delivered',
    });
    expect(await store().claim(sent, Date.now() + 60_000, 2)).toBe('final');
  });

  it('cancels a deferred job, and one whose attempt died once its lease is over', async () => {
    const deferred = newJob();
    const dead = newJob();
    await store().claim(deferred, Date.now() + 60_000, 1);
    await store().record(deferred, {
      state: 'deferred',
      attempts: 1,
      reason: 'smtp-rcpt-451',
      nextAttemptAtMs: Date.now() + 30_000,
    });
    expect(await control().getStatus(deferred.idempotencyKey)).toMatchObject({
      state: 'deferred',
      lastReason: 'smtp-rcpt-451',
      attempts: 1,
    });
    expect(await control().cancel(deferred.idempotencyKey)).toMatchObject({
      cancelled: true,
      previousState: 'deferred',
    });
    // A deferral written late never undoes the cancel.
    await store().record(deferred, { state: 'deferred', attempts: 2, reason: 'late', nextAttemptAtMs: Date.now() });
    expect((await control().getStatus(deferred.idempotencyKey))?.state).toBe('cancelled');

    await store().claim(dead, Date.now() - 1, 1);
    expect(await control().cancel(dead.idempotencyKey)).toMatchObject({ cancelled: true, previousState: 'sending' });
  });

  it('keeps tenants apart and turns a delivered job bounced only on a report', async () => {
    const ours = newJob('shop');
    const theirs = { tenant: 'billing', idempotencyKey: ours.idempotencyKey };
    await store().hold(ours, '2030-01-01T00:00:00Z');
    expect(await control().getStatus(ours.idempotencyKey, { tenant: 'billing' })).toBeUndefined();
    expect(await control().getStatus(ours.idempotencyKey, { tenant: 'shop' })).toMatchObject({
      state: 'scheduled',
      tenant: 'shop',
    });
    await store().report(theirs, 'bounce', []);
    expect(await control().getStatus(theirs.idempotencyKey, { tenant: 'billing' })).toBeUndefined();

    await store().claim(ours, Date.now() + 60_000, 1);
    await store().report(ours, 'bounce', [{ address: 'g***@bounce.test', status: '5.1.1' }]);
    expect((await control().getStatus(ours.idempotencyKey, { tenant: 'shop' }))?.state).toBe('sending');
    await store().record(ours, { state: 'delivered', attempts: 1, outcome });
    await store().report(ours, 'bounce', [{ address: 'g***@bounce.test', status: '5.1.1' }]);
    expect(await control().getStatus(ours.idempotencyKey, { tenant: 'shop' })).toMatchObject({
      state: 'bounced',
      outcome: { providerMessageId: 'p-1' },
      report: { kind: 'bounce', recipients: [{ address: 'g***@bounce.test', status: '5.1.1' }] },
    });
    // The outcome event published again (its message back after a crash) leaves the report in place.
    await store().record(ours, { state: 'delivered', attempts: 1, outcome });
    expect((await control().getStatus(ours.idempotencyKey, { tenant: 'shop' }))?.state).toBe('bounced');
  });

  it('never lets a late deferral undo a final state, and keeps no plain address in a detail', async () => {
    // A second copy of a job (a hold re-sent before its step was cut off) finds it in progress elsewhere and defers
    // after the first copy delivered it; a report came in between.
    const job = newJob();
    await store().claim(job, Date.now() + 60_000, 1);
    await store().record(job, { state: 'delivered', attempts: 1, outcome });
    await store().record(job, { state: 'deferred', attempts: 1, reason: 'in-progress-elsewhere', nextAttemptAtMs: 0 });
    expect((await control().getStatus(job.idempotencyKey))?.state).toBe('delivered');
    await store().report(job, 'bounce', []);
    await store().record(job, { state: 'deferred', attempts: 2, reason: 'late', nextAttemptAtMs: 0 });
    expect((await control().getStatus(job.idempotencyKey))?.state).toBe('bounced');

    const failing = newJob();
    const detail = "Can't send mail - all recipients were rejected: 550 <Someone.Else@customer.example> unknown";
    await store().record(failing, { state: 'deferred', reason: 'internal-Error', detail, nextAttemptAtMs: 0 });
    await store().record(failing, { state: 'failed', outcome: { reason: 'x', detail, recipients: [] } });
    const { Item } = await dynalite.clients.dynamodb.send(
      new GetItemCommand({ TableName: TABLE, Key: { jobKey: { S: failing.idempotencyKey } } }),
    );
    expect(JSON.stringify(Item)).not.toMatch(/customer\.example/i);
  });
});

describe('two attempts claiming one job', () => {
  it('keeps the longer lease, so a later claim with an earlier deadline does not open the job to a cancel', async () => {
    // Copy A claims until a minute from now; copy B, in an invocation with an earlier deadline, claims after it.
    const job = newJob();
    expect(await store().claim(job, Date.now() + 60_000, 1)).toBe('claimed');
    expect(await store().claim(job, Date.now() - 1, 1)).toBe('claimed');

    expect(await control().cancel(job.idempotencyKey)).toMatchObject({ cancelled: false, reason: 'in-progress' });
  });
});

describe('a scheduled job handed back after its hold was sent', () => {
  it('is scheduled again at its next hop, not left deferred', async () => {
    // The hold's message went out, the step was cut off by the attempt's budget and the record was handed back.
    const job = newJob();
    const sendAt = new Date(Date.now() + 3_600_000).toISOString();
    await store().hold(job, sendAt);
    await store().record(job, { state: 'deferred', reason: 'schedule-step-failed', nextAttemptAtMs: Date.now() });

    expect(await store().hold(job, sendAt)).toBe('held');
    expect(await control().getStatus(job.idempotencyKey)).toMatchObject({ state: 'scheduled', sendAt });
  });
});

describe('a second copy of a job being sent', () => {
  it("leaves the first copy's claim in place, so a cancel cannot pass it while that copy sends", async () => {
    // Prepare: copy A (a producer's double enqueue, a hold re-sent before its step was cut off) claimed the job and
    // is sending; copy B claims it too and finds the send in progress elsewhere.
    const logger = new Logger({ serviceName: 'email-dispatch', logLevel: 'ERROR' });
    const metrics = new Metrics({ namespace: 'EmailDispatch', serviceName: 'email-dispatch', logger });
    const policy = createDispatchPolicy({
      logger,
      metrics,
      events: { publish: async () => {} },
      deadLetters: { send: async () => {} },
      visibility: { postpone: async () => {} },
      retry: DEFAULT_RETRY_POLICY,
      messageIdDomain: 'dispatch.test',
      defaultTransport: 'smtp',
      clock: Date.now,
      random: () => 0.5,
      jobStatus: store(),
    });
    const job = newJob();
    const email = { ...emailJobFactory(), ...job };
    await store().claim(job, Date.now() + 60_000, 1);
    await store().claim(job, Date.now() + 60_000, 1);
    const record = toSqsRecord(
      { MessageId: 'm-b', ReceiptHandle: 'r-b', Body: JSON.stringify(email), Attributes: {} },
      'arn:aws:sqs:eu-west-1:000000000000:jobs',
    );

    // Act
    await policy
      .deferOrGiveUp([], record, email, { action: 'retry', reason: 'in-progress-elsewhere', recipients: [] }, 1)
      .catch(() => undefined);

    // Assess
    expect((await control().getStatus(job.idempotencyKey))?.state).toBe('sending');
    expect(await control().cancel(job.idempotencyKey)).toMatchObject({ cancelled: false, reason: 'in-progress' });
  });
});

describe('SES reports on the job status', () => {
  const ACCOUNT = '111122223333';
  const TOPIC = `arn:aws:sns:eu-west-1:${ACCOUNT}:email-dispatch-ses-events`;
  const OURS = toReportKeyring({ current: 'k1', k1: 'our-report-key-for-ses-events-0000001' }, 'ours');
  const THEIRS = toReportKeyring({ current: 'k1', k1: 'another-deployments-report-key-000002' }, 'theirs');
  const logger = new Logger({ serviceName: 'email-dispatch', logLevel: 'ERROR' });
  const metrics = new Metrics({ namespace: 'EmailDispatch', serviceName: 'email-dispatch', logger });
  const handler = () =>
    createSesEventsHandler({
      logger,
      metrics,
      expected: { topicArn: TOPIC, accountId: ACCOUNT },
      reportKeys: async () => OURS,
      suppress: async () => {},
      events: { publish: async () => {} },
      jobStatus: store(),
    });
  const sendOf = (key: string, keys: ReportKeyring): SesSend => ({
    messageId: `0102-${key}`,
    destination: ['gone@customer.example'],
    tags: {
      [DispatchTags.key]: [Buffer.from(key).toString('base64url')],
      [DispatchTags.token]: [toTagToken(toReportToken(key, keys))],
    },
    at: new Date(),
  });
  const deliver = (records: SesEventRecord[]) =>
    handler()(toSnsEvent(TOPIC, records), createLambdaContext('ses-events', 30_000));

  it('turns a delivered job bounced on a verified SES event, and ignores a forged one', async () => {
    // Prepare: two delivered jobs.
    const bounced = newJob();
    const forged = newJob();
    for (const job of [bounced, forged]) await store().record(job, { state: 'delivered', attempts: 1, outcome });
    const bounce = (key: string, keys: ReportKeyring) => {
      const record = toSesEventRecord(sendOf(key, keys), 'gone@customer.example', 'Bounce', ACCOUNT);
      const bouncedRecipients = [{ emailAddress: 'gone@customer.example', action: 'failed', status: '5.1.1' }];
      return { ...record, bounce: { bounceType: 'Permanent', bounceSubType: 'General', bouncedRecipients } };
    };

    // Act
    await deliver([bounce(bounced.idempotencyKey, OURS) as SesEventRecord]);
    await deliver([bounce(forged.idempotencyKey, THEIRS) as SesEventRecord]);

    // Assess
    expect(await control().getStatus(bounced.idempotencyKey)).toMatchObject({
      state: 'bounced',
      report: { kind: 'bounce', recipients: [{ address: 'g***@customer.example', status: '5.1.1' }] },
    });
    expect((await control().getStatus(forged.idempotencyKey))?.state).toBe('delivered');
  });
});
