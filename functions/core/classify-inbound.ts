/**
 * An inbound message reduced to what classification needs, by the IMAP adapter's parser. Plain data.
 * Header names are lowercase; `parts` are the MIME leaves and attached messages with their raw text.
 */
export type InboundMessage = {
  messageId?: string;
  from?: string;
  to: string[];
  /**
   * The addresses the message was delivered to, as the receiving side recorded them (Delivered-To, X-Original-To,
   * Envelope-To, then To): a report sent to a VERP address names the original here even when it quotes nothing.
   */
  envelopeTo: string[];
  subject?: string;
  date?: Date;
  headers: Record<string, string>;
  /** Top-level content type, lowercase, without parameters, e.g. `multipart/report`. */
  contentType: string;
  /** The `report-type` parameter of a multipart/report. */
  reportType?: string;
  parts: Array<{ contentType: string; content: string }>;
};

/** One recipient of a delivery status notification (RFC 3464 2.3). */
export type DsnRecipient = {
  recipient: string;
  action: 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';
  /** RFC 3463 status, e.g. `5.1.1`. */
  status: string;
  diagnosticCode?: string;
  remoteMta?: string;
  /** A permanent failure of the address itself: the recipient goes on the suppression list. */
  suppress: boolean;
};

/**
 * What the original message was, as the report quotes it: our Message-ID and dispatch id tie it to a job.
 * `messageIds` holds every Message-ID the report carries for the original (the quoted Message-ID, In-Reply-To and
 * References, an Original-Message-ID field, the report's own In-Reply-To and References), for verification.
 */
export type OriginalMessage = { messageId?: string; dispatchId?: string; messageIds: string[] };

export type InboundClassification =
  | { kind: 'bounce'; reportingMta?: string; recipients: DsnRecipient[]; original: OriginalMessage }
  | { kind: 'delay'; reportingMta?: string; recipients: DsnRecipient[]; original: OriginalMessage }
  | { kind: 'complaint'; feedbackType: string; recipients: string[]; suppress: boolean; original: OriginalMessage }
  | { kind: 'auto-reply'; reason: string }
  | { kind: 'message'; note?: string };

const ACTIONS = new Set(['failed', 'delayed', 'delivered', 'relayed', 'expanded']);
const STATUS = /^([245])\.(\d{1,3})\.(\d{1,3})$/;

/**
 * Splits header-style text into blocks of fields (RFC 3464 2.1: a per-message block, then one per recipient,
 * separated by blank lines). Accepts CRLF, LF or CR line endings and folded lines.
 */
