import type { SuppressionRequest } from '../suppression.js';
import type { InboundClassification, InboundMessage, InboundReader } from '../inbound-report.js';
import { repeatedFailure, type Repeats } from './repeated-bounces.js';

/** The poller's suppress dependency: the suppression store's request. */
export type SuppressEntry = SuppressionRequest;
export type Suppress = (entry: SuppressionRequest) => Promise<unknown>;

/** RFC 5321 4.5.3.1.3: a path is at most 256 octets with its angle brackets; anything longer is no address. */
const MAX_ADDRESS_OCTETS = 254;

/** What a parsed inbound message is (bounce, complaint, auto-reply, mail): the one place the poller classifies. */
export function classifyMessage(message: InboundMessage, reader: InboundReader): InboundClassification {
  return reader.classify(message);
}

/**
 * Acts on a classified message: the addresses a report says are dead or complaining go on the suppression list,
 * with the report (`key`) as their source. Runs before the message's event is published, so that once the event is
 * out the list already reflects it. Returns the entries suppressed.
 *
 * With `repeats`, a failure that does not suppress by itself is recorded, and suppresses once it has repeated on
 * enough days (see repeated-bounces): a domain that keeps not resolving as a hard bounce, a mailbox that keeps failing
 * softly as a `soft-bounce` that expires.
 */
export async function suppressReported(
  classification: InboundClassification,
  key: string,
  suppress: Suppress,
  /** How the report was tied to mail we sent (`message-id`, `envelope`, `tag`). */
  verifiedVia: string | boolean = true,
  /** The tenant whose mail the report is about: a complaint (and a bounce that came by mail) stops only its mail. */
  tenant?: string,
  repeats?: Repeats,
): Promise<SuppressEntry[]> {
  const entries: SuppressEntry[] = [];
  if (classification.kind === 'bounce') {
    for (const r of classification.recipients) {
      if (!r.suppress) {
        // Never recorded: an address longer than an address can be.
        const repeated =
          repeats && Buffer.byteLength(r.recipient) <= MAX_ADDRESS_OCTETS
            ? await repeatedFailure(r, repeats)
            : undefined;
        if (!repeated) continue;
        const hard = repeated.kind === 'host-unknown';
        entries.push({
          address: r.recipient,
          reason: hard ? 'hard-bounce' : 'soft-bounce',
          source: `dsn:${key}`,
          status: r.status,
          permanent: hard,
          detail: `${r.reason} on ${repeated.days} days`,
          verified: verifiedVia,
          tenant,
        });
        continue;
      }
      const { recipient: address, status, permanent, reason: detail } = r;
      const verified = verifiedVia;
      // Scoped by `scopeOf`: a report that came by mail is one its tenant could have forged.
      entries.push({
        address,
        reason: 'hard-bounce',
        source: `dsn:${key}`,
        status,
        permanent,
        detail,
        verified,
        tenant,
      });
    }
  } else if (classification.kind === 'complaint' && classification.suppress) {
    for (const address of classification.recipients)
      entries.push({ address, reason: 'complaint', source: `arf:${key}`, verified: verifiedVia, tenant });
  }
  const suppressed: SuppressEntry[] = [];
  for (const entry of entries) {
    if (Buffer.byteLength(entry.address) > MAX_ADDRESS_OCTETS) continue;
    await suppress(entry);
    suppressed.push(entry);
  }
  return suppressed;
}
