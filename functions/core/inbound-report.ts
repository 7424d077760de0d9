/**
 * What the poller knows of an inbound message and how it was read: the shapes the inbound reader (functions/inbound)
 * produces and the mailbox sync, report verification and the SES event path consume. Plain data and one port.
 */

/**
 * Why a recipient's delivery failed, in one taxonomy for every source (RFC 3464 reports, plain-text bounces, SES):
 * read from the enhanced status (RFC 3463), the SMTP reply code and the diagnostic text together.
 */
export const BounceReasons = [
  'user-unknown',
  'mailbox-full',
  'host-unknown',
  'mailbox-disabled',
  'message-too-large',
  'spam-or-content',
  'policy-or-blocked',
  'rate-limited',
  'sender-problem',
  'expired',
  'temporary-other',
  'unknown',
] as const;
export type BounceReason = (typeof BounceReasons)[number];

/** One MIME part of an inbound message: its type, and its text when it is text or a report (else empty). */
export type InboundPart = {
  contentType: string;
  /** Decoded text (HTML reduced to text); the raw message for an attached message; empty for other parts. */
  content: string;
  /** Inside an attached message (the returned original), not part of the report itself. */
  embedded?: boolean;
};

/**
 * An inbound message reduced to what classification needs, by the parser. Plain data. Header names are lowercase;
 * `parts` are the MIME parts in tree order.
 */
export type InboundMessage = {
  messageId?: string;
  from?: string;
  to: string[];
  /** Where the message was delivered: Delivered-To, X-Original-To, Envelope-To, then To, deduplicated. */
  envelopeTo: string[];
  subject?: string;
  date?: Date;
  headers: Record<string, string>;
  /** Top-level content type, lowercase, without parameters, e.g. `multipart/report`. */
  contentType: string;
  /** The `report-type` parameter of a multipart/report. */
  reportType?: string;
  parts: InboundPart[];
};

/** One recipient of a bounce or delay report, with why it failed and what that means for it. */
export type DsnRecipient = {
  /** The address we sent to (Original-Recipient when the report gives it, else Final-Recipient or the listed one). */
  recipient: string;
  action: 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';
  /** RFC 3463 enhanced status, e.g. `5.1.1`, when the report gives one. */
  status?: string;
  /** SMTP reply code, e.g. 550, when the report gives one. */
  replyCode?: number;
  /** The diagnostic text (the remote server's reply or the MTA's explanation). */
  diagnosticCode?: string;
  remoteMta?: string;
  reason: BounceReason;
  /** The failure is permanent (5.x.x / 5xx, or said to be): sending again will fail again. */
  permanent: boolean;
  /** The recipient's own permanent failure (user-unknown, mailbox-disabled): the address is to be suppressed. */
  suppress: boolean;
};

/** What the original message was, as the report quotes it: our Message-ID and dispatch id tie it to a job. */
export type OriginalMessage = {
  /** The Message-ID of the quoted original headers. */
  messageId?: string;
  dispatchId?: string;
  /**
   * Every Message-ID the report carries for the original: quoted headers, Message-ID lines quoted in the text,
   * Original-Message-ID, and the report's own In-Reply-To and References; deduplicated, in that order.
   */
  messageIds: string[];
};

export type InboundClassification =
  | { kind: 'bounce'; format: string; reportingMta?: string; recipients: DsnRecipient[]; original: OriginalMessage }
  | { kind: 'delay'; format: string; reportingMta?: string; recipients: DsnRecipient[]; original: OriginalMessage }
  | { kind: 'complaint'; feedbackType: string; recipients: string[]; suppress: boolean; original: OriginalMessage }
  | { kind: 'auto-reply'; reason: string }
  | { kind: 'message'; note?: string };

/** Why one recipient failed and what that means for it, from the facts a report gives. */
export type FailureFacts = {
  action: 'failed' | 'delayed';
  status?: string;
  replyCode?: number;
  diagnosticCode?: string;
  /** What the report as a whole says, when the recipient's own fields do not: "failed permanently", "will retry". */
  permanentHint?: boolean;
};

export type FailureVerdict = { reason: BounceReason; permanent: boolean; suppress: boolean };

/** Reads inbound mail: the port the mailbox sync uses, implemented in functions/inbound. */
export interface InboundReader {
  /** What a parsed message is: bounce, delay, complaint, auto-reply or mail. */
  classify(message: InboundMessage): InboundClassification;
  /** What a log line may say about a bounce or delay report (addresses masked); undefined for other kinds. */
  logFacts(classification: InboundClassification): Record<string, unknown> | undefined;
  /** Whether a bounce or delay report blames our side (sender, policy, rate, content). */
  blamesUs(classification: InboundClassification): boolean;
}
