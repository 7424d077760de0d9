import type { BounceReason, FailureFacts, FailureVerdict } from '#core/inbound-report.js';

export type { BounceReason, FailureFacts, FailureVerdict };

/**
 * Reasons that say our own setup or reputation needs attention (our address or domain, our IP's or domain's
 * reputation, SPF/DKIM/DMARC, our sending rate, our content): they never suppress the recipient, and their rate
 * is watched instead.
 */
export const SENDER_SIDE_REASONS: ReadonlySet<BounceReason> = new Set([
  'sender-problem',
  'policy-or-blocked',
  'rate-limited',
  'spam-or-content',
]);

/**
 * The recipient's own permanent failures: the only reasons a bounce suppresses an address for. `host-unknown` is not
 * among them: a DNS failure is as often ours or transient as it is the domain's.
 */
const SUPPRESSING_REASONS: ReadonlySet<BounceReason> = new Set(['user-unknown', 'mailbox-disabled']);

/**
 * Enhanced status codes by `class.subject.detail` with the class as `x` (RFC 3463 3, IANA registry). `specific`
 * codes decide the reason unless the text names a sender-side cause; unspecific ones (x.0.0, 5.5.0, 5.4.1, 5.7.1…)
 * are a default the text may replace.
 */
const STATUS_TABLE: Array<{ codes: string[]; reason: BounceReason; specific: boolean }> = [
  { codes: ['x.1.1', 'x.1.3', 'x.1.6', 'x.1.10'], reason: 'user-unknown', specific: true },
  { codes: ['x.1.2', 'x.4.4'], reason: 'host-unknown', specific: true },
  { codes: ['x.1.7', 'x.1.8'], reason: 'sender-problem', specific: true },
  { codes: ['x.2.1'], reason: 'mailbox-disabled', specific: true },
  { codes: ['x.2.2'], reason: 'mailbox-full', specific: true },
  { codes: ['x.2.3', 'x.3.4'], reason: 'message-too-large', specific: true },
  { codes: ['x.4.7'], reason: 'expired', specific: true },
  {
    codes: ['x.7.23', 'x.7.24', 'x.7.25', 'x.7.26', 'x.7.27', 'x.7.28', 'x.7.650', 'x.7.606', 'x.7.708'],
    reason: 'policy-or-blocked',
    specific: true,
  },
  { codes: ['x.7.0', 'x.7.1', 'x.7.133', 'x.7.129'], reason: 'policy-or-blocked', specific: false },
  { codes: ['x.7.509', 'x.7.510'], reason: 'policy-or-blocked', specific: true },
  {
    codes: ['x.4.0', 'x.4.1', 'x.4.2', 'x.4.3', 'x.4.5', 'x.4.6', 'x.3.0', 'x.3.1', 'x.3.2', 'x.3.5', 'x.2.0'],
    reason: 'temporary-other',
    specific: false,
  },
  { codes: ['x.6.0', 'x.6.1', 'x.6.2', 'x.6.3', 'x.6.4', 'x.6.5'], reason: 'spam-or-content', specific: false },
];
const STATUS_REASONS = new Map(STATUS_TABLE.flatMap((row) => row.codes.map((code) => [code, row] as const)));

/**
 * Phrases of diagnostic text, lowercase, by reason, in the order they are tried: the sender-side causes first (they
 * win over any status, since "550 5.1.1 blocked by Spamhaus" says nothing about the mailbox), then the recipient's
 * (which replace only an unspecific status, so "5.0.0 no such user" is a user-unknown).
 */
