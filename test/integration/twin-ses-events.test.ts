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
const eventFor = (key: string, type: string, source?: string) =>
  events.find((e) => e.idempotencyKey === key && e.type === type && (!source || e.source === source));

describe('the local twin with the SES transport', () => {
  it('turns SES bounces and complaints into verified events and suppressions; the next job is rejected', async () => {
    // Prepare
    const { clients, resources } = twin;
    const s3 = await clients.s3();
    const { jobsQueueUrl: queueUrl, bucket } = resources;
    const producer = createEmailProducer({ sqs: clients.sqsClient, s3, queueUrl, bucket });
    const bounce = emailJobFactory({ to: ['gone@bounce.test'] });
    const complaint = emailJobFactory({ to: ['angry@complaint.test'] });
    const good = emailJobFactory({ to: ['alice@example.net'] });
    const suppressions = createSuppressionStore(twin.clients.documents, twin.resources.suppressionTable);

    // Act
    await producer.sendEmails([bounce, complaint, good]);
    const bounced = () => eventFor(bounce.idempotencyKey, 'bounce.detected');
    const complainedOf = () => eventFor(complaint.idempotencyKey, 'complaint.detected');
    const deliveredOf = () => eventFor(good.idempotencyKey, 'email.delivered', 'ses');
    await waitFor('the SES events', () => [bounced(), complainedOf(), deliveredOf()].every((e) => e !== undefined));
    const addresses = ['gone@bounce.test', 'angry@complaint.test', 'alice@example.net'];
    // Both are about the default tenant's mail, whose entries are global (as before tenants).
    const suppressed = await suppressions.findSuppressed(addresses, 'default');
    const again = emailJobFactory({ to: ['gone@bounce.test', 'angry@complaint.test'] });
    await producer.sendEmail(again);
    await waitFor('the suppressed send', () => !!eventFor(again.idempotencyKey, 'email.rejected'));

    // Assess
    expect(bounced()).toMatchObject({
      source: 'ses',
      verified: true,
      verification: { via: 'tag' },
      classification: {
        kind: 'bounce',
        bounceType: 'Permanent',
        recipients: [{ recipient: 'gone@bounce.test', status: '5.1.1', suppress: true }],
      },
    });
    const complained = { kind: 'complaint', feedbackType: 'abuse', suppress: true };
    expect(complainedOf()).toMatchObject({ source: 'ses', verified: true, classification: complained });
    const delivered = [{ recipient: 'alice@example.net', status: 'accepted' }];
    expect(deliveredOf()).toMatchObject({ verified: true, recipients: delivered });
    expect(suppressed).toEqual(new Set(['gone@bounce.test', 'angry@complaint.test']));
    expect(eventFor(again.idempotencyKey, 'email.rejected')).toMatchObject({ reason: 'all-recipients-suppressed' });
  });
});
