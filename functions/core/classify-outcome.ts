import type { RecipientResult, SendAction, SendOutcome } from './send-outcome.js';
import type { TransportFailure } from './transport-failure.js';

// RFC 3463: class.subject.detail. nodemailer exposes only the basic reply code, so the enhanced one is read from the
// reply text, e.g. "550 5.1.1 <bob@example.com>: Recipient address rejected".
const ENHANCED_STATUS = /\b([245])\.(\d{1,3})\.(\d{1,3})\b/;
// A match starts only where a word does (after a space, `<`, `>` or `"`): a failed start is not tried again inside
// the same word, which keeps the scan linear.
const ADDRESS_IN_TEXT = /(?<![^\s<>"])<?[^\s<>@"]+@[^\s<>"]+>?/g;
// Words providers use when they want us to slow down (SES: "454 Throttling failure: Maximum sending rate exceeded";
// Microsoft: "421 4.7.0 Too many connections"; Gmail: "421 4.7.28 ... unusual rate of unsolicited mail").
const RATE_WORDS = [
  /throttl|rate limit|rate exceeded|sending rate|unusual rate|slow down|quota/i,
  /too many (?:connections|messages|mails|requests|sessions)/i,
];
// "try again later" followed anywhere by "rate": two searches, not one `.*` that rescans from every occurrence.
const TRY_LATER = /try again later/i;
const RATE = /rate/i;
// Replies that mean the sender or relay setup is wrong, not the message: unverified identities, relay refusal.
// Exchange Online refuses a From the signed-in mailbox or app may not send as at the final dot:
// "554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; …".
const SETUP_WORDS = [
  /not verified|unverified|relay (?:access )?denied|relaying denied|not authori[sz]ed to send/i,
  /sender address rejected: not owned|authentication required|SendAsDenied/i,
];
/**
 * How much of a reply is read: a server's reply (or an error text) can be any length, and every decision here is
 * made within its first lines.
 */
const MAX_SCANNED_CHARS = 4096;

const asksToSlowDown = (reply: string): boolean => {
  if (RATE_WORDS.some((words) => words.test(reply))) return true;
  const later = TRY_LATER.exec(reply);
  return later !== null && RATE.test(reply.slice(later.index));
};
const blamesSetup = (reply: string): boolean => SETUP_WORDS.some((words) => words.test(reply));

/** nodemailer codes that mean our configuration or credentials are wrong. */
const SMTP_SETUP_CODES = new Set(['EAUTH', 'ENOAUTH', 'EOAUTH2', 'ETLS', 'EREQUIRETLS', 'ECONFIG', 'EPROXY']);
/** nodemailer codes for a connection that failed or broke. */
const SMTP_CONNECTION_CODES = new Set([
  'ECONNECTION',
  'ESOCKET',
  'ETIMEDOUT',
  'EDNS',
  'EPROTOCOL',
  'EMAXLIMIT',
  'ESTREAM',
]);

/**
 * Commands of the session itself, before any message: a refusal here is of us (our address on a blocklist, our EHLO
 * name, our TLS), never of the job. `CONN` is nodemailer's name for the greeting and the connection.
 */
const SMTP_SESSION_COMMANDS = new Set(['CONN', 'EHLO', 'HELO', 'LHLO', 'STARTTLS']);
/**
 * Node's TLS failures under a nodemailer error: a TLS mode mismatch (implicit TLS against a plaintext port gives
 * `ERR_SSL_WRONG_VERSION_NUMBER`) or a certificate we do not trust. Either is our configuration.
 */
const TLS_SYSTEM_CODE = /^(?:ERR_SSL_|ERR_TLS_|EPROTO$)/;
const CERTIFICATE_SYSTEM_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
]);

/** SESv2 (and v1, and SDK) error names meaning our account or identity setup is wrong. */
const SES_SETUP_ERRORS = new Set([
  'MailFromDomainNotVerifiedException',
  'MailFromDomainNotVerified',
  'AccountSuspendedException',
  'SendingPausedException',
  'AccountSendingPausedException',
  'ConfigurationSetSendingPausedException',
  'ConfigurationSetDoesNotExistException',
  'NotFoundException',
  'AccessDeniedException',
  'AccessDenied',
  'UnrecognizedClientException',
  'InvalidClientTokenId',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'ExpiredTokenException',
  'ExpiredToken',
  'CredentialsProviderError',
]);
/** SES error names that ask us to slow down. */
const SES_THROTTLE_ERRORS = new Set([
  'TooManyRequestsException',
  'Throttling',
  'ThrottlingException',
  'LimitExceededException',
]);
/** SES error names that are permanent for this message. */
const SES_REJECT_ERRORS = new Set([
  'MessageRejected',
  'BadRequestException',
  'InvalidParameterValue',
  'ValidationError',
]);

