import type { SQSClient } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { createEmailProducer, InvalidEmailJobError } from '#producer/email-producer.js';
import { loadTemplates, validateTemplateData } from '#producer/template-data.js';
import { orderReceiptData, templateJobFactory } from '../../support/factories.js';

/** An SQS client that keeps what it was asked to send and answers with a message id. */
function recordingSqs() {
  const bodies: string[] = [];
  const client = {
    send: async (command: {
      input: { MessageBody?: string; Entries?: Array<{ Id: string; MessageBody: string }> };
    }) => {
      const entries = command.input.Entries ?? [{ Id: '0', MessageBody: command.input.MessageBody ?? '' }];
      bodies.push(...entries.map((e) => e.MessageBody));
      const Successful = entries.map((e) => ({ Id: e.Id, MessageId: `m-${e.Id}` }));
      return { MessageId: 'm-0', Successful };
    },
  };
  return { client: client as unknown as SQSClient, bodies };
}

describe('checking template data before a job is queued', () => {
  it('refuses data against the template schema with the field path, and queues nothing', async () => {
    const sqs = recordingSqs();
    const producer = createEmailProducer({ sqs: sqs.client, queueUrl: 'q', templates: 'templates' });
    const data = orderReceiptData();
    const job = templateJobFactory({ name: 'order-receipt', data: { ...data, order: { ...data.order, total: '31' } } });

    const sending = producer.sendEmail(job);

    await expect(sending).rejects.toBeInstanceOf(InvalidEmailJobError);
    await expect(sending).rejects.toThrow('invalid email job: template.data.order.total: must be number');
    expect(sqs.bodies).toEqual([]);
  });

  it('queues a job whose data renders, unchanged', async () => {
    const sqs = recordingSqs();
    const producer = createEmailProducer({ sqs: sqs.client, queueUrl: 'q', templates: loadTemplates('templates') });
    const job = templateJobFactory({ name: 'order-receipt', data: orderReceiptData() });

    const sent = await producer.sendEmail(job);

    expect(sent.idempotencyKey).toBe(job.idempotencyKey);
    expect(sqs.bodies.map((b) => JSON.parse(b))).toEqual([job]);
  });

  it('reports each bad job of a batch, sending the rest', async () => {
    const sqs = recordingSqs();
    const producer = createEmailProducer({ sqs: sqs.client, queueUrl: 'q', templates: 'templates' });
    const good = templateJobFactory({ name: 'order-receipt', data: orderReceiptData() });
    const unknown = templateJobFactory({ name: 'invoice', data: {} });

    const { sent, failed } = await producer.sendEmails([good, unknown]);

    expect(sent.map((s) => s.idempotencyKey)).toEqual([good.idempotencyKey]);
    expect(failed).toEqual([
      {
        index: 1,
        idempotencyKey: unknown.idempotencyKey,
        reason: expect.stringContaining('template.name: no template "invoice" is deployed'),
        retryable: false,
      },
    ]);
  });

  it('checks a reference on its own, as the dispatcher will render it', async () => {
    const templates = loadTemplates('templates');
    const data = { name: 'Ann', product: 'Books', resetUrl: 'http://insecure.example/r', expiresInMinutes: 30 };

    const checking = validateTemplateData(templates, { name: 'password-reset', data });

    await expect(checking).rejects.toThrow('template.data.resetUrl: must match pattern "^https://"');
  });
});
