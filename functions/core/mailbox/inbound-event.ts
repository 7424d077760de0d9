import { createHash } from 'node:crypto';
import type { InboundClassification } from '../inbound-report.js';
import { createEvent, EventTypes, type DispatchEvent } from '../events.js';
import { hashAddress } from '../message-id.js';
import type { MailboxStatus, RawLocation } from './ports.js';
import { SNS_BATCH } from './publish-fitting.js';
import type { ParsedMessage, ReadMessage, Unparsable } from './read-message.js';

/** SNS takes at most 256 KiB a message, attributes included: an event above this is not published as it is. */
export const MAX_EVENT_BYTES = SNS_BATCH.bytes - 16 * 1024;

const EVENT_TYPES = {
  bounce: EventTypes.bounceDetected,
  delay: EventTypes.bounceDelayed,
  complaint: EventTypes.complaintDetected,
  'auto-reply': EventTypes.autoReplyDetected,
  message: EventTypes.inboundReceived,
} as const;
const eventTypeOf = (kind: InboundClassification['kind']) => EVENT_TYPES[kind];

/** Every type of event the poller publishes about a message it read: one per classification, and the unparsable. */
export const INBOUND_EVENT_TYPES: readonly string[] = [...Object.values(EVENT_TYPES), EventTypes.inboundUnparsable];

type Where = { mailboxId: string; status: MailboxStatus; raw: RawLocation | undefined };

/** What every inbound event says about its message: where it is in the mailbox and in S3. */
function envelopeOf(entry: ReadMessage, where: Where) {
  const { fetched, key } = entry;
  return {
    mailbox: where.mailboxId,
    uidValidity: where.status.uidValidity,
    uid: fetched.uid,
    messageKey: key,
    receivedAt: fetched.internalDate?.toISOString(),
    size: fetched.size,
    raw: where.raw,
  };
}

/**
 * The event id is derived from the message's place in the mailbox: a republish after a crash between publishing and
 * checkpointing carries the same id, so consumers can drop it.
 */
const idOf = (where: Where, uid: number) =>
  createHash('sha256').update(`${where.mailboxId}:${where.status.uidValidity}:${uid}`).digest('hex').slice(0, 32);

/** The event of a parsed and classified message. */
export function inboundEventOf(
  entry: ParsedMessage,
  classification: InboundClassification,
  where: Where,
): DispatchEvent {
  const { message } = entry;
  const data = {
    ...envelopeOf(entry, where),
    messageId: message.messageId,
    from: message.from,
    subject: message.subject,
    classification: withHashedRecipients(classification),
  };
  return { ...createEvent(eventTypeOf(classification.kind), data), id: idOf(where, entry.fetched.uid) };
}

/** The event of a message that could not be handled: where its raw bytes are and why. */
export function unparsableEventOf(entry: ReadMessage, unparsable: Unparsable, where: Where): DispatchEvent {
  const data = { ...envelopeOf(entry, where), reason: unparsable.reason, detail: unparsable.detail };
  return { ...createEvent(EventTypes.inboundUnparsable, data), id: idOf(where, entry.fetched.uid) };
}

export const eventBytes = (event: DispatchEvent) => Buffer.byteLength(JSON.stringify(event));

/** Bounce and complaint recipients are the producer's own addresses: publish them, but hashed alongside. */
function withHashedRecipients(classification: InboundClassification) {
  if (classification.kind === 'bounce' || classification.kind === 'delay') {
    return {
      ...classification,
      recipients: classification.recipients.map((r) => ({ ...r, recipientHash: hashAddress(r.recipient) })),
    };
  }
  if (classification.kind === 'complaint')
    return { ...classification, recipientHashes: classification.recipients.map(hashAddress) };
  return classification;
}
