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
