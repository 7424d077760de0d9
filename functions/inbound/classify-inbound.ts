import { BOUNCE_SENDERS, BOUNCE_SUBJECTS, CHALLENGE_PHRASES } from './bounce-families.js';
import type { DsnRecipient, InboundClassification, InboundMessage, OriginalMessage } from '#core/inbound-report.js';
import { classifyFailure } from './bounce-reasons.js';
import { parseFieldBlocks, readDeliveryStatus, type StatusBlock } from './delivery-status.js';
import {
  addressOf,
  containsAny,
  enhancedStatusIn,
  findAddresses,
  linesOf,
  messageIdsIn,
  replyCodeIn,
} from './mail-text.js';
import { readTextBounce, type TextBounce } from './text-bounce.js';

export type {
  InboundClassification,
  InboundMessage,
  InboundPart,
} from '#core/inbound-report.js';

/** message/delivery-status, message/global-delivery-status, and misspellings such as message/xdelivery-status. */
const isDeliveryStatus = (contentType: string) =>
  contentType.startsWith('message/') && contentType.endsWith('delivery-status');
const QUOTED_HEADERS = new Set([
  'text/rfc822-headers',
  'message/rfc822-headers',
  'message/global-headers',
  'message/rfc822',
  'message/global',
]);

/** The header block of a quoted message or header part, as fields. */
const quotedFields = (content: string): Record<string, string> => {
  const blank = /\r?\n\r?\n/.exec(content.slice(0, 256 * 1024));
  return parseFieldBlocks(blank ? content.slice(0, blank.index) : content)[0] ?? {};
};

const DISPATCH_ID = /^[a-f0-9]{32}$/;
/** The most Message-IDs a report's evidence keeps. */
const MAX_MESSAGE_IDS = 64;

function originalOf(message: InboundMessage, extraIds: string[] = []): OriginalMessage {
  const ids: string[] = [];
  let messageId: string | undefined;
  let dispatchId: string | undefined;
  for (const part of message.parts) {
    if (part.embedded || !QUOTED_HEADERS.has(part.contentType)) continue;
    const fields = quotedFields(part.content);
    const id = messageIdsIn(fields['message-id'] ?? '')[0];
    if (id) ids.push(id);
    messageId ??= id;
    const dispatch = fields['x-dispatch-id']?.trim().toLowerCase();
    if (dispatch && DISPATCH_ID.test(dispatch)) dispatchId ??= dispatch;
  }
  // Headers of the original quoted inline in a plain-text bounce.
  for (const part of message.parts) {
    if (part.embedded || !part.contentType.startsWith('text/') || part.contentType === 'text/rfc822-headers') continue;
    for (const line of linesOf(part.content)) {
      const trimmed = line.replace(/^[\s>]+/, '');
      const colon = trimmed.indexOf(':');
      const name = colon > 0 ? trimmed.slice(0, colon).toLowerCase() : '';
      const value = trimmed.slice(colon + 1).trim();
      if (name === 'message-id' || name === 'original-message-id') ids.push(...messageIdsIn(value));
      if (name === 'x-dispatch-id' && DISPATCH_ID.test(value.toLowerCase())) dispatchId ??= value.toLowerCase();
    }
  }
  ids.push(
    ...extraIds,
    ...messageIdsIn(message.headers['in-reply-to'] ?? ''),
    ...messageIdsIn(message.headers.references ?? ''),
  );
  // Hostile input is bounded: a report names its original once or twice, not thousands of times.
  const messageIds = [...new Set(ids)].filter((id) => id !== message.messageId).slice(0, MAX_MESSAGE_IDS);
  return { messageId, dispatchId, messageIds };
}

const REPLY_PREFIXES = ['re:', 'fwd:', 'fw:', 'aw:', 'wg:', 'tr:', 'sv:', 'vs:'];

/** The To and Cc of the original message as the report quotes them (its header part, or its text). */
function originalRecipients(message: InboundMessage, text: TextBounce | undefined): string[] {
  const quoted = message.parts.find((p) => !p.embedded && QUOTED_HEADERS.has(p.contentType));
  if (quoted) {
    const fields = quotedFields(quoted.content);
    return [...findAddresses(fields.to ?? '', 10), ...findAddresses(fields.cc ?? '', 10)].map((a) => a.address);
  }
  return text?.quotedTo ?? [];
}

