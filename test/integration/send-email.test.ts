import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { IdempotencyConfig } from '@aws-lambda-powertools/idempotency';
import { createIdempotencyStore, toIdempotencyRecordId } from '#aws/idempotency-store.js';
import { createSuppressionStore } from '#aws/suppression-store.js';
import { hashAddress, toMessageId } from '#core/message-id.js';
import { createLambdaContext } from '#local/lambda-context.js';
import { toSqsRecord } from '#local/event-source.js';
import { emailJobFactory } from '../support/factories.js';
import { type DispatchHarness, useAwsEmulators } from '../support/dispatch-harness.js';
import { storeObject, toReference } from '../support/stored-objects.js';

const env = useAwsEmulators();
let h: DispatchHarness;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('sending a job over SMTP', () => {
  it('delivers a valid job once over STARTTLS with AUTH and publishes email.delivered', async () => {
    // Prepare
    h = await env.harness();
    const job = emailJobFactory({
      to: [{ address: 'alice@example.net', name: 'Alice Ä' }],
      cc: ['carol@example.org'],
      tags: { campaign: 'receipts' },
    });
    await h.enqueue(job);

    // Act
    const result = await h.deliver();

    // Assess
    expect(result).toEqual({ received: 1, succeeded: 1, failed: 0 });
    expect(h.sink.received).toHaveLength(1);
    const received = h.sink.received[0]!;
    expect(received.secure).toBe(true);
    expect(received.user).toBe('relay-user');
    expect(received.to.sort()).toEqual(['alice@example.net', 'carol@example.org']);
    const parsed = await simpleParser(received.raw);
    expect(parsed.messageId).toBe(toMessageId(job.idempotencyKey, 'example.com'));
    expect(parsed.subject).toBe('Your receipt');
    expect(parsed.headers.get('x-dispatch-id')).toBeTruthy();
    const events = await h.events();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      type: 'email.delivered',
      idempotencyKey: job.idempotencyKey,
      providerMessageId: received.queueId,
      tags: { campaign: 'receipts' },
    });
    expect(events[0]?.recipients).toEqual([
      { recipient: 'alice@example.net', status: 'accepted' },
      { recipient: 'carol@example.org', status: 'accepted' },
    ]);
    expect(await h.queueDepth()).toBe(0);
    expect(h.output.metric('Delivered')).toBe(1);
  });

  it('logs recipients only as hashes and never the body', async () => {
    h = await env.harness();
    const job = emailJobFactory({
      to: ['private.person@example.net'],
      subject: 'Secret subject',
      text: 'secret body text',
    });
    await h.enqueue(job);
    await h.deliver();
    const log = h.output.lines.join('\n');
    expect(log).toContain(hashAddress('private.person@example.net'));
    expect(log).not.toContain('private.person@example.net');
    expect(log).not.toContain('secret body text');
    expect(log).not.toContain('Secret subject');
  });
});

describe('exactly once', () => {
  it('sends a job delivered three times and re-produced under a new SQS message id exactly once', async () => {
    // Prepare
    h = await env.harness();
    const job = emailJobFactory();
    for (let i = 0; i < 3; i += 1) {
      await h.enqueue(job);
      await h.deliverAll();
    }
    const reproduced = await h.enqueue({ ...job });

    // Act
    await h.deliverAll();

    // Assess
    expect(reproduced).toBeTruthy();
    expect(h.sink.received).toHaveLength(1);
    expect((await h.events()).filter((e) => e.type === 'email.delivered')).toHaveLength(1);
    expect(h.output.metric('Duplicates')).toBe(3);
    expect(await h.queueDepth()).toBe(0);
  });

  it('refuses the same key with different content: not sent, dead-lettered with the reason, reported', async () => {
    h = await env.harness();
    const job = emailJobFactory();
    await h.enqueue(job);
    await h.deliverAll();
    await h.enqueue({ ...job, subject: 'A different subject' });

    await h.deliverAll();

    expect(h.sink.received).toHaveLength(1);
    const dead = await h.deadLetters();
    expect(dead).toHaveLength(1);
    expect(dead[0]?.attributes).toMatchObject({
      failureClass: 'invalid',
      failureReason: 'idempotency-key-conflict',
      idempotencyKey: job.idempotencyKey,
    });
    const events = await h.events();
    expect(events.map((e) => e.type).sort()).toEqual(['email.delivered', 'email.rejected']);
    expect(events.find((e) => e.type === 'email.rejected')).toMatchObject({ reason: 'idempotency-key-conflict' });
  });

  it('reports a takeover once when the idempotency store is made again on the same client and table', async () => {
    // Prepare: the harness's handler already hooks this client and table; a second store for them replaces the hook.
    h = await env.harness();
    const taken: string[] = [];
    const store = createIdempotencyStore(env.aws.clients.dynamodb, h.resources.idempotencyTable, (recordId) =>
      taken.push(recordId),
    );
    store.configure({ config: new IdempotencyConfig({ eventKeyJmesPath: 'idempotencyKey' }), keyPrefix: 'email-job' });
    const data = { idempotencyKey: 'takeover-1' };
    await store.saveInProgress(data, 1);
    await sleep(20);

    // Act: the first claim has expired, as a crashed attempt's would
    await store.saveInProgress(data, 60_000);

    // Assess
    expect(taken).toEqual([toIdempotencyRecordId('email-job', 'takeover-1')]);
  });

  it('lets a concurrent duplicate wait instead of sending twice', async () => {
    h = await env.harness({ env: { RETRY_BASE_SECONDS: '1', RETRY_MAX_DELAY_SECONDS: '1' } });
    h.sink.addRule({ stage: 'end', delayMs: 400, reply: undefined, times: 1 });
    const job = emailJobFactory();
    await h.enqueue(job);
    await h.enqueue(job);

    const first = await h.deliver(10);
    await sleep(1200);
    await h.deliverAll();

    expect(first.received).toBe(2);
    expect(h.sink.received).toHaveLength(1);
    expect(await h.queueDepth()).toBe(0);
  });
});