/** Reads the RFC 3463 enhanced status code out of a reply line, if there is one. */
export function parseEnhancedStatus(reply: string | undefined): string | undefined {
  const match = reply ? ENHANCED_STATUS.exec(reply) : null;
  return match ? `${match[1]}.${match[2]}.${match[3]}` : undefined;
}

/**
 * Replaces addresses in provider text, so that replies can be logged and published without personal data. Only the
 * first 4 KB are kept (and masked): the text is for operators, and what follows is not read.
 */
export function maskAddresses(text: string): string {
  return text.slice(0, MAX_SCANNED_CHARS).replace(ADDRESS_IN_TEXT, '<address>');
}

const trimDetail = (text: string | undefined): string | undefined =>
  text === undefined
    ? undefined
    : maskAddresses(text.slice(0, MAX_SCANNED_CHARS).replace(/\s+/g, ' ').trim()).slice(0, 300);

/**
 * Decides what one SMTP reply means, by its basic and enhanced code, where it came and what it says.
 * RFC 5321 4.2.1: 4yz transient, 5yz permanent; RFC 3463 subjects refine that.
 */
function classifySmtpReply(responseCode: number, fullReply: string, command: string | undefined): SendAction {
  const reply = fullReply.slice(0, MAX_SCANNED_CHARS);
  const enhanced = parseEnhancedStatus(reply);
  if (responseCode === 535 || responseCode === 534 || responseCode === 530 || responseCode === 538) return 'blocked';
  if (responseCode >= 400 && responseCode < 500) {
    if (asksToSlowDown(reply)) return 'throttled';
    // 454 is also "TLS not available due to temporary reason" and "Temporary authentication failure".
    return 'retry';
  }
  if (responseCode >= 500 && responseCode < 600) {
    // RFC 5321 4.5.3.1.10: "too many recipients" may come as 552 and is to be treated as temporary.
    if (enhanced === '4.5.3' || enhanced === '5.5.3' || /too many recipients/i.test(reply)) return 'retry';
    // 503 bad sequence: the session's state, not the message (nodemailer's isPermanentResponseCode agrees).
    if (responseCode === 503) return 'retry';
    if (blamesSetup(reply)) return 'blocked';
    // A sender refused for policy (5.7.x) at MAIL FROM is our identity or relay permission, not this job.
    if (command === 'MAIL FROM' && enhanced?.startsWith('5.7.')) return 'blocked';
    if (enhanced?.startsWith('4.')) return asksToSlowDown(reply) ? 'throttled' : 'retry';
    return 'rejected';
  }
  return 'retry';
}

/**
 * One recipient refused at RCPT TO while others were accepted: `deferred` for a temporary refusal (4xx, a 552 "too
 * many recipients"), to be sent again; `rejected` for a permanent one.
 */
export function classifyRecipientRefusal(refusal: {
  responseCode?: number;
  response?: string;
}): 'deferred' | 'rejected' {
  const action = classifySmtpReply(refusal.responseCode ?? 0, refusal.response ?? '', 'RCPT TO');
  return action === 'retry' || action === 'throttled' ? 'deferred' : 'rejected';
}

