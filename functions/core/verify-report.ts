import type { InboundClassification, InboundMessage } from './inbound-report.js';
import {
  isRecipientHash,
  tokenOfMessageId,
  tokenOfVerpAddress,
  verifyReportToken,
  type ReportKeyring,
} from './message-id.js';

/**
 * What we sent, as the dispatcher stored it: the keyed hashes of a job's accepted recipients, its tenant, and its
 * tenant-scoped key (scopedJobKey) when the record names it.
 */
type SentMessage = { recipientHashes: string[]; tenant: string; key?: string };

/** What we sent, by the job's handle: the one port reports are checked, counted and tied to their job through. */
export interface SentMessages {
  /** The stored recipients, tenant and key of the job with this handle; undefined when no finished job has it. */
  sentMessageOf(handle: string): Promise<SentMessage | undefined>;
}

/** Where a report may name the message it is about. */
export type ReportEvidence = {
  /** Message-IDs the report carries for the original (its Message-ID, In-Reply-To, References, Original-Message-ID). */
  messageIds?: string[];
  /** Addresses the report was delivered to (Delivered-To, X-Original-To, Envelope-To, To): a VERP address. */
  envelopeTo?: string[];
  /** Report tokens carried as such (an SES message tag). */
  tokens?: string[];
};

export type ReportVerification = {
  /** The report is about a message we sent, and every address it names was a recipient of that message. */
  verified: boolean;
  reason: 'verified' | 'no-token' | 'forged-token' | 'unknown-message' | 'not-a-recipient' | 'no-verifier';
  /** Where the token that verified was found. */
  via?: 'message-id' | 'envelope' | 'tag';
  keyId?: string;
  /** The job's handle (the digest its stored result is named by). */
  handle?: string;
  /** The tenant whose mail the report is about, when it verified: complaints suppress for that tenant only. */
  tenant?: string;
  /** The tenant-scoped key of the job a verified report is about (its status records the report). */
  key?: string;
};

export type VerifyReportDeps = {
  keyring: ReportKeyring;
  sent: SentMessages;
  /** The domain of VERP addresses; without it, envelope addresses are not read. */
  bounceDomain?: string;
};

/** How many token-shaped candidates a report may make us check; the rest are ignored (hostile input is bounded). */
const MAX_CANDIDATES = 32;

/**
 * Decides whether a bounce or complaint is about mail this deployment sent, to the addresses it names: a token that
 * only our keys make (in a Message-ID the report quotes, the VERP address it was delivered to, or an SES tag) must
 * verify, and each named address must be one of that message's recipients (compared with the keyed hashes stored
 * for the job). Anything less is unverified and must never suppress anyone.
 */
export async function verifyReport(
  evidence: ReportEvidence,
  addresses: string[],
  deps: VerifyReportDeps,
): Promise<ReportVerification> {
  const candidates: Array<{ token: string; via: NonNullable<ReportVerification['via']> }> = [];
  const add = (token: string | undefined, via: NonNullable<ReportVerification['via']>) => {
    if (!token || candidates.length >= MAX_CANDIDATES || candidates.some((c) => c.token === token)) return;
    candidates.push({ token, via });
  };
  // The envelope first: a VERP address names the message even when the report quotes nothing.
  const { bounceDomain } = deps;
  if (bounceDomain) {
    const envelope = (evidence.envelopeTo ?? []).slice(0, MAX_CANDIDATES);
    for (const address of envelope) add(tokenOfVerpAddress(address, bounceDomain), 'envelope');
  }
  for (const token of (evidence.tokens ?? []).slice(0, MAX_CANDIDATES)) add(token.toLowerCase(), 'tag');
  for (const id of (evidence.messageIds ?? []).slice(0, MAX_CANDIDATES * 4)) add(tokenOfMessageId(id), 'message-id');
  if (candidates.length === 0) return { verified: false, reason: 'no-token' };

  let best: ReportVerification = { verified: false, reason: 'forged-token' };
  const checked = new Set<string>();
  for (const { token, via } of candidates) {
    const signed = verifyReportToken(token, deps.keyring);
    if (!signed || checked.has(signed.handle)) continue;
    checked.add(signed.handle);
    const sent = await deps.sent.sentMessageOf(signed.handle);
    const facts = { via, keyId: signed.keyId, handle: signed.handle };
    if (!sent) {
      if (best.reason === 'forged-token') best = { verified: false, reason: 'unknown-message', ...facts };
      continue;
    }
    const wasRecipient = (address: string) =>
      sent.recipientHashes.some((hash) => isRecipientHash(address, hash, deps.keyring));
    if (addresses.every(wasRecipient))
      return { verified: true, reason: 'verified', ...facts, tenant: sent.tenant, key: sent.key };
    best = { verified: false, reason: 'not-a-recipient', ...facts };
  }
  return best;
}

/** The addresses a report names: the failed or delayed recipients of a DSN, the complained-about ones of an ARF. */
function reportedAddresses(classification: InboundClassification): string[] {
  const { kind } = classification;
  if (kind === 'bounce' || kind === 'delay') return classification.recipients.map((r) => r.recipient);
  if (classification.kind === 'complaint') return classification.recipients;
  return [];
}

/**
 * The poller's verifier: a parsed report checked with the deployment's keys (read on each call, so a rotation takes
 * effect within the secret's cache time) against what the dispatcher stored.
 */
export function createInboundReportVerifier(deps: {
  keys: () => Promise<ReportKeyring>;
  sent: SentMessages;
  bounceDomain?: string;
}) {
  return async (message: InboundMessage, classification: InboundClassification): Promise<ReportVerification> => {
    const original = 'original' in classification ? classification.original : undefined;
    const evidence: ReportEvidence = { messageIds: original?.messageIds ?? [], envelopeTo: message.envelopeTo ?? [] };
    const keyring = await deps.keys();
    const { sent, bounceDomain } = deps;
    return verifyReport(evidence, reportedAddresses(classification), { keyring, sent, bounceDomain });
  };
}
