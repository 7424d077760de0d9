import { ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { simpleParser } from 'mailparser';
import { createSuppressionStore } from '#aws/suppression-store.js';
import { createEmailProducer } from '#producer/email-producer.js';
import { redriveDeadLetters } from '#tools/redrive-dead-letters.js';
import { emailJobFactory } from '../support/factories.js';
import { type DispatchHarness, useAwsEmulators } from '../support/dispatch-harness.js';

const env = useAwsEmulators();
let h: DispatchHarness;

/** Two producer services, each with its own credentials: the emulator reports the access key as the SenderId. */
const TENANTS_ENV = {
  TENANT_SENDERS: JSON.stringify({ 'producer-shop': 'shop', 'producer-crm': 'crm' }),
  SYSTEM_SENDERS: 'local',
};

function producerFor(harness: DispatchHarness, accessKeyId: string, tenant: string) {
  const client = {
    region: 'eu-west-1',
    endpoint: env.aws.fauxqs.endpoint,
    credentials: { accessKeyId, secretAccessKey: 'x' },
  };
  return {
    s3: new S3Client({ ...client, forcePathStyle: true }),
    producer: createEmailProducer({
      sqs: new SQSClient(client),
      s3: new S3Client({ ...client, forcePathStyle: true }),
      queueUrl: harness.resources.jobsQueueUrl,
      bucket: harness.resources.bucket,
      tenant,
    }),
  };
}

/** A producer's own SQS client, for messages the producer library would not send: its access key is its SenderId. */
const sqsAs = (accessKeyId: string) =>
  new SQSClient({
    region: 'eu-west-1',
    endpoint: env.aws.fauxqs.endpoint,
    credentials: { accessKeyId, secretAccessKey: 'x' },
  });

/** The operator's redrive (a system sender) of the selected dead letters back to the jobs queue. */
const redrive = (harness: DispatchHarness, only: 'all' | 'transient') =>
  redriveDeadLetters({
    sqs: env.aws.clients.sqsClient,
    deadLetterQueueUrl: harness.resources.deadLetterQueueUrl,
    sourceQueueUrl: harness.resources.jobsQueueUrl,
    only,
  });

/** A job too large for the queue: the producer stores it in S3 and queues only a claim check. */
const largeJob = (to: string) =>
  emailJobFactory({ to: [to], subject: 'Your statement', html: `<p>${'statement line '.repeat(80_000)}</p>` });

describe('one producer against another', () => {
  it('refuses a claim-checked job another producer overwrote before the dispatcher read it: nothing is sent', async () => {
    // Prepare: the shop queues a large job; the crm service learns where it is stored and replaces it with its own
    h = await env.harness({ env: TENANTS_ENV });
    const shop = producerFor(h, 'producer-shop', 'shop');
    const crm = producerFor(h, 'producer-crm', 'crm');
    const victim = largeJob('customer@example.net');
    const sent = await shop.producer.sendEmail(victim);
    expect(sent.claimCheck).toBeDefined();
    const forged = emailJobFactory({
      idempotencyKey: victim.idempotencyKey,
      to: ['harvest@attacker.example'],
      subject: 'Your statement',
      text: 'click here',
    });
    await crm.s3.send(
      new PutObjectCommand({ Bucket: h.resources.bucket, Key: sent.claimCheck?.key, Body: JSON.stringify(forged) }),
    );

    // Act
    await h.deliverAll();

    // Assess: nothing went out; the job is dead-lettered as invalid, naming the claim check
    expect(h.sink.received).toHaveLength(0);
    const dead = await h.deadLetters();
    expect(dead).toHaveLength(1);
    expect(dead[0]?.attributes).toMatchObject({ failureClass: 'invalid', failureReason: 'reference-mismatch' });
    expect(dead[0]?.attributes.failureDetail).toMatch(/^claimCheck: /);
    expect(await h.queueDepth()).toBe(0);
  });

  it("refuses a job that names another producer's claim-checked object as its own attachment: nothing is sent", async () => {
    // Prepare: the shop's large job waits in S3; the crm service attaches that object to a mail to itself
    h = await env.harness({ env: TENANTS_ENV });
    const shop = producerFor(h, 'producer-shop', 'shop');
    const crm = producerFor(h, 'producer-crm', 'crm');
    const sent = await shop.producer.sendEmail(largeJob('customer@example.net'));
    const reference = sent.claimCheck as NonNullable<typeof sent.claimCheck>;
    await h.deliverAll();
    h.sink.received.length = 0;
    await crm.producer.sendEmail(
      emailJobFactory({
        to: ['harvest@attacker.example'],
        attachments: [{ filename: 'loot.json', s3: reference }],
      }),
    );

    // Act
    await h.deliverAll();

    // Assess
    expect(h.sink.received).toHaveLength(0);
    const dead = await h.deadLetters();
    expect(dead).toHaveLength(1);
    expect(dead[0]?.attributes).toMatchObject({ failureClass: 'invalid', failureReason: 'reference-outside-tenant' });
    expect(dead[0]?.attributes.failureDetail).toMatch(/^attachments\.0\.s3\.key: /);
  });
  it('refuses a claim check whose key is not a key (a space, another scope), publishing nothing under it', async () => {
    // Prepare: the crm service queues a claim check by hand, its key shaped as the shop's scoped key
    h = await env.harness({ env: TENANTS_ENV });
    const crm = sqsAs('producer-crm');
    const claimCheck = { bucket: h.resources.bucket, key: 'tenants/crm/jobs/x', size: 1, sha256: `${'A'.repeat(43)}=` };
    for (const idempotencyKey of ['shop order-4711', 'k'.repeat(5000)])
      await crm.send(
        new SendMessageCommand({
          QueueUrl: h.resources.jobsQueueUrl,
          MessageBody: JSON.stringify({ version: 1, idempotencyKey, claimCheck }),
          MessageAttributes: { tenant: { DataType: 'String', StringValue: 'crm' } },
        }),
      );

    // Act
    await h.deliverAll();

    // Assess: both invalid, naming the key; no event carries either key
    expect(h.sink.received).toHaveLength(0);
    const dead = (await h.deadLetters()).map((d) => d.attributes);
    expect(dead.map((a) => a.failureReason)).toEqual(['invalid-job', 'invalid-job']);
    for (const a of dead) expect(a.failureDetail).toMatch(/idempotencyKey/);
    expect(await h.events()).toEqual([]);
  });
});

describe('objects replaced after the job was queued', () => {
  it('rejects a job whose attachment is no longer the object its reference describes, naming it; nothing is sent', async () => {
    // Prepare: the shop's job with a large attachment, then the object is replaced (same key, other bytes)
    h = await env.harness({ env: TENANTS_ENV });
    const shop = producerFor(h, 'producer-shop', 'shop');
    const file = Buffer.alloc(600 * 1024, 1);
    const job = emailJobFactory({ attachments: [{ filename: 'terms.pdf', content: file.toString('base64') }] });
    await shop.producer.sendEmail(job);
    const listed = await shop.s3.send(
      new ListObjectsV2Command({ Bucket: h.resources.bucket, Prefix: 'tenants/shop/attachments/' }),
    );
    const key = listed.Contents?.[0]?.Key;
    expect(key).toMatch(/^tenants\/shop\/attachments\/[0-9a-f-]{36}\/0-terms\.pdf$/);
    await shop.s3.send(
      new PutObjectCommand({ Bucket: h.resources.bucket, Key: key, Body: Buffer.alloc(600 * 1024, 2) }),
    );

    // Act
    await h.deliverAll();

    // Assess
    expect(h.sink.received).toHaveLength(0);
    expect(await h.events()).toMatchObject([
      {
        type: 'email.rejected',
        tenant: 'shop',
        reason: 'reference-mismatch',
        detail: expect.stringMatching(/^attachments\.0\.s3: /),
      },
    ]);
  });
});

describe('who a job belongs to', () => {
  it('arrives with its sender, its tenant attribute and its tenant as message group', async () => {
    // Prepare
    h = await env.harness({ env: TENANTS_ENV });
    await producerFor(h, 'producer-shop', 'shop').producer.sendEmail(emailJobFactory());

    // Act
    const received = await env.aws.clients.sqsClient.send(
      new ReceiveMessageCommand({
        QueueUrl: h.resources.jobsQueueUrl,
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
        VisibilityTimeout: 0,
      }),
    );

    // Assess
    const [message] = received.Messages ?? [];
    expect(message?.Attributes).toMatchObject({ SenderId: 'producer-shop', MessageGroupId: 'shop' });
    expect(message?.MessageAttributes?.tenant?.StringValue).toBe('shop');
  });

  it("sends two tenants' jobs with the same idempotency key, each once, as two messages", async () => {
    // Prepare: both services use their own order number 4711, with different content
    h = await env.harness({ env: TENANTS_ENV });
    const shop = producerFor(h, 'producer-shop', 'shop').producer;
    const crm = producerFor(h, 'producer-crm', 'crm').producer;
    const shopJob = emailJobFactory({ idempotencyKey: 'order-4711', to: ['a@example.net'], subject: 'Receipt' });
    const crmJob = emailJobFactory({ idempotencyKey: 'order-4711', to: ['b@example.net'], subject: 'Survey' });

    // Act: each is produced twice
    for (let round = 0; round < 2; round += 1) {
      await shop.sendEmail(shopJob);
      await crm.sendEmail(crmJob);
      await h.deliverAll();
    }

    // Assess
    expect(h.sink.received.map((m) => m.to).sort()).toEqual([['a@example.net'], ['b@example.net']]);
    const ids = await Promise.all(h.sink.received.map(async (m) => (await simpleParser(m.raw)).messageId));
    expect(new Set(ids).size).toBe(2);
    const events = await h.events();
    const delivered = events.filter((e) => e.type === 'email.delivered');
    expect(delivered.map((e) => [e.tenant, e.idempotencyKey]).sort()).toEqual([
      ['crm', 'order-4711'],
      ['shop', 'order-4711'],
    ]);
    expect(events.filter((e) => e.type === 'email.rejected')).toEqual([]);
    expect(h.output.metric('Duplicates')).toBe(2);
    expect([h.output.metric('Delivered', 'shop'), h.output.metric('Delivered', 'crm')]).toEqual([1, 1]);
    expect(h.output.metric('Delivered')).toBe(2);
  });

  it('refuses a job whose tenant its sender was not granted, and one from a sender granted nothing', async () => {
    // Prepare: the crm service claims to be the shop; a stranger's credentials were never granted
    h = await env.harness({ env: TENANTS_ENV });
    await producerFor(h, 'producer-crm', 'shop').producer.sendEmail(emailJobFactory());
    await producerFor(h, 'stranger', 'shop').producer.sendEmail(emailJobFactory());

    // Act
    await h.deliverAll();

    // Assess
    expect(h.sink.received).toHaveLength(0);
    const dead = (await h.deadLetters()).map((d) => d.attributes);
    expect(dead.map((a) => a.failureReason).sort()).toEqual(['tenant-mismatch', 'unknown-sender']);
    const mismatch = dead.find((a) => a.failureReason === 'tenant-mismatch');
    expect(mismatch?.failureDetail).toMatch(/^messageAttributes\.tenant: .*"shop".*granted tenant "crm"/);
    // The dead letter carries the sender's own tenant, never the one it claimed.
    expect(mismatch?.tenant).toBe('crm');
    expect(dead.find((a) => a.failureReason === 'unknown-sender')?.tenant).toBeUndefined();
    expect(h.output.metric('TenantRefused')).toBe(2);
    expect(await h.queueDepth()).toBe(0);
  });

  it("refuses a job sent in another tenant's message group (its fair share), naming the group", async () => {
    // Prepare: the crm service claims its own tenant but queues in the shop's group, where its backlog would count
    // against the shop's share of the fair queue
    h = await env.harness({ env: TENANTS_ENV });
    const crm = sqsAs('producer-crm');
    await crm.send(
      new SendMessageCommand({
        QueueUrl: h.resources.jobsQueueUrl,
        MessageBody: JSON.stringify(emailJobFactory()),
        MessageAttributes: { tenant: { DataType: 'String', StringValue: 'crm' } },
        MessageGroupId: 'shop',
      }),
    );

    // Act
    await h.deliverAll();

    // Assess
    expect(h.sink.received).toHaveLength(0);
    const dead = (await h.deadLetters()).map((d) => d.attributes);
    expect(dead).toMatchObject([{ failureReason: 'group-mismatch', tenant: 'crm' }]);
    expect(dead[0]?.failureDetail).toMatch(/^attributes\.MessageGroupId: .*"shop".*"crm"/);
  });

  it('keeps the tenant a dead letter was checked to be when an operator redrives it', async () => {
    // Prepare: a shop job refused for an attachment outside its prefix, dead-lettered with its tenant
    h = await env.harness({ env: TENANTS_ENV });
    const shop = producerFor(h, 'producer-shop', 'shop');
    const elsewhere = { bucket: h.resources.bucket, key: 'tenants/crm/x', size: 1, sha256: `${'A'.repeat(43)}=` };
    const job = emailJobFactory({ attachments: [{ filename: 'x.txt', s3: elsewhere }] });
    await shop.producer.sendEmail(job);
    await h.deliverAll();
    expect((await h.events()).map((e) => e.tenant)).toEqual(['shop']);

    // Act: the operator's redrive (a system sender) moves it back; the dispatcher reads it again
    const report = await redrive(h, 'all');
    await h.deliverAll();

    // Assess: it came back as the shop's job (refused again for the same reason, under the same tenant)
    expect(report.moved).toBe(1);
    const events = await h.events();
    expect(events).toMatchObject([{ type: 'email.rejected', tenant: 'shop', reason: 'reference-outside-tenant' }]);
    expect((await h.deadLetters())[0]?.attributes.tenant).toBe('shop');
  });
  it('never redrives a job refused for its sender or its tenant claim as the default tenant: nothing is sent', async () => {
    // Prepare: a principal granted nothing, and the crm service with a malformed claim; both refused, dead-lettered
    h = await env.harness({ env: TENANTS_ENV });
    await producerFor(h, 'stranger', 'shop').producer.sendEmail(emailJobFactory({ to: ['a@attacker.example'] }));
    const crm = sqsAs('producer-crm');
    await crm.send(
      new SendMessageCommand({
        QueueUrl: h.resources.jobsQueueUrl,
        MessageBody: JSON.stringify(emailJobFactory({ to: ['b@attacker.example'] })),
        MessageAttributes: { tenant: { DataType: 'String', StringValue: 'Default' } },
      }),
    );
    await h.deliverAll();
    expect(h.sink.received).toHaveLength(0);

    // Act: an operator redrives every dead letter
    const report = await redrive(h, 'all');
    await h.deliverAll();

    // Assess: neither went out as anyone's job; both stay dead letters, for an operator to read
    expect(h.sink.received).toHaveLength(0);
    expect((await h.events()).filter((e) => e.type === 'email.delivered')).toEqual([]);
    expect(report).toMatchObject({ moved: 0, left: 2 });
    expect(report.byReason).toEqual({ 'invalid: unknown-sender': 1, 'invalid: invalid-tenant': 1 });
  });
  it("checks a crashed dead letter's claim against its own sender when it is redriven: nothing is sent", async () => {
    // Prepare: a crm message claiming to be the shop's that SQS moved to the DLQ as sent (maxReceiveCount reached
    // without the handler answering for it): sent here straight to the DLQ with the crm's credentials, as SQS keeps
    // the message, its attributes and its SenderId when it moves it
    h = await env.harness({ env: TENANTS_ENV });
    const crm = sqsAs('producer-crm');
    await crm.send(
      new SendMessageCommand({
        QueueUrl: h.resources.deadLetterQueueUrl,
        MessageBody: JSON.stringify(emailJobFactory({ to: ['b@attacker.example'] })),
        MessageAttributes: {
          tenant: { DataType: 'String', StringValue: 'shop' },
          redrivenSender: { DataType: 'String', StringValue: 'local' },
        },
      }),
    );

    // Act: the operator's redrive moves crashed messages back (its default selection)
    const report = await redrive(h, 'transient');
    await h.deliverAll();

    // Assess: refused as the crm's claim to be the shop, not sent as the shop's
    expect(report.moved).toBe(1);
    expect(h.sink.received).toHaveLength(0);
    const dead = (await h.deadLetters()).map((d) => d.attributes);
    expect(dead).toMatchObject([{ failureReason: 'tenant-mismatch', tenant: 'crm' }]);
  });
});

describe("a tenant's suppressions", () => {
  it("stops that tenant's mail to an address that complained about it, and no one else's", async () => {
    // Prepare: the address complained about the shop's mail
    h = await env.harness({ env: TENANTS_ENV });
    const store = createSuppressionStore(env.aws.clients.documents, h.resources.suppressionTable);
    const address = 'annoyed@example.net';
    await store.suppress({ address, reason: 'complaint', source: 'arf:test', tenant: 'shop' });
    await producerFor(h, 'producer-shop', 'shop').producer.sendEmail(emailJobFactory({ to: [address] }));
    await producerFor(h, 'producer-crm', 'crm').producer.sendEmail(emailJobFactory({ to: [address] }));

    // Act
    await h.deliverAll();

    // Assess
    expect(h.sink.received).toHaveLength(1);
    const events = await h.events();
    expect(events.find((e) => e.tenant === 'shop')).toMatchObject({
      type: 'email.rejected',
      reason: 'all-recipients-suppressed',
    });
    expect(events.find((e) => e.tenant === 'crm')).toMatchObject({ type: 'email.delivered' });
  });
});
