import { createHash } from 'node:crypto';
import type { FailureFacts, FailureVerdict } from './inbound-report.js';
import { DispatchTags, fromTagToken } from './dispatch-job.js';
import { createEvent, EventTypes, type DispatchEvent } from './events.js';
import { hashAddress, hashRecipient, toRecordHandle, type ReportKeyring } from './message-id.js';
import { unscopeJobKey } from './tenant.js';
import { verifyReport, type ReportVerification } from './verify-report.js';

/**
 * An SES event record as a configuration set's event destination publishes it (SES Developer Guide, "Contents of
 * event data that Amazon SES publishes to Amazon SNS"). Only what we read; SES may add fields.
 */
export type SesEventRecord = {
  eventType: string;
  mail: {
    messageId: string;
    sendingAccountId?: string;
    destination: string[];
    commonHeaders?: { messageId?: string };
    tags?: Record<string, string[]>;
  };
  bounce?: {
    bounceType?: string;
    bounceSubType?: string;
    bouncedRecipients?: Array<{ emailAddress?: string; action?: string; status?: string; diagnosticCode?: string }>;
  };
  complaint?: {
    complainedRecipients?: Array<{ emailAddress?: string }>;
    complaintFeedbackType?: string;
    complaintSubType?: string | null;
  };
  delivery?: { recipients?: string[]; smtpResponse?: string };
  deliveryDelay?: {
    delayType?: string;
    delayedRecipients?: Array<{ emailAddress?: string; status?: string; diagnosticCode?: string }>;
  };
  reject?: { reason?: string };
};

/** How one SES bounce type and subtype treats the suppression list (see SES_BOUNCE_POLICY). */
type SesBounceRule = {
  bounceType: string;
  bounceSubType?: string;
  suppress: boolean | 'byStatus';
  status?: string;
};

/**
 * What SES's bounce types mean for the suppression list: the same policy as the IMAP path, permanent failures of
 * the address only. `status` is the RFC 3463 code assumed when SES gives none; `byStatus` defers to the recipient's
 * own status (an address failure, 5.1.x / 5.2.1 / 5.4.4, suppresses; a policy or content refusal does not).
 * Transient and Undetermined bounces never suppress. The first matching rule applies.
 */
const SES_BOUNCE_POLICY: SesBounceRule[] = [
  { bounceType: 'Permanent', bounceSubType: 'NoEmail', suppress: true, status: '5.1.1' },
  // SES refused to send: the address is on its global or account suppression list, so it bounced before.
  { bounceType: 'Permanent', bounceSubType: 'Suppressed', suppress: true, status: '5.1.1' },
  { bounceType: 'Permanent', bounceSubType: 'OnAccountSuppressionList', suppress: true, status: '5.1.1' },
  { bounceType: 'Permanent', bounceSubType: 'General', suppress: 'byStatus', status: '5.1.1' },
  { bounceType: 'Permanent', suppress: 'byStatus', status: '5.0.0' },
  { bounceType: 'Transient', suppress: false, status: '4.0.0' },
  { bounceType: 'Undetermined', suppress: false, status: '4.0.0' },
];

/** ARF feedback types (RFC 5965) that suppress, as on the IMAP path; SES often gives no type for a plain complaint. */
const SUPPRESSING_FEEDBACK = new Set(['abuse', 'fraud', '']);

export type SesSuppression = {
  address: string;
  reason: 'hard-bounce' | 'complaint';
  source: string;
  status?: string;
  detail?: string;
  verified: true;
  /** The tenant whose mail the event is about. */
  tenant?: string;
};

export type SesEventOutcome =
  | {
      handled: true;
      eventType: string;
      events: DispatchEvent[];
      suppressions: SesSuppression[];
      verification: ReportVerification;
    }
  | { handled: false; eventType?: string; reason: string };

/**
 * Checks that a notification came from our own SES event destination: the expected topic, in our account, about
 * mail our account sent. Anything else is refused before it is parsed further.
 */
export function checkSesOrigin(
  origin: { topicArn: string },
  record: { mail?: { sendingAccountId?: string } },
  expected: { topicArn: string; accountId: string },
): string | undefined {
  if (origin.topicArn !== expected.topicArn) return 'unexpected topic';
  if (origin.topicArn.split(':')[4] !== expected.accountId) return 'topic of another account';
  const sender = record.mail?.sendingAccountId;
  if (sender !== undefined && sender !== expected.accountId) return 'mail of another account';
  return undefined;
}

