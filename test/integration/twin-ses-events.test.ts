import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSuppressionStore } from '#aws/suppression-store.js';
import { DEFAULT_SETTINGS } from '#infra/settings.js';
import { startTwin, type Twin } from '#local/twin.js';
import { createEmailProducer } from '#producer/index.js';
import { emailJobFactory } from '../support/factories.js';

let twin: Twin;
let dataDir: string;
const events: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'email-dispatch-twin-ses-'));
  twin = await startTwin({
    dataDir,
    transport: 'ses',
    ports: { aws: 0, dynamodb: 0, ses: 0, smtp: 0, imap: 0 },
    settings: { ...DEFAULT_SETTINGS, retry: { baseDelaySeconds: 1, maxDelaySeconds: 2, lifetimeSeconds: 600 } },
    pollIntervalSeconds: 10,
  });
});
afterAll(async () => {
  await twin?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const collectEvents = async () => {
  const r = await twin.clients.sqsClient.send(new ReceiveMessageCommand({ QueueUrl: twin.resources.eventsTapQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
  for (const m of r.Messages ?? []) events.push(JSON.parse(m.Body ?? '{}') as Record<string, unknown>);
  if (r.Messages?.length) await twin.clients.sqsClient.send(new DeleteMessageBatchCommand({ QueueUrl: twin.resources.eventsTapQueueUrl, Entries: r.Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })) }));
};
const waitFor = async (what: string, done: () => boolean, timeoutMs = 45_000) => {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    await collectEvents();
    if (done()) return;
  }
  throw new Error(`timed out waiting for ${what}`);
};
const eventFor = (key: string, type: string, source?: string) => events.find((e) => e.idempotencyKey === key && e.type === type && (!source || e.source === source));

describe('the local twin with the SES transport', () => {
  it('turns SES bounce and complaint events into verified events and suppressions; the next job to them is rejected', async () => {
    // Prepare
    const producer = createEmailProducer({ sqs: twin.clients.sqsClient, s3: await twin.clients.s3(), queueUrl: twin.resources.jobsQueueUrl, bucket: twin.resources.bucket });
    const bounce = emailJobFactory({ to: ['gone@bounce.test'] });
    const complaint = emailJobFactory({ to: ['angry@complaint.test'] });
    const good = emailJobFactory({ to: ['alice@example.net'] });
    const suppressions = createSuppressionStore(twin.clients.documents, twin.resources.suppressionTable);

    // Act
    await producer.sendEmails([bounce, complaint, good]);
    await waitFor('the SES events', () => !!eventFor(bounce.idempotencyKey, 'bounce.detected') && !!eventFor(complaint.idempotencyKey, 'complaint.detected') && !!eventFor(good.idempotencyKey, 'email.delivered', 'ses'));
    const suppressed = await suppressions.findSuppressed(['gone@bounce.test', 'angry@complaint.test', 'alice@example.net']);
    const again = emailJobFactory({ to: ['gone@bounce.test', 'angry@complaint.test'] });
    await producer.sendEmail(again);
    await waitFor('the suppressed send', () => !!eventFor(again.idempotencyKey, 'email.rejected'));

    // Assess
    expect(eventFor(bounce.idempotencyKey, 'bounce.detected')).toMatchObject({
      source: 'ses',
      verified: true,
      verification: { via: 'tag' },
      classification: { kind: 'bounce', bounceType: 'Permanent', recipients: [{ recipient: 'gone@bounce.test', status: '5.1.1', suppress: true }] },
    });
    expect(eventFor(complaint.idempotencyKey, 'complaint.detected')).toMatchObject({ source: 'ses', verified: true, classification: { kind: 'complaint', feedbackType: 'abuse', suppress: true } });
    expect(eventFor(good.idempotencyKey, 'email.delivered', 'ses')).toMatchObject({ verified: true, recipients: [{ recipient: 'alice@example.net', status: 'accepted' }] });
    expect(suppressed).toEqual(new Set(['gone@bounce.test', 'angry@complaint.test']));
    expect(eventFor(again.idempotencyKey, 'email.rejected')).toMatchObject({ reason: 'all-recipients-suppressed' });
  });
});
