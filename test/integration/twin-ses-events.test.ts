import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSuppressionStore } from '#aws/suppression-store.js';
import type { Twin } from '#local/twin.js';
import { createEmailProducer } from '#producer/index.js';
import { emailJobFactory } from '../support/factories.js';
import { eventTap, startTestTwin } from '../support/twin-harness.js';

let twin: Twin;
let dataDir: string;
const events: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  ({ twin, dataDir } = await startTestTwin({ transport: 'ses' }));
});
afterAll(async () => {
  await twin?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const { waitFor } = eventTap(() => twin, events);
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