describe('bad input', () => {
  it('rejects poison records with a reason, sends the healthy ones once, and lets no injected header or recipient through', async () => {
    // Prepare
    h = await env.harness();
    const healthy = [emailJobFactory({ to: ['one@example.net'] }), emailJobFactory({ to: ['two@example.net'] })];
    const crlf = 'x\r\nBcc: attacker@evil.test';
    const hostile = [
      emailJobFactory({ subject: `Hello${crlf}` }),
      emailJobFactory({ from: { address: 'noreply@example.com', name: `Shop${crlf}` } }),
      emailJobFactory({ to: [{ address: 'alice@example.net', name: `Alice\nBcc: attacker@evil.test` }] }),
      emailJobFactory({ to: ['alice@example.net\r\nBcc: attacker@evil.test'] }),
      emailJobFactory({ cc: ['"attacker@evil.test"@example.net'] }),
      emailJobFactory({ bcc: ['alice@example.net, attacker@evil.test'] }),
      emailJobFactory({ replyTo: [{ address: 'help@example.com', name: `Help\r\nX-Injected: 1` }] }),
      emailJobFactory({ headers: { 'X-Campaign': `spring${crlf}` } }),
      emailJobFactory({ headers: { 'X-Bad\r\nBcc': 'attacker@evil.test' } }),
      emailJobFactory({ headers: { Bcc: 'attacker@evil.test' } }),
      emailJobFactory({ attachments: [{ filename: `a.txt${crlf}`, content: 'aGVsbG8=' }] }),
      emailJobFactory({ attachments: [{ filename: 'a.txt', contentType: `text/plain${crlf}`, content: 'aGVsbG8=' }] }),
      emailJobFactory({ subject: 'Hello =?utf-8?Q?=0D=0ABcc:_attacker@evil.test?=' }),
      emailJobFactory({ subject: 'Line\u2028separator' }),
    ];
    const bodies = [
      '{"version":1,"idempotencyKey":',
      'null',
      JSON.stringify({ version: 1, to: ['a@example.net'], subject: 'no key', text: 'x' }),
      ...hostile.map((j) => JSON.stringify(j)),
    ];
    for (const job of healthy) await h.enqueue(job);
    for (const body of bodies) await h.enqueue(body);

    // Act
    const totals = await h.deliverAll();

    // Assess
    expect(totals.failed).toBe(0);
    expect(h.sink.received.map((m) => m.to).sort()).toEqual([['one@example.net'], ['two@example.net']]);
    for (const message of h.sink.received) {
      const raw = message.raw.toString('utf8');
      expect(raw).not.toMatch(/attacker@evil\.test/);
      expect(raw).not.toMatch(/^X-Injected:/im);
    }
    const dead = await h.deadLetters();
    expect(dead).toHaveLength(bodies.length);
    expect(dead.every((d) => d.attributes.failureClass === 'invalid')).toBe(true);
    expect(dead.find((d) => d.body.startsWith('{"version":1,"idempotencyKey":'))?.attributes.failureReason).toBe(
      'invalid-json',
    );
    const subjectReason = dead.find((d) => d.body === JSON.stringify(hostile[0]))?.attributes;
    expect(subjectReason).toMatchObject({ failureReason: 'invalid-job', idempotencyKey: hostile[0]!.idempotencyKey });
    expect(subjectReason?.failureDetail).toMatch(/^subject: must not contain control characters/);
    expect(dead.find((d) => d.body.includes('"no key"'))?.attributes.failureDetail).toMatch(/idempotencyKey/);
    expect(h.output.metric('InvalidJobs')).toBe(bodies.length);
    expect(await h.queueDepth()).toBe(0);
  });
});