const DIAGNOSTIC_TABLE: Array<{ reason: BounceReason; phrases: string[]; weak?: true }> = [
  // Idioms more precise than the words of the rows below ("Relay access denied" is no policy block).
  {
    reason: 'user-unknown',
    phrases: [
      'recipient address rejected: access denied',
      'resolver.adr.recipnotfound',
      'account that you tried to reach does not exist',
      'not listed in domino directory',
      'not listed in the directory',
      'not listed in public name',
      'mailbox unavailable or access denied',
    ],
  },
  {
    reason: 'host-unknown',
    phrases: [
      'relay access denied',
      'relaying denied',
      'relay denied',
      'not permitted to relay',
      'unable to relay',
      'relay not permitted',
    ],
  },
  { reason: 'mailbox-full', phrases: ['mailbox full', 'mailbox is full', 'over quota', 'quota exceeded'] },
  {
    reason: 'sender-problem',
    phrases: [
      'sender address rejected',
      'sender verify failed',
      'sender verification',
      'domain of sender address',
      'sender domain must exist',
      'sender address does not',
      'invalid sender',
      'sender domain does not',
      'unverified sender',
      'mail from address must',
      'sender is not allowed',
      'return path',
      'bad sender',
    ],
  },
  {
    reason: 'rate-limited',
    phrases: [
      'rate limit',
      'ratelimit',
      'too many connections',
      'too many messages',
      'too many concurrent',
      'receiving mail at a rate',
      'receiving mail too quickly',
      'sending too fast',
      'too much mail',
      'throttl',
      'exceeded the rate',
      'connection rate',
      'message rate',
      'too many recipients this session',
      'slow down',
    ],
  },
  // Our IP or domain: its reputation, blocklists, authentication (SPF, DKIM, DMARC).
  {
    reason: 'policy-or-blocked',
    phrases: [
      'spamhaus',
      'spamcop',
      'sorbs',
      'barracuda',
      'blocklist',
      'blacklist',
      'block list',
      'black list',
      'dnsbl',
      ' rbl',
      'rbl ',
      'reputation',
      'spf',
      'dkim',
      'dmarc',
      'poor reputation',
      'listed at',
      'listed in',
      'is listed',
      'your ip',
      'ip address',
      'client host',
      'tss04',
      'tss01',
      'authentication required',
    ],
  },
  // The message itself: spam scores, viruses, content filters.
  {
    reason: 'spam-or-content',
    phrases: [
      'spam',
      'virus',
      'malware',
      'content rejected',
      'message content',
      'content filter',
      'junk mail',
      'phish',
      'unsolicited',
      'bulk mail',
      'suspicious',
      'attachment',
      'message rejected as',
      'not accepted for policy reasons',
      'infected',
      'high probability',
      'content not accepted',
      'message has been blocked',
      'mail content denied',
      'ubc:',
      'uribl',
      'surbl',
      'bulk email',
      'mass mail',
      'antispam',
    ],
  },
  // Any other refusal of us or of this message by policy.
  {
    reason: 'policy-or-blocked',
    phrases: [
      'blocked',
      'not authorized to send',
      'not authorised to send',
      'access denied',
      'banned',
      'denied by policy',
      'policy reasons',
      'rejected by policy',
      'policy violation',
      'not permitted to send',
      'permission to send',
      'restrictedtorecipientspermission',
      'refused to talk to me',
      'unauthorized sender',
      'unauthorised sender',
      'envelope blocked',
      'sender blocked',
      'prohibited',
      // Exim's answer when an ACL refuses the message.
      'administrative prohibition',
    ],
  },
  // Our account or domain, in the words a recipient's disabled mailbox is told by (disabled, suspended, inactive);
  // after the rows above, which name the cause more precisely (a reputation, a block).
  {
    reason: 'sender-problem',
    phrases: [
      'sender account',
      'sending account',
      'sender domain',
      'sending domain',
      'your domain',
      'sending from your',
      'for sending',
    ],
  },
  {
    reason: 'message-too-large',
    phrases: [
      'message too large',
      'message too big',
      'message is too large',
      'message is too big',
      'message size exceeds',
      'exceeds the maximum message size',
      'exceeds size limit',
      'maximum message size',
      'message length exceeds',
      'size exceeds',
      'exceeded maximum size',
      'message exceeds the size',
      'message size exceeded',
      'max message size',
      'size limit exceeded',
    ],
  },
  {
    reason: 'mailbox-full',
    phrases: [
      'mailbox full',
      'mailbox is full',
      'mailbox has exceeded',
      'mailbox exceeded',
      'over quota',
      'overquota',
      'quota exceeded',
      'exceeded storage',
      'exceeds storage',
      'insufficient storage',
      'disk quota',
      'mailbox size limit',
      'out of storage',
      'inbox is full',
      'full mailbox',
      'storage allocation',
      'exceeded its quota',
      'over its quota',
      'mail quota',
      'would exceed',
      'not enough space',
      'quota full',
      'mailbox exceeds',
      'user is over',
      'account is full',
      'mailfolder is full',
      'too many messages in',
    ],
  },
  {
    reason: 'mailbox-disabled',
    phrases: [
      'disabled',
      'suspended',
      'deactivated',
      'inactive',
      'no longer active',
      'account expired',
      'account has been locked',
      'account is locked',
      'mailbox is locked',
      'not active',
      'account closed',
      'account is closed',
      'mailbox is inactive',
      'mailbox has been blocked',
      'mailbox unavailable due to',
    ],
  },
  {
    reason: 'host-unknown',
    phrases: [
      'host not found',
      'domain not found',
      'unknown host',
      'host unknown',
      'no mx',
      'mx record',
      'nxdomain',
      'name or service not known',
      'domain does not exist',
      'domain name not found',
      'unrouteable',
      'unroutable',
      'relay access denied',
      'relaying denied',
      'relay denied',
      'do not relay',
      'rcpthosts',
      'relaying not allowed',
      'dns error',
      'unknown domain',
      'domain is not',
      'no such domain',
      'does not accept mail',
      'null mx',
      'not a valid domain',
      'mail loops back',
      'loops back to myself',
      'host or domain name not found',
      'domain not in',
      'address lookup failed',
      'resolver.adr.recipientdomain',
    ],
  },
  {
    reason: 'user-unknown',
    phrases: [
      'user unknown',
      'unknown user',
      'no such user',
      'no such recipient',
      'no such mailbox',
      'no such address',
      'no such person',
      'does not exist',
      "doesn't exist",
      'not exist',
      'user not found',
      'recipient not found',
      'mailbox not found',
      'address not found',
      'recipnotfound',
      'no mailbox',
      'invalid recipient',
      'invalid mailbox',
      'unknown recipient',
      'unknown address',
      'addressee unknown',
      'bad destination mailbox',
      'is not a valid mailbox',
      'invalid address',
      "couldn't be found",
      'could not be found',
      'not a valid user',
      'user doesn',
      'unknown local part',
      'recipient unknown',
      'no account',
      'unknown or illegal alias',
      'not listed in',
      'mailbox does not',
      'no longer available',
      'undeliverable address',
      'user invalid',
      'unrecognized recipient',
      'mailbox unknown',
      'account does not',
      'no valid recipients',
      'not our customer',
      'no longer valid',
      'not a known user',
      'non-existent',
      'nonexistent',
      'inexistent',
      'user not listed',
      'mailbox not available',
      'unknown account',
      'mail-box not found',
      'no mail box',
      'bad_recipient',
      'bad recipient',
      'not an active address',
      'unknown e-mail address',
      'unknown email address',
      'invalid user',
      'not a valid recipient',
      'utilisateur inconnu',
      'unbekannt',
    ],
  },
  {
    reason: 'expired',
    phrases: [
      'retry timeout exceeded',
      'delivery time expired',
      'message expired',
      'retry time',
      'could not be delivered within',
      'has been delayed for',
      'gave up',
      'giving up',
      'too long in queue',
      'timed out while',
      'was not delivered within',
      'expired',
    ],
  },
  {
    reason: 'temporary-other',
    phrases: [
      'connection timed out',
      'connection refused',
      'timed out',
      'timeout',
      'temporar',
      'try again',
      'service unavailable',
      'system busy',
      'local error',
      'resources',
      'network is unreachable',
      'no route to host',
      'lost connection',
      'connection reset',
      'server busy',
      'deferred',
      'greylist',
      'graylist',
    ],
  },
  // Last, the weak rows: words that usually mean a refusal, or a bad mailbox, when no status says otherwise.
  { reason: 'policy-or-blocked', phrases: ['policy', 'not allowed', 'rejected by'], weak: true },
  {
    reason: 'user-unknown',
    phrases: [
      'recipient address rejected',
      'recipient rejected',
      'address rejected',
      'mailbox unavailable',
      'deleted',
      'no user',
      'no such',
    ],
    weak: true,
  },
];