/** What in the message's headers says it comes from a delivery system. */
function headerSignals(message: InboundMessage) {
  const from = (message.from ?? '').toLowerCase();
  const fromHeader = (message.headers.from ?? '').toLowerCase();
  const returnPath = message.headers['return-path']?.trim();
  const sender = returnPath === '<>' || BOUNCE_SENDERS.some((s) => from.startsWith(`${s}@`) || fromHeader.includes(s));
  // "Re: Undeliverable…" or "Fwd: Mail delivery failed" is a person writing about a bounce.
  const subjectText = (message.subject ?? '').toLowerCase().trimStart();
  const subject = !REPLY_PREFIXES.some((p) => subjectText.startsWith(p)) && containsAny(subjectText, BOUNCE_SUBJECTS);
  const failedRecipients = findAddresses(message.headers['x-failed-recipients'] ?? '').map((a) => a.address);
  return { sender, subject, failedRecipients, hasFrom: message.headers.from !== undefined };
}

/** The report's human-readable text: its own text/plain parts, or its HTML ones when it has no plain text. */
function readableText(message: InboundMessage): string {
  const own = message.parts.filter((p) => !p.embedded);
  const plain = own.filter((p) => p.contentType === 'text/plain');
  return (plain.length > 0 ? plain : own.filter((p) => p.contentType === 'text/html'))
    .map((p) => p.content)
    .join('\n\n');
}

function toRecipient(block: Omit<StatusBlock, 'finalRecipient'>, permanentHint?: boolean): DsnRecipient {
  const failing = block.action === 'failed' || block.action === 'delayed';
  const verdict = failing
    ? classifyFailure({
        action: block.action as 'failed' | 'delayed',
        status: block.status,
        replyCode: block.replyCode,
        diagnosticCode: block.diagnosticCode,
        permanentHint,
      })
    : { reason: 'unknown' as const, permanent: false, suppress: false };
  return {
    recipient: block.recipient,
    action: block.action,
    status: block.status,
    replyCode: block.replyCode,
    diagnosticCode: block.diagnosticCode,
    remoteMta: block.remoteMta,
    ...verdict,
  };
}

/** The failed recipients a plain-text bounce lists (and X-Failed-Recipients names), classified. */
function textRecipients(
  text: TextBounce | undefined,
  failedHeader: string[],
  action: 'failed' | 'delayed',
): DsnRecipient[] {
  const listed: TextBounce['recipients'] = [...(text?.recipients ?? [])];
  // Recipients named only by X-Failed-Recipients get what the report says for all.
  for (const address of failedHeader)
    if (!listed.some((r) => r.address.toLowerCase() === address.toLowerCase()))
      listed.push({ address, diagnostic: text?.stated });
  return listed.map(({ address, diagnostic, permanentHint }) => {
    const status = diagnostic ? enhancedStatusIn(diagnostic) : undefined;
    const replyCode = diagnostic ? replyCodeIn(diagnostic, status) : undefined;
    return toRecipient(
      { recipient: address, action, status, replyCode, diagnosticCode: diagnostic },
      permanentHint ?? text?.permanentHint,
    );
  });
}

/** The classification of a report whose recipients are known, as a bounce (any failed) or a delay (only delayed). */
function toReport(
  format: string,
  recipients: DsnRecipient[],
  original: OriginalMessage,
  reportingMta?: string,
): InboundClassification {
  const failed = recipients.filter((r) => r.action === 'failed');
  if (failed.length > 0) return { kind: 'bounce', format, reportingMta, recipients: failed, original };
  return {
    kind: 'delay',
    format,
    reportingMta,
    recipients: recipients.filter((r) => r.action === 'delayed'),
    original,
  };
}