describe('retries', () => {
  it('backs a transient failure off through the visibility timeout, then delivers', async () => {
    // Prepare
    h = await env.harness({ env: { RETRY_BASE_SECONDS: '1', RETRY_MAX_DELAY_SECONDS: '1' } });
    h.sink.addRule({ stage: 'end', reply: { code: 451, message: '4.3.0 Temporary local problem' }, times: 1 });
    await h.enqueue(emailJobFactory());

    // Act
    const first = await h.deliver();
    const tooEarly = await h.deliver();
    await sleep(1300);
    const second = await h.deliver();

    // Assess
    expect(first).toMatchObject({ received: 1, failed: 1 });
    expect(tooEarly.received).toBe(0);
    expect(second).toMatchObject({ received: 1, succeeded: 1 });
    expect(h.sink.received).toHaveLength(1);
    expect(h.output.metric('Retried')).toBe(1);
    const events = await h.events();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'email.delivered', attempts: 2 });
  });

  it('gives a job up once its lifetime is spent: dead-lettered as exhausted and reported as email.failed', async () => {
    h = await env.harness({
      env: { RETRY_BASE_SECONDS: '120', RETRY_MAX_DELAY_SECONDS: '120', RETRY_LIFETIME_SECONDS: '60' },
    });
    h.sink.addRule({ stage: 'rcpt', reply: { code: 450, message: '4.2.1 Mailbox busy' } });
    const job = emailJobFactory();
    await h.enqueue(job);

    const result = await h.deliver();

    expect(result).toMatchObject({ received: 1, succeeded: 1 });
    const dead = await h.deadLetters();
    expect(dead).toHaveLength(1);
    expect(dead[0]?.attributes).toMatchObject({ failureClass: 'exhausted', failureReason: 'retry:smtp-rcpt-450' });
    const events = await h.events();
    expect(events).toEqual([
      expect.objectContaining({ type: 'email.failed', idempotencyKey: job.idempotencyKey, reason: 'smtp-rcpt-450' }),
    ]);
    expect(h.output.metric('Failed')).toBe(1);
  });

  it('gives a job up on its last receive, with its reason, rather than leaving SQS to dead-letter it without one', async () => {
    // Prepare: the relay defers every attempt; the queue allows 3 receives
    h = await env.harness({
      env: { RETRY_BASE_SECONDS: '1', RETRY_MAX_DELAY_SECONDS: '1', MAX_RECEIVE_COUNT: '3' },
    });
    h.sink.addRule({ stage: 'rcpt', reply: { code: 450, message: '4.2.1 Mailbox busy' } });
    const job = emailJobFactory();
    const recordAt = (receive: number) => (h as DispatchHarness).sqsRecord(job, 'last-1', receive);

    // Act
    const second = await h.handler({ Records: [recordAt(2)] }, createLambdaContext('send-email', 30_000));
    const last = await h.handler({ Records: [recordAt(3)] }, createLambdaContext('send-email', 30_000));

    // Assess
    expect(second.batchItemFailures).toEqual([{ itemIdentifier: 'last-1' }]);
    expect(last.batchItemFailures).toEqual([]);
    const dead = await h.deadLetters();
    expect(dead.map((d) => d.attributes)).toEqual([
      expect.objectContaining({
        failureClass: 'exhausted',
        failureReason: 'retry:smtp-rcpt-450',
        idempotencyKey: job.idempotencyKey,
      }),
    ]);
    expect((await h.events()).map((e) => e.type)).toEqual(['email.failed']);
  });

  it('ends a permanent refusal as rejected: not retried, not dead-lettered, reported', async () => {
    h = await env.harness();
    h.sink.addRule({
      stage: 'rcpt',
      reply: { code: 550, message: '5.1.1 <alice@example.net>: Recipient address rejected' },
    });
    const job = emailJobFactory();
    await h.enqueue(job);

    await h.deliverAll();

    expect(h.sink.received).toHaveLength(0);
    expect(await h.deadLetters()).toHaveLength(0);
    const events = await h.events();
    expect(events).toEqual([
      expect.objectContaining({
        type: 'email.rejected',
        reason: 'smtp-rcpt-550',
        detail: '550 5.1.1 <address>: Recipient address rejected',
      }),
    ]);
    expect(await h.queueDepth()).toBe(0);
    // A redelivery of the same job does not try again.
    await h.enqueue(job);
    await h.deliverAll();
    expect(h.output.metric('Duplicates')).toBe(1);
  });
});

