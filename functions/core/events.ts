import { randomUUID } from 'node:crypto';
import type { TransportName } from './email-job.js';
import type { RecipientResult, SendOutcome } from './send-outcome.js';

/** Event types on the events topic; subscribers filter on the `type` message attribute. */
export const EventTypes = {
  delivered: 'email.delivered',
  rejected: 'email.rejected',
  failed: 'email.failed',
  /** A job its producer cancelled was dropped before any send (published when the dispatcher meets it). */
  cancelled: 'email.cancelled',
  inboundReceived: 'inbound.received',
  bounceDetected: 'bounce.detected',
  /** A delay warning (RFC 3464 `Action: delayed`): delivery is still being tried; nothing is suppressed. */
  bounceDelayed: 'bounce.delayed',
  complaintDetected: 'complaint.detected',
  autoReplyDetected: 'auto-reply.detected',
  /** An inbound message that could not be parsed or classified; kept raw, with the reason. */
  inboundUnparsable: 'inbound.unparsable',
  /** An operator took an address off the suppression list. */
  suppressionRemoved: 'suppression.removed',
  /** SES reports a delivery attempt it keeps retrying (DeliveryDelay); not a bounce. */
  deliveryDelayed: 'delivery.delayed',
  /** A tenant's jobs are held: its bounce or complaint rate crossed a limit, or an operator paused it. */
  tenantPaused: 'tenant.paused',
  /** An operator lifted a tenant's pause; its held jobs go out at their next recheck. */
  tenantResumed: 'tenant.resumed',
} as const;
export type EventType = (typeof EventTypes)[keyof typeof EventTypes];

/** Every event has these; `id` is unique per publication, `subject` names what it is about (for deduplication). */
export type EventEnvelope<T extends EventType, D> = { type: T; version: 1; id: string; time: string } & D;

/** The terminal outcome of a job, for producers that subscribe to outcomes. */
export type EmailOutcomeEvent = EventEnvelope<
  typeof EventTypes.delivered | typeof EventTypes.rejected | typeof EventTypes.failed,
  {
    idempotencyKey: string;
    /** The producer's tenant: keys are the tenant's own, so a key names a job only together with it. */
    tenant?: string;
    messageId?: string;
    providerMessageId?: string;
    transport?: TransportName;
    reason: string;
    detail?: string;
    attempts?: number;
    recipients: RecipientResult[];
    tags?: Record<string, string>;
  }
>;

/** Any event the system publishes. */
export type DispatchEvent = EmailOutcomeEvent | EventEnvelope<EventType, Record<string, unknown>>;

/** Publishes events; one implementation on SNS, fakes in tests. */
export interface EventPublisher {
  publish(event: DispatchEvent): Promise<void>;
  /** Publishes several at once; resolves with the ones that could not be published. */
  publishBatch?(events: DispatchEvent[]): Promise<Array<{ event: DispatchEvent; error: string }>>;
}

/** Publishes events with PublishBatch where the publisher has it; resolves with the ones that could not be published. */
export async function publishAll(
  publisher: EventPublisher,
  events: DispatchEvent[],
): Promise<Array<{ event: DispatchEvent; error: string }>> {
  if (events.length === 0) return [];
  if (publisher.publishBatch) return publisher.publishBatch(events);
  const outcomes = await Promise.all(
    events.map((event) =>
      publisher.publish(event).then(
        () => undefined,
        (error: Error) => ({ event, error: error.message }),
      ),
    ),
  );
  return outcomes.filter((f) => f !== undefined);
}

export function createEvent<T extends EventType, D extends object>(
  type: T,
  data: D,
  now: Date = new Date(),
): EventEnvelope<T, D> {
  return { type, version: 1, id: randomUUID(), time: now.toISOString(), ...data };
}

/** The event for a terminal job outcome: delivered, rejected (permanent or invalid), or failed (gave up retrying). */
export function toOutcomeEvent(
  kind: 'delivered' | 'rejected' | 'failed',
  facts: {
    idempotencyKey: string;
    tenant?: string;
    messageId?: string;
    transport?: TransportName;
    attempts?: number;
    tags?: Record<string, string>;
  },
  outcome: Pick<SendOutcome, 'reason' | 'detail' | 'providerMessageId' | 'recipients'>,
): EmailOutcomeEvent {
  return createEvent(EventTypes[kind], {
    ...facts,
    reason: outcome.reason,
    detail: outcome.detail,
    providerMessageId: outcome.providerMessageId,
    recipients: outcome.recipients,
  });
}