/** Parses an SNS message body as an SES event record; names the first missing field. */
export function parseSesEventRecord(text: string): SesEventRecord | { invalid: string } {
  if (text.length > 256 * 1024) return { invalid: 'message larger than an SNS message can be' };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { invalid: 'message is not JSON' };
  }
  type Lenient = Partial<SesEventRecord> & { notificationType?: string };
  const record = (typeof value === 'object' && value !== null ? value : {}) as Lenient;
  // Identity feedback notifications call it notificationType; configuration-set events call it eventType.
  const eventType = record.eventType ?? record.notificationType;
  if (typeof eventType !== 'string') return { invalid: 'eventType is missing' };
  if (typeof record.mail?.messageId !== 'string') return { invalid: 'mail.messageId is missing' };
  if (!Array.isArray(record.mail.destination)) return { invalid: 'mail.destination is missing' };
  return { ...(record as SesEventRecord), eventType };
}

const first = (tags: Record<string, string[]> | undefined, name: string) =>
  Array.isArray(tags?.[name]) ? tags?.[name]?.[0] : undefined;

function decodeKey(value: string | undefined): string | undefined {
  if (!value || !/^[A-Za-z0-9_-]{1,256}$/.test(value)) return undefined;
  const key = Buffer.from(value, 'base64url').toString('utf8');
  // A tenant's keys are scoped (`<tenant> <key>`, see tenant.ts): up to 32 characters and a space longer.
  return key.length > 0 && key.length <= 161 ? key : undefined;
}

const isAddress = (a: unknown): a is string => typeof a === 'string' && a.length > 0 && a.length <= 320;
const addressesOf = (list: Array<{ emailAddress?: string }> | undefined) =>
  (list ?? []).map((r) => r.emailAddress).filter(isAddress);
const sha256 = (text: string, length: number) => createHash('sha256').update(text).digest('hex').slice(0, length);

/**
 * Turns one SES event (already checked for origin) into the events and suppressions the IMAP path makes for the
 * same facts: Bounce → `bounce.detected`, Complaint → `complaint.detected`, Delivery → `email.delivered`,
 * DeliveryDelay → `delivery.delayed`, Reject → `email.rejected`. The job is the one named by the message's tags
 * (its key and report token, set by the dispatcher); the token must verify, and every address the event names must
 * be among the message's destinations, or the event is published with `verified: false` and suppresses no one.
 */
/** Why one recipient failed, by the inbound reader's taxonomy (functions/inbound's `classifyFailure`). */
export type FailureJudge = (facts: FailureFacts) => FailureVerdict;

export async function handleSesEvent(
  record: SesEventRecord,
  keyring: ReportKeyring,
  classifyFailure: FailureJudge,
): Promise<SesEventOutcome> {
  const scopedKey = decodeKey(first(record.mail.tags, DispatchTags.key));
  const { tenant, idempotencyKey } = scopedKey
    ? unscopeJobKey(scopedKey)
    : { tenant: undefined, idempotencyKey: undefined };
  const tagToken = first(record.mail.tags, DispatchTags.token);
  const destination = record.mail.destination.filter(isAddress);
  const named = namedAddresses(record);
  // The tags name the job; the token proves we made them; the destination is SES's own word on who it went to.
  const handle = scopedKey ? toRecordHandle(scopedKey) : undefined;
  const sent = {
    sentMessageOf: async (h: string) =>
      h === handle && tenant
        ? { recipientHashes: destination.map((a) => hashRecipient(a, keyring)), tenant, key: scopedKey }
        : undefined,
  };
  const tokens = tagToken ? [fromTagToken(tagToken)] : [];
  const verification = await verifyReport({ tokens }, named, { keyring, sent });
  const facts = {
    source: 'ses',
    idempotencyKey: verification.verified ? idempotencyKey : undefined,
    tenant: verification.verified ? tenant : undefined,
    messageId: record.mail.commonHeaders?.messageId,
    providerMessageId: record.mail.messageId,
    verified: verification.verified,
    verification: { reason: verification.reason, via: verification.via },
  };
  // Derived from the event: a notification delivered twice gives the same id, so consumers can drop the repeat.
  const about = named
    .map((a) => a.toLowerCase())
    .sort()
    .join(',');
  const id = sha256(`ses:${record.mail.messageId}:${record.eventType}:${about}`, 32);
  const source = `ses:${sha256(record.mail.messageId, 16)}`;
  const made = toEvent(record, facts, named, destination, source, classifyFailure);
  if (!made) {
    const reason = `event type ${record.eventType.slice(0, 40)} is not consumed`;
    return { handled: false, eventType: record.eventType, reason };
  }
  // Complaints stop only the tenant's mail (hard bounces stay global: see suppression.ts).
  const suppressions = verification.verified ? made.suppressions.map((s) => ({ ...s, tenant })) : [];
  return { handled: true, eventType: record.eventType, events: [{ ...made.event, id }], suppressions, verification };
}

