import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetQueueAttributesCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSuppressionStore } from '#aws/suppression-store.js';
import { startDovecot } from '#local/dovecot.js';
import { loadLocalSecrets, localLogin } from '#local/local-credentials.js';
import { localTlsCertificate } from '#local/tls-certificate.js';
import { startTwin, type Twin } from '#local/twin.js';
import { createEmailProducer } from '#producer/index.js';
import { redriveDeadLetters } from '#tools/redrive-dead-letters.js';
import { runScript } from '../support/command-line.js';
import { emailJobFactory } from '../support/factories.js';
import { eventTap, startTestTwin } from '../support/twin-harness.js';

let twin: Twin;
let dataDir: string;
const events: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  ({ twin, dataDir } = await startTestTwin());
});
afterAll(async () => {
  await twin?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const { waitFor } = eventTap(() => twin, events);
const eventFor = (key: string, type?: string) =>
  events.find((e) => e.idempotencyKey === key && (!type || e.type === type));

describe('the local twin', () => {
  it('runs the whole loop: producer → queue → handler → SMTP outbox, bounce → IMAP → poller → suppression', async () => {
    // Prepare
    const producer = createEmailProducer({
      sqs: twin.clients.sqsClient,
      s3: await twin.clients.s3(),
      queueUrl: twin.resources.jobsQueueUrl,
      bucket: twin.resources.bucket,
    });
    const good = emailJobFactory({ to: ['alice@example.net'] });
    const bounce = emailJobFactory({ to: ['gone@bounce.test'] });
    const reject = emailJobFactory({ to: ['nobody@reject.test'] });
    const throttled = emailJobFactory({ to: ['busy@throttled.test'] });
    const large = emailJobFactory({
      to: ['carol@example.net'],
      html: `<p>${'x'.repeat(1_200_000)}</p>`,
      attachments: [{ filename: 'big.bin', content: Buffer.alloc(700_000, 1).toString('base64') }],
    });

    // Act
    const result = await producer.sendEmails([good, bounce, reject, throttled, large, good]);
    await waitFor(
      'outcomes and the bounce',
      () =>
        [good, reject, throttled, large].every((j) => eventFor(j.idempotencyKey)) &&
        events.some((e) => e.type === 'bounce.detected'),
    );
    const suppressed = await createSuppressionStore(
      twin.clients.documents,
      twin.resources.suppressionTable,
    ).findSuppressed(['gone@bounce.test']);
    const again = emailJobFactory({ to: ['gone@bounce.test'] });
    await producer.sendEmail(again);
    await waitFor('the suppressed send', () => !!eventFor(again.idempotencyKey));

    // Assess
    expect(result.failed).toEqual([]);
    expect(result.sent.find((s) => s.idempotencyKey === large.idempotencyKey)?.claimCheck).toBeDefined();
    expect(eventFor(good.idempotencyKey)).toMatchObject({ type: 'email.delivered' });
    expect(eventFor(reject.idempotencyKey)).toMatchObject({ type: 'email.rejected', reason: 'smtp-rcpt-550' });
    expect(eventFor(throttled.idempotencyKey)).toMatchObject({ type: 'email.delivered', attempts: 2 });
    expect(eventFor(large.idempotencyKey)).toMatchObject({ type: 'email.delivered' });
    expect(suppressed).toEqual(new Set(['gone@bounce.test']));
    const bounced = events.find((e) => e.type === 'bounce.detected');
    expect(bounced).toMatchObject({ verified: true, verification: { reason: 'verified' } });
    expect(eventFor(again.idempotencyKey)).toMatchObject({
      type: 'email.rejected',
      reason: 'all-recipients-suppressed',
    });
    const outbox = readdirSync(join(dataDir, 'outbox'));
    expect(outbox).toHaveLength(4);
    const bigMail = twin.smtp.received.find((m) => m.to.includes('carol@example.net'));
    const parsed = await simpleParser(bigMail?.raw ?? Buffer.alloc(0));
    expect(parsed.attachments[0]?.size).toBe(700_000);
    expect((await twin.stats()).delivered).toBeGreaterThanOrEqual(4);
  }, 90_000);

  it('lets an operator see, remove and add suppressions with npm run suppression, against the twin by default', async () => {
    // Prepare: a job to a bouncing address goes round the loop and leaves its address suppressed
    const producer = createEmailProducer({ sqs: twin.clients.sqsClient, queueUrl: twin.resources.jobsQueueUrl });
    const gone = 'cli-gone@bounce.test';
    await producer.sendEmail(emailJobFactory({ to: [gone] }));
    const suppressions = createSuppressionStore(twin.clients.documents, twin.resources.suppressionTable);
    await waitFor(
      'the bounce to suppress its address',
      async () => (await suppressions.findSuppressed([gone])).size > 0,
    );
    const suppression = (...args: string[]) => runScript('tools/suppression.ts', args, { twinDir: dataDir });
    const json = (run: { stdout: string }) => JSON.parse(run.stdout) as Record<string, unknown>;

    // Act
    const checked = await suppression('check', gone, '--json');
    const listed = await suppression('list', '--json');
    const removed = await suppression('remove', gone, '--json');
    const afterRemoval = await suppression('check', gone, '--json');
    const again = emailJobFactory({ to: [gone] });
    await producer.sendEmail(again);
    await waitFor('the job after the removal', () => !!eventFor(again.idempotencyKey));
    const added = await suppression('add', 'stop@example.net', '--reason', 'manual', '--detail', 'asked to stop');
    const blocked = emailJobFactory({ to: ['stop@example.net'] });
    await producer.sendEmail(blocked);
    await waitFor('the job to the added address', () => !!eventFor(blocked.idempotencyKey));

    // Assess: the entry says what put it there and how the report was tied to our mail
    expect(checked.code).toBe(0);
    expect(json(checked)).toMatchObject({
      suppressed: true,
      entry: {
        maskedAddress: 'c***@bounce.test',
        reason: 'hard-bounce',
        source: expect.stringMatching(/^dsn:/),
        verified: expect.stringMatching(/^(message-id|envelope)$/),
        permanent: true,
        count: 1,
        firstSeen: expect.any(String),
        lastSeen: expect.any(String),
      },
    });
    const entries = JSON.parse(listed.stdout) as Array<{ maskedAddress: string }>;
    expect(entries.map((e) => e.maskedAddress)).toContain('c***@bounce.test');
    expect(listed.stdout).not.toContain(gone);
    expect(removed.code).toBe(0);
    expect(json(afterRemoval)).toMatchObject({ suppressed: false });
    expect(eventFor(again.idempotencyKey)).toMatchObject({ type: 'email.delivered' });
    expect(added.code).toBe(0);
    expect(eventFor(blocked.idempotencyKey)).toMatchObject({
      type: 'email.rejected',
      reason: 'all-recipients-suppressed',
    });
    await waitFor('the removal to be published', () => events.some((e) => e.type === 'suppression.removed'));
  }, 180_000);

  it('redrives the DLQ after an interrupted run without losing or doubling mail', async () => {
    // Prepare: 30 jobs that were given up, and 5 invalid ones, in the DLQ
    const sqs = twin.clients.sqsClient;
    const dlq = twin.resources.deadLetterQueueUrl;
    const jobs = Array.from({ length: 30 }, (_, i) => emailJobFactory({ to: [`redrive${i}@example.net`] }));
    for (const job of jobs) {
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: dlq,
          MessageBody: JSON.stringify(job),
          MessageAttributes: {
            failureClass: { DataType: 'String', StringValue: 'exhausted' },
            failureReason: { DataType: 'String', StringValue: 'retry:smtp-451' },
          },
        }),
      );
    }
    for (let i = 0; i < 5; i += 1) {
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: dlq,
          MessageBody: '{"broken":',
          MessageAttributes: {
            failureClass: { DataType: 'String', StringValue: 'invalid' },
            failureReason: { DataType: 'String', StringValue: 'invalid-json' },
          },
        }),
      );
    }
    const before = twin.smtp.received.length;

    // Act: a redrive process killed partway, then a second run to the end
    const child = spawn('npx', ['tsx', 'tools/redrive.ts', '--rate', '10', '--hold', '2'], {
      cwd: process.cwd(),
      env: { ...process.env, TWIN_DIR: dataDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk: Buffer) => {
        if (/moved (1[0-9])/.test(chunk.toString())) resolve();
      });
      setTimeout(resolve, 30_000);
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const report = await redriveDeadLetters({
      sqs,
      deadLetterQueueUrl: dlq,
      sourceQueueUrl: twin.resources.jobsQueueUrl,
      only: 'transient',
      ratePerSecond: 50,
      holdSeconds: 2,
    });
    await waitFor(
      'the redriven jobs to be sent',
      () => new Set(twin.smtp.received.slice(before).map((m) => m.to[0])).size === 30,
      60_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 2000));

    // Assess
    expect(report.byReason).toMatchObject({ 'invalid: invalid-json': 5 });
    const delivered = twin.smtp.received.slice(before).map((m) => m.to[0]);
    expect(delivered).toHaveLength(30);
    expect(new Set(delivered).size).toBe(30);
    const left = await sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: dlq,
        AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
      }),
    );
    expect(
      Number(left.Attributes?.ApproximateNumberOfMessages) +
        Number(left.Attributes?.ApproximateNumberOfMessagesNotVisible),
    ).toBe(5);
  }, 120_000);
});

