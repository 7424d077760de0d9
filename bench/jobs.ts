import type { EmailJob } from '#core/email-job.js';

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
