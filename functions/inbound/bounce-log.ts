import { SENDER_SIDE_REASONS } from './bounce-reasons.js';
import type { InboundClassification } from './classify-inbound.js';
import { findAddresses } from './mail-text.js';

/** `<bob@example.net>: unknown` → `<***@example.net>: unknown`: the domain stays, the person goes. */
export function maskAddresses(text: string): string {
  const found = findAddresses(text, 1000);
  if (found.length === 0) return text;
  const out: string[] = [];
  let at = 0;
  for (const f of found) {
    out.push(text.slice(at, f.start), `***${f.address.slice(f.address.lastIndexOf('@'))}`);
    at = f.end;
  }
  out.push(text.slice(at));
  return out.join('');
}

/**
 * What a log line may say about a bounce or delay report: per recipient its domain, reason, permanence, status, reply
 * code, whether it was suppressed, and the diagnostic with every address masked. Undefined for other kinds.
 */
export function bounceLogFacts(classification: InboundClassification): Record<string, unknown> | undefined {
  if (classification.kind !== 'bounce' && classification.kind !== 'delay') return undefined;
  return {
    format: classification.format,
    recipients: classification.recipients.map((r) => ({
      domain: r.recipient.slice(r.recipient.lastIndexOf('@') + 1),
      reason: r.reason,
      permanent: r.permanent,
      status: r.status,
      replyCode: r.replyCode,
      suppress: r.suppress,
      // Masked before it is cut, so that no address is cut into something the mask does not recognise.
      diagnostic:
        r.diagnosticCode === undefined ? undefined : maskAddresses(r.diagnosticCode.slice(0, 2000)).slice(0, 300),
    })),
  };
}

/** A bounce or delay report with a recipient failed for a reason on our side (address, reputation, rate, content). */
export const hasSenderSideFailure = (classification: InboundClassification): boolean =>
  (classification.kind === 'bounce' || classification.kind === 'delay') &&
  classification.recipients.some((r) => SENDER_SIDE_REASONS.has(r.reason));