describe('the local twin with an IMAP server given by configuration', () => {
  it('polls that server (Dovecot, STARTTLS) and appends the relay bounces to it', async () => {
    // Prepare: Dovecot with the twin's IMAP credentials
    const dir = mkdtempSync(join(tmpdir(), 'email-dispatch-twin-imap-'));
    const secrets = loadLocalSecrets(join(dir, 'credentials.json'));
    const cert = localTlsCertificate();
    const dovecot = await startDovecot({
      tls: cert,
      users: [localLogin(secrets, 'imap', join(dir, 'credentials.json'))],
    });
    const other = await startTwin({
      dataDir: dir,
      ports: { aws: 0, dynamodb: 0, ses: 0, smtp: 0, imap: 0 },
      pollIntervalSeconds: 10,
      imap: { host: dovecot.host, port: dovecot.port, security: 'starttls', mailbox: 'INBOX', ca: cert.cert },
    });
    try {
      const producer = createEmailProducer({ sqs: other.clients.sqsClient, queueUrl: other.resources.jobsQueueUrl });
      const job = emailJobFactory({ to: ['lost@bounce.test'] });

      // Act
      await producer.sendEmail(job);
      const suppressions = createSuppressionStore(other.clients.documents, other.resources.suppressionTable);
      const until = Date.now() + 30_000;
      let suppressed = new Set<string>();
      while (Date.now() < until && suppressed.size === 0) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        suppressed = await suppressions.findSuppressed(['lost@bounce.test']);
      }

      // Assess
      expect(other.imap).toBeUndefined();
      expect(suppressed).toEqual(new Set(['lost@bounce.test']));
    } finally {
      await other.stop();
      await dovecot.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