function classifySmtp(failure: Extract<TransportFailure, { provider: 'smtp' }>): SendOutcome {
  const { code, responseCode, response, command } = failure;
  const detail = trimDetail(response ?? failure.message);
  const enhancedStatus = parseEnhancedStatus(response);
  const base = { detail, responseCode, enhancedStatus };

  // Every recipient refused at RCPT: permanent only if every refusal was.
  if (failure.rejected && failure.rejected.length > 0) {
    const recipients: RecipientResult[] = failure.rejected.map((r) => ({
      recipient: r.recipient,
      status: 'rejected',
      responseCode: r.responseCode,
      enhancedStatus: parseEnhancedStatus(r.response),
    }));
    const actions = failure.rejected.map((r) => classifySmtpReply(r.responseCode ?? 0, r.response ?? '', 'RCPT TO'));
    const action = actions.includes('blocked')
      ? 'blocked'
      : actions.includes('throttled')
        ? 'throttled'
        : actions.every((a) => a === 'rejected')
          ? 'rejected'
          : 'retry';
    const first = failure.rejected[0];
    return {
      action,
      reason: `smtp-rcpt-${first?.responseCode ?? 'refused'}`,
      ...base,
      responseCode: first?.responseCode,
      enhancedStatus: parseEnhancedStatus(first?.response),
      recipients,
    };
  }
  const system = failure.systemCode;
  if (system && (TLS_SYSTEM_CODE.test(system) || CERTIFICATE_SYSTEM_CODES.has(system))) {
    return { action: 'blocked', reason: `smtp-tls-${system.toLowerCase()}`, ...base, recipients: [] };
  }
  // A permanent refusal of the session (a "554 5.7.1" greeting, EHLO and HELO both refused) would refuse every job.
  const permanent = responseCode !== undefined && responseCode >= 500 && responseCode < 600;
  if (command && SMTP_SESSION_COMMANDS.has(command) && permanent) {
    return { action: 'blocked', reason: `smtp-session-${responseCode}`, ...base, recipients: [] };
  }
  if (code && SMTP_SETUP_CODES.has(code)) {
    // A 4xx reply to AUTH is the server's trouble, not our credentials.
    if (responseCode !== undefined && responseCode >= 400 && responseCode < 500) {
      return {
        action: classifySmtpReply(responseCode, response ?? '', command),
        reason: `smtp-${responseCode}`,
        ...base,
        recipients: [],
      };
    }
    return {
      action: 'blocked',
      reason: `smtp-${code.toLowerCase()}${responseCode ? `-${responseCode}` : ''}`,
      ...base,
      recipients: [],
    };
  }
  if (responseCode !== undefined && responseCode > 0) {
    return {
      action: classifySmtpReply(responseCode, response ?? '', command),
      reason: `smtp-${responseCode}`,
      ...base,
      recipients: [],
    };
  }
  if (code && SMTP_CONNECTION_CODES.has(code)) {
    // No reply came. Only once the final '.' may have gone out can the server have taken the message (RFC 1047).
    const ambiguous = failure.dataSent ? { ambiguous: true } : {};
    return { action: 'retry', reason: `smtp-${code.toLowerCase()}`, ...base, recipients: [], ...ambiguous };
  }
  // nodemailer refused the envelope or message before talking to the server (size, no recipients): the job's fault.
  if ((code === 'EENVELOPE' || code === 'EMESSAGE' || code === 'EMAXRECIPIENTS') && command === 'API') {
    return { action: 'rejected', reason: `smtp-${code.toLowerCase()}`, ...base, recipients: [] };
  }
  return { action: 'retry', reason: code ? `smtp-${code.toLowerCase()}` : 'smtp-unknown', ...base, recipients: [] };
}

function classifySes(failure: Extract<TransportFailure, { provider: 'ses' }>): SendOutcome {
  const base = { reason: `ses-${failure.name}`, detail: trimDetail(failure.message), recipients: [] };
  if (SES_THROTTLE_ERRORS.has(failure.name) || failure.throttling || failure.httpStatus === 429)
    return { action: 'throttled', ...base };
  if (SES_SETUP_ERRORS.has(failure.name)) return { action: 'blocked', ...base };
  if (SES_REJECT_ERRORS.has(failure.name)) {
    // SES answers an unverified From with MessageRejected: "Email address is not verified."
    return { action: blamesSetup(failure.message.slice(0, MAX_SCANNED_CHARS)) ? 'blocked' : 'rejected', ...base };
  }
  if (failure.httpStatus === 403) return { action: 'blocked', ...base };
  // No HTTP answer at all (a timeout, a reset): SES may have accepted the message; SendEmail has no idempotency token.
  return { action: 'retry', ...base, ambiguous: failure.httpStatus === undefined };
}

/**
 * Turns a failed send into one of the five actions (see {@link SendActions}).
 * Pure: the facts come from the adapter's `toTransportFailure`, the rules live here.
 */
export function classifyOutcome(failure: TransportFailure): SendOutcome {
  return failure.provider === 'smtp' ? classifySmtp(failure) : classifySes(failure);
}
