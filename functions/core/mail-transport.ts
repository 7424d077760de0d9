import type { SendBudget } from './attempt-budget.js';
import type { Mailbox, TransportName } from './email-job.js';

/** A message ready to hand to a provider: recipients filtered, Message-ID fixed, attachments loaded. */
export type OutgoingMessage = {
  messageId: string;
  from: Mailbox;
  /** The SMTP envelope sender (MAIL FROM), where bounces go: a VERP address. @default the from address */
  envelopeFrom?: string;
  /** The envelope recipients (RCPT TO): the to, cc and bcc addresses, or fewer for a follow-up. @default all of them */
  envelopeTo?: string[];
  to: Mailbox[];
  cc: Mailbox[];
  bcc: Mailbox[];
  replyTo: Mailbox[];
  subject: string;
  /** The Date header. @default the time of the send */
  date?: Date;
  text?: string;
  html?: string;
  headers: Record<string, string>;
  attachments: Array<{ filename: string; contentType?: string; content: Uint8Array; contentId?: string }>;
  tags: Record<string, string>;
};

/** What the provider said when it took the message. */
export type SendReceipt = {
  /** The provider's id: the SMTP server's queue id from its final reply, or SES's MessageId. */
  providerMessageId?: string;
  accepted: string[];
  /** Recipients refused while others were accepted (a partial rejection is a success with this list). */
  rejected: Array<{ recipient: string; responseCode?: number; response?: string }>;
};

/**
 * The one interface both providers sit behind. `send` resolves with a receipt or throws a `TransportError` whose
 * `failure` the core classifier understands. With a `budget`, nothing is committed (SMTP's final '.', the SES
 * request) once `budget.signal` has aborted — the send then throws `AttemptAbortedError` — and the answer to a
 * committed send is waited for until `budget.finishSignal` aborts (then it is an ambiguous failure).
 */
export interface MailTransport {
  readonly name: TransportName;
  /** The server takes UTF-8 addresses (SMTPUTF8, RFC 6531); without it a non-ASCII local part is refused. */
  readonly smtpUtf8?: boolean;
  send(message: OutgoingMessage, budget?: SendBudget): Promise<SendReceipt>;
  /** Closes pooled connections; the transport may be used again afterwards (it reconnects). */
  close(): Promise<void>;
}