export function parseFieldBlocks(text: string): Array<Record<string, string>> {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  const blocks: Array<Record<string, string>> = [];
  let current: Record<string, string> = {};
  let last: string | undefined;
  const flush = () => {
    if (Object.keys(current).length > 0) blocks.push(current);
    current = {};
    last = undefined;
  };
  for (const line of lines) {
    if (line.trim() === '') {
      flush();
      continue;
    }
    if (/^[ \t]/.test(line) && last) {
      current[last] += ` ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    last = line.slice(0, colon).trim().toLowerCase();
    // The first occurrence wins: a repeated field is malformed, not an override.
    if (current[last] === undefined) current[last] = line.slice(colon + 1).trim();
    else last = undefined;
  }
  flush();
  return blocks;
}

/** `rfc822; Bob@Example.net` → `Bob@Example.net`; rejects anything that is not a plain address. */
function addressOf(typed: string | undefined): string | undefined {
  if (!typed) return undefined;
  const value = (typed.includes(';') ? typed.slice(typed.indexOf(';') + 1) : typed).trim().replace(/^<|>$/g, '');
  return /^[^\s@<>",;]+@[^\s@<>",;]+\.[^\s@<>",;]+$/.test(value) ? value : undefined;
}

/**
 * Whether a permanent failure is about the address itself (and so worth suppressing): bad mailbox or domain
 * (5.1.x), mailbox disabled (5.2.1), no route to the domain (5.4.4). Policy refusals (5.7.x), a full mailbox (5.2.2)
 * or content problems are hard bounces too, but say nothing lasting about the address.
 */
export function isAddressFailure(status: string): boolean {
  return /^5\.1\.\d+$/.test(status) || status === '5.2.1' || status === '5.4.4';
}

const MAX_MESSAGE_IDS = 64;
const REPORT_FIELD_PARTS = new Set([
  'message/delivery-status',
  'message/global-delivery-status',
  'message/feedback-report',
]);

/** The `<…>` message ids in a header value, in order, at most `MAX_MESSAGE_IDS`; one linear scan. */
function messageIdsIn(value: string | undefined, into: string[]): void {
  if (!value) return;
  let open = value.indexOf('<');
  while (open >= 0 && into.length < MAX_MESSAGE_IDS) {
    const close = value.indexOf('>', open + 1);
    if (close < 0) return;
    const id = value.slice(open, close + 1);
    if (close - open < 256 && !/[\s<]/.test(id.slice(1, -1)) && !into.includes(id)) into.push(id);
    open = value.indexOf('<', close + 1);
  }
}

function originalOf(message: InboundMessage): OriginalMessage {
  const quoted = message.parts.find((p) => p.contentType === 'message/rfc822' || p.contentType === 'text/rfc822-headers' || p.contentType === 'message/rfc822-headers');
  const report = message.parts.find((p) => REPORT_FIELD_PARTS.has(p.contentType));
  const headerText = quoted?.content.replace(/\r\n?/g, '\n').split('\n\n')[0] ?? '';
  const [fields] = quoted ? parseFieldBlocks(headerText) : [];
  const [reportFields] = report ? parseFieldBlocks(report.content) : [];
  const messageIds: string[] = [];
  const q = fields ?? {};
  const quotedIds = [q['message-id'], reportFields?.['original-message-id'], q['in-reply-to'], q.references];
  const ownIds = [message.headers['original-message-id'], message.headers['in-reply-to'], message.headers.references];
  for (const value of [...quotedIds, ...ownIds]) messageIdsIn(value, messageIds);
  return {
    messageId: fields?.['message-id']?.match(/<[^<>\s]+>/)?.[0],
    dispatchId: fields?.['x-dispatch-id']?.match(/^[a-f0-9]{32}$/)?.[0],
    messageIds,
  };
}

function classifyDeliveryStatus(message: InboundMessage): InboundClassification {
  const part = message.parts.find((p) => p.contentType === 'message/delivery-status' || p.contentType === 'message/global-delivery-status');
  if (!part) return { kind: 'message', note: 'delivery report without a delivery-status part' };
  const [perMessage, ...perRecipient] = parseFieldBlocks(part.content);
  const recipients: DsnRecipient[] = [];
  for (const fields of perRecipient) {
    const recipient = addressOf(fields['final-recipient']) ?? addressOf(fields['original-recipient']);
    const action = fields.action?.toLowerCase().split(/[\s(]/)[0] ?? '';
    const status = fields.status?.match(/^\s*([245]\.\d{1,3}\.\d{1,3})/)?.[1] ?? '';
    // A block without a recipient, a known action and a well-formed status is not trusted for anything.
    if (!recipient || !ACTIONS.has(action) || !STATUS.test(status)) continue;
    const typedAction = action as DsnRecipient['action'];
    recipients.push({
      recipient,
      action: typedAction,
      status,
      diagnosticCode: fields['diagnostic-code'],
      remoteMta: fields['remote-mta'],
      suppress: typedAction === 'failed' && isAddressFailure(status),
    });
  }
  const reportingMta = perMessage?.['reporting-mta'];
  const original = originalOf(message);
  if (recipients.some((r) => r.action === 'failed')) return { kind: 'bounce', reportingMta, recipients: recipients.filter((r) => r.action === 'failed'), original };
  if (recipients.some((r) => r.action === 'delayed')) return { kind: 'delay', reportingMta, recipients, original };
  return { kind: 'message', note: recipients.length > 0 ? 'delivery report without failures' : 'delivery report without a usable recipient' };
}

function classifyFeedbackReport(message: InboundMessage): InboundClassification {
  const part = message.parts.find((p) => p.contentType === 'message/feedback-report');
  if (!part) return { kind: 'message', note: 'feedback report without a feedback-report part' };
  const [fields] = parseFieldBlocks(part.content);
  const feedbackType = fields?.['feedback-type']?.toLowerCase().trim();
  if (!feedbackType) return { kind: 'message', note: 'feedback report without a Feedback-Type' };
  // RFC 5965 3.1: Original-Rcpt-To may repeat; parseFieldBlocks keeps the first, so read them all again here.
  const rcpts = [...part.content.matchAll(/^original-rcpt-to:\s*(.+)$/gim)].map((m) => addressOf(m[1]?.trim())).filter((a): a is string => !!a);
  let recipients = rcpts;
  if (recipients.length === 0) {
    const quoted = message.parts.find((p) => p.contentType === 'message/rfc822' || p.contentType === 'text/rfc822-headers');
    const [headers] = parseFieldBlocks((quoted?.content ?? '').replace(/\r\n?/g, '\n').split('\n\n')[0] ?? '');
    recipients = (headers?.to ?? '').split(',').map((a) => addressOf(a.match(/<([^<>]+)>/)?.[1] ?? a.trim())).filter((a): a is string => !!a);
  }
  return { kind: 'complaint', feedbackType, recipients, suppress: feedbackType === 'abuse' || feedbackType === 'fraud', original: originalOf(message) };
}

/**
 * Classifies an inbound message: a delivery status notification (RFC 3464), a complaint (ARF, RFC 5965), an
 * automatic reply (RFC 3834), or ordinary mail. Only a well-formed report can ever lead to a suppression.
 */
export function classifyInbound(message: InboundMessage): InboundClassification {
  if (message.contentType === 'multipart/report') {
    if (message.reportType === 'delivery-status' || message.reportType === 'global-delivery-status') return classifyDeliveryStatus(message);
    if (message.reportType === 'feedback-report') return classifyFeedbackReport(message);
  }
  const autoSubmitted = message.headers['auto-submitted']?.toLowerCase().trim();
  if (autoSubmitted && autoSubmitted !== 'no') return { kind: 'auto-reply', reason: `Auto-Submitted: ${autoSubmitted.split(';')[0]}` };
  if (message.headers['x-autoreply'] || message.headers['x-autorespond']) return { kind: 'auto-reply', reason: 'X-Autoreply' };
  const precedence = message.headers.precedence?.toLowerCase().trim();
  if (precedence === 'auto_reply') return { kind: 'auto-reply', reason: 'Precedence: auto_reply' };
  return { kind: 'message' };
}