describe('our own setup', () => {
  it('treats a refused login as blocked, refetches the secret, and sends once the secret is rotated', async () => {
    // Prepare: the circuit the refusal opens is probed after a second.
    h = await env.harness({
      env: { RETRY_BASE_SECONDS: '1', RETRY_MAX_DELAY_SECONDS: '1', BREAKER_FIRST_PROBE_SECONDS: '1' },
    });
    h.setCredentials({ username: 'relay-user', password: 'stale' });
    await h.enqueue(emailJobFactory());

    // Act
    const first = await h.deliver();
    h.setCredentials({ username: 'relay-user', password: 'relay-pass-1' });
    await sleep(1300);
    const second = await h.deliver();

    // Assess
    expect(first.failed).toBe(1);
    expect(h.output.metric('Blocked')).toBe(1);
    expect(h.credentialFetches).toEqual([false, true]);
    expect(second.succeeded).toBe(1);
    expect(h.sink.received).toHaveLength(1);
  });

  it('sends nothing, not even AUTH, to a server that does not offer STARTTLS', async () => {
    h = await env.harness({ sink: { offerStartTls: false } });
    await h.enqueue(emailJobFactory());

    const result = await h.deliver();

    expect(result.failed).toBe(1);
    expect(h.sink.received).toHaveLength(0);
    expect(h.sink.authAttempts).toHaveLength(0);
    expect(h.output.metric('Blocked')).toBe(1);
  });
});

describe('connections', () => {
  it('sends the next job after the server killed the idle pooled connection', async () => {
    h = await env.harness();
    await h.enqueue(emailJobFactory());
    await h.deliver();
    expect(h.sink.openSockets).toBeGreaterThan(0);

    h.sink.dropConnections();
    await sleep(100);
    await h.enqueue(emailJobFactory());
    const result = await h.deliver();

    expect(result).toMatchObject({ received: 1, succeeded: 1 });
    expect(h.sink.received).toHaveLength(2);
  });
});

describe('suppression', () => {
  it('drops suppressed recipients, and rejects a job whose recipients are all suppressed', async () => {
    h = await env.harness();
    const suppressions = createSuppressionStore(env.aws.clients.documents, h.resources.suppressionTable);
    await suppressions.suppress({ address: 'Gone@Example.net', reason: 'hard-bounce', source: 'test' });
    const partly = emailJobFactory({ to: ['gone@example.net', 'here@example.net'] });
    const wholly = emailJobFactory({ to: ['gone@example.net'] });
    await h.enqueue(partly);
    await h.enqueue(wholly);

    await h.deliverAll();

    expect(h.sink.received.map((m) => m.to)).toEqual([['here@example.net']]);
    const events = await h.events();
    expect(events.find((e) => e.idempotencyKey === partly.idempotencyKey)).toMatchObject({
      type: 'email.delivered',
      recipients: [
        { recipient: 'gone@example.net', status: 'suppressed' },
        { recipient: 'here@example.net', status: 'accepted' },
      ],
    });
    expect(events.find((e) => e.idempotencyKey === wholly.idempotencyKey)).toMatchObject({
      type: 'email.rejected',
      reason: 'all-recipients-suppressed',
    });
  });
});

