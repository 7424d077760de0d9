import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { createEmailProducer } from '#producer/email-producer.js';
import { emailJobFactory } from '../../support/factories.js';

/** Clients that record what they were asked to do (the requests' inputs), answering as SQS and S3 would. */
function recordingClients() {
  const sqsInputs: Array<Record<string, unknown>> = [];
  const s3Inputs: Array<Record<string, unknown>> = [];
  const sqs = {
    send: async (command: { input: Record<string, unknown> }) => {
      sqsInputs.push(command.input);
      const entries = (command.input.Entries as Array<{ Id: string }> | undefined) ?? [];
      return { MessageId: 'm-1', Successful: entries.map((e) => ({ Id: e.Id, MessageId: `m-${e.Id}` })) };
    },
  };
  const s3 = {
    send: async (command: { input: Record<string, unknown> }) => {
      s3Inputs.push(command.input);
      return {};
    },
  };
  return { sqs: sqs as unknown as SQSClient, s3: s3 as unknown as S3Client, sqsInputs, s3Inputs };
}

describe('the producer as a tenant', () => {
  it('sends each job with its tenant as message group (fair queues) and as the tenant attribute', async () => {
    const clients = recordingClients();
    const producer = createEmailProducer({ ...clients, queueUrl: 'q', bucket: 'dispatch-bucket', tenant: 'shop' });

    await producer.sendEmail(emailJobFactory());
    await producer.sendEmails([emailJobFactory(), emailJobFactory()]);

    const tenancy = {
      MessageGroupId: 'shop',
      MessageAttributes: { tenant: { DataType: 'String', StringValue: 'shop' } },
    };
    expect(clients.sqsInputs[0]).toMatchObject(tenancy);
    expect(clients.sqsInputs[1]?.Entries).toEqual([expect.objectContaining(tenancy), expect.objectContaining(tenancy)]);
  });

  it('sends as the default tenant without the option, and refuses a tenant name no prefix could hold', () => {
    const clients = recordingClients();
    expect(() => createEmailProducer({ ...clients, queueUrl: 'q', tenant: 'Shop/../crm' })).toThrow(/^tenant: /);
    expect(() => createEmailProducer({ ...clients, queueUrl: 'q' })).not.toThrow();
  });

  it('stores large content under the tenant prefix with random names, and references it with size and SHA-256', async () => {
    const clients = recordingClients();
    const producer = createEmailProducer({ ...clients, queueUrl: 'q', bucket: 'dispatch-bucket', tenant: 'shop' });
    const file = Buffer.alloc(600 * 1024, 9);
    const job = emailJobFactory({ attachments: [{ filename: 'r.pdf', content: file.toString('base64') }] });

    await producer.sendEmail(job);
    await producer.sendEmail(job);

    const keys = clients.s3Inputs.map((input) => input.Key as string);
    expect(keys).toHaveLength(2);
    for (const key of keys) expect(key).toMatch(/^tenants\/shop\/attachments\/[0-9a-f-]{36}\/0-r\.pdf$/);
    expect(keys[0]).not.toBe(keys[1]);
    const digest = createHash('sha256').update(file).digest('base64');
    expect(clients.s3Inputs[0]).toMatchObject({ ChecksumSHA256: digest });
    const body = JSON.parse(clients.sqsInputs[0]?.MessageBody as string);
    expect(body.attachments[0].s3).toEqual({
      bucket: 'dispatch-bucket',
      key: keys[0],
      size: file.byteLength,
      sha256: digest,
    });
  });
});
