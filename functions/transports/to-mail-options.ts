import type { Mailbox } from '#core/email-job.js';
import type { OutgoingMessage } from '#core/mail-transport.js';

type NodemailerAddress = string | { name: string; address: string };

const toNodemailerAddress = (mailbox: Mailbox): NodemailerAddress =>
  typeof mailbox === 'string' ? mailbox : { name: mailbox.name ?? '', address: mailbox.address };

/**
 * Maps a message to nodemailer's mail options. Addresses go as objects (never as strings to be parsed again), and
 * the envelope is set explicitly, so that no header text can add a recipient (a follow-up's names fewer recipients
 * than its headers do).
 */
export function toMailOptions(message: OutgoingMessage) {
  const all = [...message.to, ...message.cc, ...message.bcc];
  return {
    messageId: message.messageId,
    from: toNodemailerAddress(message.from),
    to: message.to.map(toNodemailerAddress),
    cc: message.cc.map(toNodemailerAddress),
    bcc: message.bcc.map(toNodemailerAddress),
    replyTo: message.replyTo.length > 0 ? message.replyTo.map(toNodemailerAddress) : undefined,
    envelope: {
      from: message.envelopeFrom ?? (typeof message.from === 'string' ? message.from : message.from.address),
      to: message.envelopeTo ?? all.map((m) => (typeof m === 'string' ? m : m.address)),
    },
    subject: message.subject,
    date: message.date,
    text: message.text,
    html: message.html,
    headers: message.headers,
    attachments: message.attachments.map((a) => ({
      filename: a.filename,
      contentType: a.contentType,
      content: Buffer.from(a.content.buffer, a.content.byteOffset, a.content.byteLength),
      cid: a.contentId,
    })),
    // Attachments are always bytes we hand over: never let a field be read as a file path or URL.
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}
