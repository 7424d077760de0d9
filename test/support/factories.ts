import { randomUUID } from 'node:crypto';
import type { EmailJob } from '#core/email-job.js';

/** A valid job; override any field. */
export function emailJobFactory(overrides: Partial<EmailJob> = {}): EmailJob {
  return {
    version: 1,
    idempotencyKey: `job-${randomUUID()}`,
    from: 'noreply@example.com',
    to: ['alice@example.net'],
    subject: 'Your receipt',
    text: 'Thanks for your order.',
    ...overrides,
  };
}

type OrderReceiptData = {
  brand: { name: string; address: string };
  customer: { name: string };
  order: {
    number: string;
    items: Array<{ title: string; quantity: number; price: string }>;
    total: number;
    currency: string;
    url: string;
    note?: string;
  };
};

/** Data for templates/order-receipt that matches its schema; override any top-level part. */
export function orderReceiptData(overrides: Partial<OrderReceiptData> = {}): OrderReceiptData {
  return {
    brand: { name: 'Example Shöp', address: '1 Market Street, Springfield' },
    customer: { name: 'Alice' },
    order: {
      number: 'A-4711',
      items: [
        { title: 'Green tea', quantity: 2, price: '3.50' },
        { title: 'Teapot', quantity: 1, price: '24.00' },
      ],
      total: 31,
      currency: 'EUR',
      url: 'https://shop.example.com/orders/A-4711',
    },
    ...overrides,
  };
}

/** A job rendered from a template instead of subject, text and html. */
export function templateJobFactory(template: NonNullable<EmailJob['template']>, overrides: Partial<EmailJob> = {}) {
  const { subject: _subject, text: _text, ...job } = emailJobFactory(overrides);
  return { ...job, template } satisfies EmailJob;
}