/** The event for one SES record, and the suppressions it asks for if it verifies. */
function toEvent(
  record: SesEventRecord,
  facts: Record<string, unknown>,
  named: string[],
  destination: string[],
  source: string,
  classifyFailure: FailureJudge,
) {
  const suppressions: SesSuppression[] = [];
  switch (record.eventType) {
    case 'Bounce': {
      const bounceType = record.bounce?.bounceType ?? 'Undetermined';
      const bounceSubType = record.bounce?.bounceSubType ?? 'Undetermined';
      const rule = SES_BOUNCE_POLICY.find(
        (r) => r.bounceType === bounceType && (r.bounceSubType ?? bounceSubType) === bounceSubType,
      );
      const recipients = (record.bounce?.bouncedRecipients ?? []).flatMap((r) => {
        if (!isAddress(r.emailAddress)) return [];
        const given = /^[245]\.\d{1,3}\.\d{1,3}$/.test(r.status ?? '') ? r.status : undefined;
        const status = given ?? rule?.status ?? '4.0.0';
        // The IMAP path's policy: the reason from the status and the diagnostic text; only the recipient's own
        // permanent failure suppresses (a policy or content refusal under a 5.1.x does not).
        const verdict = classifyFailure({ action: 'failed', status, diagnosticCode: r.diagnosticCode });
        const suppress = rule?.suppress === 'byStatus' ? verdict.suppress : (rule?.suppress ?? false);
        const recipient = r.emailAddress;
        const recipientHash = hashAddress(recipient);
        const { reason, permanent } = verdict;
        const diagnosticCode = r.diagnosticCode;
        return [{ recipient, recipientHash, action: 'failed', status, diagnosticCode, reason, permanent, suppress }];
      });
      const detail = `ses:${bounceType}/${bounceSubType}`;
      for (const r of recipients) {
        if (!r.suppress) continue;
        const address = r.recipient;
        suppressions.push({ address, reason: 'hard-bounce', source, status: r.status, detail, verified: true });
      }
      const classification = { kind: 'bounce', bounceType, bounceSubType, recipients };
      return { event: createEvent(EventTypes.bounceDetected, { ...facts, classification }), suppressions };
    }
    case 'Complaint': {
      const complaint = record.complaint;
      const feedbackType = (complaint?.complaintFeedbackType ?? '').toLowerCase();
      const onList = complaint?.complaintSubType === 'OnAccountSuppressionList';
      const suppress = SUPPRESSING_FEEDBACK.has(feedbackType) || onList;
      const recipients = addressesOf(complaint?.complainedRecipients);
      const detail = `ses:complaint/${feedbackType || 'unspecified'}`;
      if (suppress) {
        for (const address of recipients) {
          suppressions.push({ address, reason: 'complaint', source, detail, verified: true });
        }
      }
      const recipientHashes = recipients.map(hashAddress);
      const classification = { kind: 'complaint', feedbackType: feedbackType || undefined, recipientHashes, suppress };
      return { event: createEvent(EventTypes.complaintDetected, { ...facts, classification }), suppressions };
    }
    case 'Delivery': {
      const recipients = named.map((recipient) => ({ recipient, status: 'accepted' }));
      const detail = record.delivery?.smtpResponse;
      const outcome = { reason: 'delivered-to-mailbox', detail, transport: 'ses', recipients };
      return { event: createEvent(EventTypes.delivered, { ...facts, ...outcome }), suppressions };
    }
    case 'DeliveryDelay': {
      const delayed = record.deliveryDelay?.delayedRecipients ?? [];
      const recipients = delayed.map((r) => ({ recipientHash: hashAddress(r.emailAddress ?? ''), status: r.status }));
      const delayType = record.deliveryDelay?.delayType;
      return { event: createEvent(EventTypes.deliveryDelayed, { ...facts, delayType, recipients }), suppressions };
    }
    case 'Reject': {
      const recipients = destination.map((recipient) => ({ recipient, status: 'rejected' }));
      const outcome = { reason: 'ses-reject', detail: record.reject?.reason, transport: 'ses', recipients };
      return { event: createEvent(EventTypes.rejected, { ...facts, ...outcome }), suppressions };
    }
    default:
      return undefined;
  }
}

/** The addresses an event is about (for a Reject or a Delivery without a list: every destination). */
function namedAddresses(record: SesEventRecord): string[] {
  switch (record.eventType) {
    case 'Bounce':
      return addressesOf(record.bounce?.bouncedRecipients);
    case 'Complaint':
      return addressesOf(record.complaint?.complainedRecipients);
    case 'Delivery':
      return (record.delivery?.recipients ?? record.mail.destination).filter((a) => typeof a === 'string');
    case 'DeliveryDelay':
      return addressesOf(record.deliveryDelay?.delayedRecipients);
    default:
      return record.mail.destination.filter((a) => typeof a === 'string');
  }
}