function classifyDeliveryStatus(
  message: InboundMessage,
  content: string,
  text: TextBounce | undefined,
): InboundClassification | undefined {
  const report = readDeliveryStatus(content);
  if (report.blocks.length === 0) return undefined;
  // The human-readable part often says more than the fields (an Exim "5.0.0" with "550 No such user here" below).
  const said = new Map((text?.recipients ?? []).map((r) => [r.address.toLowerCase(), r.diagnostic]));
  const recipients = report.blocks.map((block) => {
    const diagnosticCode =
      block.diagnosticCode ?? said.get(block.recipient.toLowerCase()) ?? said.get(block.finalRecipient.toLowerCase());
    const status = block.status ?? (diagnosticCode ? enhancedStatusIn(diagnosticCode) : undefined);
    const replyCode = block.replyCode ?? (diagnosticCode ? replyCodeIn(diagnosticCode, status) : undefined);
    return toRecipient({ ...block, diagnosticCode, status, replyCode }, text?.permanentHint);
  });
  const original = originalOf(message, report.originalMessageIds);
  if (!recipients.some((r) => r.action === 'failed' || r.action === 'delayed'))
    return { kind: 'message', note: 'delivery report without failures' };
  return toReport('delivery-status', recipients, original, report.reportingMta);
}

function classifyFeedbackReport(message: InboundMessage, content: string): InboundClassification {
  const [fields] = parseFieldBlocks(content);
  const feedbackType = fields?.['feedback-type']?.toLowerCase().trim();
  if (!feedbackType) return { kind: 'message', note: 'feedback report without a Feedback-Type' };
  // RFC 5965 3.1: Original-Rcpt-To may repeat; parseFieldBlocks keeps the first, so read them all again here.
  const recipients: string[] = [];
  for (const line of linesOf(content)) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === 'original-rcpt-to') {
      const address = addressOf(line.slice(colon + 1).trim());
      if (address) recipients.push(address);
    }
  }
  // Named by the report, the complainant is known; taken from the original's To, only when it had one address.
  const named = recipients.length > 0;
  if (!named) {
    const quoted = message.parts.find((p) => !p.embedded && QUOTED_HEADERS.has(p.contentType));
    const to = quoted ? (quotedFields(quoted.content).to ?? '') : '';
    recipients.push(
      ...to
        .split(',')
        .map((a) => addressOf(a.trim()))
        .filter((a): a is string => !!a),
    );
  }
  return {
    kind: 'complaint',
    feedbackType,
    recipients,
    suppress: (feedbackType === 'abuse' || feedbackType === 'fraud') && (named || recipients.length === 1),
    original: originalOf(message),
  };
}

function classifyAutoReply(message: InboundMessage): InboundClassification | undefined {
  const autoSubmitted = message.headers['auto-submitted']?.toLowerCase().trim();
  if (autoSubmitted && autoSubmitted !== 'no')
    return { kind: 'auto-reply', reason: `Auto-Submitted: ${autoSubmitted.split(';')[0]}` };
  if (message.headers['x-autoreply'] || message.headers['x-autorespond'])
    return { kind: 'auto-reply', reason: 'X-Autoreply' };
  const precedence = message.headers.precedence?.toLowerCase().trim();
  if (precedence === 'auto_reply') return { kind: 'auto-reply', reason: 'Precedence: auto_reply' };
  return undefined;
}

/**
 * Classifies an inbound message: a delivery report (RFC 3464, wherever it sits in the MIME tree, or a plain-text
 * bounce in one of the families of bounce-families.ts), a complaint (ARF, RFC 5965), an automatic reply (RFC 3834),
 * or ordinary mail. Bounce signals come first (a delivery-status part, X-Failed-Recipients, a delivery system's
 * sender, a bounce subject or body), Auto-Submitted second: Exim marks its bounces auto-replied.
 */