/**
 * Reasons the diagnostic text can set over a specific status: the sender-side ones, and a full mailbox or a too large
 * message. An address is suppressed only when nothing in the report names another cause.
 */
const OVERRIDES_SPECIFIC: ReadonlySet<BounceReason> = new Set([
  ...SENDER_SIDE_REASONS,
  'mailbox-full',
  'message-too-large',
]);

/** Reasons that are temporary when nothing else says; any other is permanent then. */
const TEMPORARY_BY_NATURE: ReadonlySet<BounceReason> = new Set([
  'mailbox-full',
  'expired',
  'rate-limited',
  'temporary-other',
]);

/** The reason a short text names outright ("Unknown user", "Mailbox full"), by the precise rows of the table. */
export function reasonNamedIn(text: string): BounceReason | undefined {
  const lower = text.toLowerCase();
  return DIAGNOSTIC_TABLE.find((row) => !row.weak && row.phrases.some((p) => lower.includes(p)))?.reason;
}

/** The idioms: the rows before the first sender-side one, each more precise than the words it contains. */
const IDIOMS = DIAGNOSTIC_TABLE.slice(
  0,
  DIAGNOSTIC_TABLE.findIndex((row) => SENDER_SIDE_REASONS.has(row.reason)),
).flatMap((row) => row.phrases);

