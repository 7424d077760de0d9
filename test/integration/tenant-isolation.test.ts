import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createEmailProducer } from '#producer/email-producer.js';
import { emailJobFactory } from '../support/factories.js';
import {
  startAwsEmulators,
  startDispatchHarness,
  type AwsEmulators,
  type DispatchHarness,
} from '../support/dispatch-harness.js';

let aws: AwsEmulators;
let h: DispatchHarness;

beforeAll(async () => {
  aws = await startAwsEmulators();
});
afterAll(async () => {
  await aws.stop();
});
afterEach(async () => {
  await h?.stop();
});

/** Two producer services, each with its own credentials: the emulator reports the access key as the SenderId. */
const TENANTS_ENV = {
  TENANT_SENDERS: JSON.stringify({ 'producer-shop': 'shop', 'producer-crm': 'crm' }),
  SYSTEM_SENDERS: 'local',
};

function producerFor(harness: DispatchHarness, accessKeyId: string, tenant: string) {
  const client = {
    region: 'eu-west-1',
    endpoint: aws.fauxqs.endpoint,
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

/** A job too large for the queue: the producer stores it in S3 and queues only a claim check. */
const largeJob = (to: string) =>
  emailJobFactory({ to: [to], subject: 'Your statement', html: `<p>${'statement line '.repeat(80_000)}</p>` });

describe('one producer against another', () => {
  it('refuses a claim-checked job another producer overwrote before the dispatcher read it: nothing is sent', async () => {
    // Prepare: the shop queues a large job; the crm service learns where it is stored and replaces it with its own
    h = await startDispatchHarness(aws, { env: TENANTS_ENV });
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
    h = await startDispatchHarness(aws, { env: TENANTS_ENV });
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
});