export function classifyInbound(message: InboundMessage): InboundClassification {
  const own = message.parts.filter((p) => !p.embedded);
  const feedback = own.find((p) => p.contentType === 'message/feedback-report');
  if (feedback) return classifyFeedbackReport(message, feedback.content);
  if (message.contentType === 'multipart/report' && message.reportType === 'feedback-report') {
    return { kind: 'message', note: 'feedback report without a feedback-report part' };
  }

  const signals = headerSignals(message);
  const readable = readableText(message);
  const exclude = new Set(
    [message.from, ...message.to, ...message.envelopeTo].filter((a): a is string => !!a).map((a) => a.toLowerCase()),
  );
  const fromDeliverySystem = signals.sender || signals.subject || signals.failedRecipients.length > 0;
  // Challenge/response systems send what looks like a delivery report (Boxbe: "Action: failed", "Status: 4.7.0").
  if (
    containsAny(readable.slice(0, 64 * 1024).toLowerCase(), CHALLENGE_PHRASES) &&
    signals.failedRecipients.length === 0
  ) {
    return { kind: 'auto-reply', reason: 'challenge-response' };
  }

  // The report's own delivery-status parts, or, from a delivery system, those inside an attached message; the first
  // that names a recipient is the report.
  const statusParts = (fromDeliverySystem ? message.parts : own).filter((p) => isDeliveryStatus(p.contentType));
  statusParts.sort((a, b) => Number(a.embedded ?? false) - Number(b.embedded ?? false));
  // The body is read as a bounce only where what it says can count: from a delivery system, without a From, or
  // beside a report part. Mail a person wrote (most of what arrives) is not scanned for bounce phrases.
  const bodyCounts = fromDeliverySystem || !signals.hasFrom || statusParts.length > 0;
  const text = readable && bodyCounts ? readTextBounce(readable, exclude) : undefined;
  for (const part of statusParts) {
    const report = classifyDeliveryStatus(message, part.content, text);
    if (report) return report;
  }
  const statusPart = statusParts.length > 0;

  // A plain-text bounce: the body of a known family, X-Failed-Recipients, or a delivery system's sender and subject.
  // A body that reads like a bounce but comes from a person (a forwarded bounce) is not one.
  const bodySays = !!text?.family && (!signals.hasFrom || fromDeliverySystem);
  const action = text?.delay ? 'delayed' : 'failed';
  const recipients = textRecipients(text, signals.failedRecipients, action);
  const coded = recipients.some((r) => r.replyCode !== undefined || r.status !== undefined);
  // A recipient with an explanation that names a reason (not just any text after an address).
  const explained = recipients.some((r) => r.diagnosticCode !== undefined && r.reason !== 'unknown');
  // A subject and bounce words alone are what a courier's notice or a shop's mail says too ("Delivery failure: your
  // parcel could not be delivered"): without a delivery system's sender they need a family's body (bodySays).
  const headersSay =
    signals.failedRecipients.length > 0 ||
    (signals.sender && signals.subject) ||
    (signals.sender && (!!text?.generic || explained)) ||
    // A bare body (no headers at all) with bounce words and a recipient with an SMTP reply.
    (!signals.hasFrom && !!text?.generic && coded);
  if (bodySays || headersSay || statusPart) {
    const original = originalOf(message);
    // Words, a subject and a family's phrases are what a person can write too ("Parcel not delivered… my old address
    // a@b: no longer valid"): only what a delivery system sends (its sender, X-Failed-Recipients, a report part, or
    // no From at all) lets a plain-text bounce suppress.
    const fromSystem = signals.sender || signals.failedRecipients.length > 0 || statusPart || !signals.hasFrom;
    const read = fromSystem ? recipients : recipients.map((r) => ({ ...r, suppress: false }));
    if (recipients.length > 0) return toReport(text?.family ?? 'text', read, original);
    // Named nowhere: the one recipient of the quoted original, if it had only one. Inferred, so never suppressed.
    const [sentTo, ...others] = originalRecipients(message, text);
    if (sentTo && others.length === 0 && text) {
      const [inferred] = textRecipients(
        { ...text, recipients: [{ address: sentTo, diagnostic: text.stated }] },
        [],
        action,
      );
      if (inferred) return toReport(text.family ?? 'text', [{ ...inferred, suppress: false }], original);
    }
    return text?.delay
      ? { kind: 'delay', format: text.family ?? 'text', recipients: [], original }
      : { kind: 'bounce', format: text?.family ?? 'text', recipients: [], original };
  }
  return classifyAutoReply(message) ?? { kind: 'message' };
}
