import { createHash } from 'node:crypto';
import type { EmailJob } from '#core/email-job.js';

/**
 * A job key as producers make them, a UUID's 36 characters, derived from `name`: every configuration's jobs are the
 * same size, so what their records cost (DynamoDB bills writes by the kilobyte) does not vary with their names.
 */
export function keyFor(name: string): string {
  const hex = createHash('sha256').update(name).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** A typical transactional job: one recipient, a short text and HTML body. */
export function benchJob(key: string, extra: Partial<EmailJob> = {}): EmailJob {
  return {
    version: 1,
    idempotencyKey: key,
    from: 'noreply@example.com',
    to: [`${key.replace(/[^a-z0-9-]/gi, '')}@example.net`],
    subject: 'Your receipt',
    text: 'Thanks for your order. '.repeat(20),
    html: `<p>${'Thanks for your order. '.repeat(20)}</p>`,
    ...extra,
  };
}