describe('attachments and claim checks', () => {
  it('attaches inline and S3-stored files, and resolves a job stored in S3', async () => {
    h = await env.harness();
    const pdf = Buffer.alloc(600 * 1024, 7);
    const s3 = await env.aws.clients.s3();
    const report = await storeObject(s3, h.resources.bucket, 'attachments/report.pdf', pdf);
    const job = emailJobFactory({
      attachments: [
        { filename: 'note.txt', contentType: 'text/plain', content: Buffer.from('hello').toString('base64') },
        { filename: 'report.pdf', contentType: 'application/pdf', s3: report },
      ],
    });
    const claimCheck = await storeObject(s3, h.resources.bucket, 'jobs/big.json', JSON.stringify(job));
    await h.enqueue({ version: 1, idempotencyKey: job.idempotencyKey, claimCheck });
    const elsewhere = { ...report, bucket: 'someone-elses-bucket' };
    await h.enqueue(emailJobFactory({ attachments: [{ filename: 'x.pdf', s3: elsewhere }] }));

    await h.deliverAll();

    expect(h.sink.received).toHaveLength(1);
    const parsed = await simpleParser(h.sink.received[0]!.raw);
    expect(parsed.attachments.map((a) => [a.filename, a.size])).toEqual([
      ['note.txt', 5],
      ['report.pdf', pdf.length],
    ]);
    expect((await h.events()).find((e) => e.type === 'email.rejected')).toMatchObject({
      reason: 'reference-outside-tenant',
      detail: "attachments.0.s3.bucket: must be this deployment's bucket",
    });
  });
});

describe('the attachment memory budget', () => {
  it('makes jobs beyond the budget wait their turn; none is refused and every file arrives whole', async () => {
    // Prepare: room for two 1 MiB attachments at a time, five jobs with one each
    h = await env.harness({ env: { ATTACHMENT_MEMORY_MB: '2' } });
    const file = Buffer.alloc(1024 * 1024, 3);
    const s3 = await env.aws.clients.s3();
    const memory = h.deps.dispatch.attachmentMemory as NonNullable<typeof h.deps.dispatch.attachmentMemory>;
    const budget = memory.budget as typeof memory.budget & { held: number };
    let mostHeld = 0;
    memory.budget = {
      acquire: async (bytes) =>
        budget.acquire(bytes).then((release) => ((mostHeld = Math.max(mostHeld, budget.held)), release)),
    };
    for (let i = 0; i < 5; i += 1) {
      const stored = await storeObject(s3, h.resources.bucket, `attachments/budget-${i}.bin`, file);
      await h.enqueue(emailJobFactory({ attachments: [{ filename: `f${i}.bin`, s3: stored }] }));
    }

    // Act
    await h.deliverAll();

    // Assess
    expect(h.sink.received).toHaveLength(5);
    for (const m of h.sink.received) expect((await simpleParser(m.raw)).attachments[0]?.size).toBe(file.length);
    expect(mostHeld).toBe(2 * file.length);
    expect(budget.held).toBe(0);
  });

  it('refuses a job whose attachments add up to more than one message can carry, and one naming a missing file', async () => {
    h = await env.harness();
    const s3 = await env.aws.clients.s3();
    // Five parts of 9 MiB: each within the per-object limit, 45 MiB together
    const part = Buffer.alloc(9 * 1024 * 1024, 1);
    const parts = [];
    for (let i = 0; i < 5; i += 1)
      parts.push(await storeObject(s3, h.resources.bucket, `attachments/part-${i}.bin`, part));
    const tooBig = emailJobFactory({ attachments: parts.map((s3, i) => ({ filename: `${i}.bin`, s3 })) });
    const neverUploaded = toReference(h.resources.bucket, 'tenants/default/attachments/never-uploaded.pdf', 'x');
    const missing = emailJobFactory({ attachments: [{ filename: 'gone.pdf', s3: neverUploaded }] });
    await h.enqueue(tooBig);
    await h.enqueue(missing);

    await h.deliverAll();

    expect(h.sink.received).toHaveLength(0);
    const events = await h.events();
    expect(events.find((e) => e.idempotencyKey === tooBig.idempotencyKey)).toMatchObject({
      type: 'email.rejected',
      reason: 'attachments-too-large',
    });
    expect(events.find((e) => e.idempotencyKey === missing.idempotencyKey)).toMatchObject({
      type: 'email.rejected',
      reason: 'attachment-missing',
    });
    expect(await h.queueDepth()).toBe(0);
  });
});

describe('the Lambda deadline', () => {
  it('hands a record back without an attempt when too little time is left to start one', async () => {
    // Prepare: 5.5 s left, of which the last 5 s commit nothing and an attempt needs 1 s
    h = await env.harness();
    const record = toSqsRecord(
      {
        MessageId: 'm-1',
        ReceiptHandle: 'r-1',
        Body: JSON.stringify(emailJobFactory()),
        Attributes: { ApproximateReceiveCount: '1', SentTimestamp: String(Date.now()) },
      },
      h.resources.jobsQueueArn,
    );

    // Act
    const response = await h.handler({ Records: [record] }, createLambdaContext('send-email', 5500));

    // Assess
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'm-1' }] });
    expect(h.sink.connections).toBe(0);
    expect(h.output.metric('HandedBack')).toBe(1);
  });
});
