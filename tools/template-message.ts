import MailComposer from 'nodemailer/lib/mail-composer';
import { dispatchJob } from '#core/dispatch-job.js';
import type { EmailJob } from '#core/email-job.js';
import type { MailTransport } from '#core/mail-transport.js';
import { toMailOptions } from '#transports/to-mail-options.js';

/**
 * The whole MIME message a rendered job becomes: built by the dispatcher's own code (dispatchJob: Message-ID from
 * the key, X-Dispatch-Id, international addresses) and composed by nodemailer's MailComposer from the mail options
 * the SMTP and SES transports hand to nodemailer. Only what a deployment adds is missing: its report token in the
 * Message-ID and the VERP envelope sender.
 */
export async function composeMessage(job: EmailJob, options: { messageIdDomain: string }): Promise<Buffer> {
  let raw: Buffer | undefined;
  const file: MailTransport = {
    name: 'smtp',
    async send(message) {
      raw = await new MailComposer(toMailOptions(message)).compile().build();
      return { accepted: [], rejected: [] };
    },
    close: async () => {},
  };
  const outcome = await dispatchJob(job, {
    transports: { smtp: file },
    defaultTransport: 'smtp',
    suppressions: { findSuppressed: async () => new Set() },
    loadAttachment: () => Promise.reject(new Error('attachments by S3 reference are not read here')),
    messageIdDomain: options.messageIdDomain,
  });
  if (!raw)
    throw new Error(`the message was not built: ${outcome.reason}${outcome.detail ? `: ${outcome.detail}` : ''}`);
  return raw;
}