/**
 * The reason the diagnostic text names: the first row of the table it matches; but when that is an idiom of the
 * recipient's side, a sender-side cause named anywhere else in the text wins ("Recipient address rejected: Access
 * denied; client host blocked using Spamhaus" is a block, not an unknown user).
 */
function reasonSaid(text: string, hasStatus: boolean): BounceReason | undefined {
  const matches = (row: (typeof DIAGNOSTIC_TABLE)[number], within: string) =>
    (!row.weak || !hasStatus) && row.phrases.some((p) => within.includes(p));
  const first = DIAGNOSTIC_TABLE.find((row) => matches(row, text))?.reason;
  if (first === undefined || SENDER_SIDE_REASONS.has(first)) return first;
  // Each idiom's own words are taken out first, so its "access denied" is not read as a block.
  const rest = IDIOMS.reduce((left, idiom) => (left.includes(idiom) ? left.replaceAll(idiom, ' ') : left), text);
  const senderSide = DIAGNOSTIC_TABLE.find(
    (row) => !row.weak && SENDER_SIDE_REASONS.has(row.reason) && matches(row, rest),
  )?.reason;
  return senderSide ?? first;
}

/** The reason of one failed (or delayed) recipient, whether the failure is permanent, and whether to suppress. */
export function classifyFailure(facts: FailureFacts): FailureVerdict {
  const statusRow = facts.status ? STATUS_REASONS.get(`x${facts.status.slice(1)}`) : undefined;
  const text = (facts.diagnosticCode ?? '').toLowerCase();
  const said = text ? reasonSaid(text, statusRow !== undefined) : undefined;
  let reason: BounceReason;
  // A specific sender-side status (4.7.28: our IP's reputation) is more precise than the words around it.
  const statusSenderSide = statusRow?.specific && SENDER_SIDE_REASONS.has(statusRow.reason);
  if (said && !statusSenderSide && (OVERRIDES_SPECIFIC.has(said) || !statusRow?.specific)) reason = said;
  else if (statusRow) reason = statusRow.reason;
  else reason = 'unknown';

  const cls = facts.status?.[0] ?? (facts.replyCode !== undefined ? String(facts.replyCode)[0] : undefined);
  let permanent: boolean;
  if (facts.action === 'delayed') permanent = false;
  else if (cls === '5') permanent = true;
  else if (cls === '4') permanent = false;
  else if (facts.permanentHint !== undefined) permanent = facts.permanentHint;
  else permanent = !TEMPORARY_BY_NATURE.has(reason);

  // A temporary failure the report gave up on is an expiry, whatever its last error was.
  if (facts.action === 'failed' && !permanent && (reason === 'unknown' || reason === 'temporary-other'))
    reason = 'expired';
  if (facts.action === 'delayed' && reason === 'expired') reason = 'temporary-other';
  if (reason === 'unknown' && permanent === false) reason = 'temporary-other';
  // A status and a reply that disagree (Status 5.1.1 over "450 4.2.0 … try again later") prove no permanent failure
  // of the mailbox: read as the status says, never suppressed.
  const contradicted = facts.status?.[0] === '5' && facts.replyCode !== undefined && facts.replyCode < 500;
  return {
    reason,
    permanent,
    suppress: facts.action === 'failed' && permanent && !contradicted && SUPPRESSING_REASONS.has(reason),
  };
}
