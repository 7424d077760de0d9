import { createHash } from 'node:crypto';

/**
 * The Message-ID for a job, derived from its idempotency key so that every attempt carries the same one: a message
 * resent after the unavoidable '.'→'250' window (RFC 1047) is recognisable downstream as the same message.
 * The key is hashed, so producers' keys never appear in mail headers.
 */
export function toMessageId(idempotencyKey: string, domain: string): string {
  return `<${toDispatchId(idempotencyKey)}@${domain}>`;
}

/** A stable, opaque id for a job, safe for headers and logs. */
export function toDispatchId(idempotencyKey: string): string {
  return createHash('sha256').update(`email-dispatch:${idempotencyKey}`).digest('hex').slice(0, 32);
}

/**
 * A recipient's address as it may appear in logs, metrics and at-rest stores: a truncated SHA-256 of the lowercase
 * address. The same address always gives the same hash, which is what the suppression list is keyed on.
 */
export function hashAddress(address: string): string {
  return createHash('sha256').update(address.trim().toLowerCase()).digest('hex').slice(0, 24);
}
