import { describe, expect, it } from 'vitest';
import { BounceReasons } from '#core/inbound-report.js';
import { classifyFailure, type FailureFacts } from '#inbound/bounce-reasons.js';

type Row = [
  what: string,
  facts: Pick<FailureFacts, 'status' | 'replyCode' | 'diagnosticCode'> & { action?: 'failed' | 'delayed' },
  expected: { reason: string; permanent: boolean; suppress: boolean },
];

// Replies as real servers word them, one or more per reason of the taxonomy.
const rows: Row[] = [
  [
    'an unspecific 5.0.0 that says the user is unknown',
    {
      status: '5.0.0',
      replyCode: 550,
      diagnosticCode: '550 5.0.0 <a@example.org>: User unknown in virtual alias table',
    },
    { reason: 'user-unknown', permanent: true, suppress: true },
  ],
  [
    'a 5.5.0 "mailbox unavailable (user does not exist)"',
    {
      status: '5.5.0',
      replyCode: 550,
      diagnosticCode: '550 5.5.0 Requested action not taken: mailbox unavailable (user does not exist)',
    },
    { reason: 'user-unknown', permanent: true, suppress: true },
  ],
  [
    'a bare 550 "mailbox unavailable" without a status',
    { replyCode: 550, diagnosticCode: '550 Requested action not taken: mailbox unavailable' },
    { reason: 'user-unknown', permanent: true, suppress: true },
  ],
  [
    'a 5.1.1 that names a blocklist',
    {
      status: '5.1.1',
      replyCode: 550,
      diagnosticCode: '550 5.1.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org',
    },
    { reason: 'policy-or-blocked', permanent: true, suppress: false },
  ],
  [
    'a 5.1.8: our own sender domain',
    {
      status: '5.1.8',
      replyCode: 553,
      diagnosticCode: '553 5.1.8 <bounces@example.com>: Sender address rejected: Domain not found',
    },
    { reason: 'sender-problem', permanent: true, suppress: false },
  ],
  [
    'a 5.1.7: our own sender address',
    { status: '5.1.7', replyCode: 550, diagnosticCode: '550 5.1.7 Invalid address' },
    { reason: 'sender-problem', permanent: true, suppress: false },
  ],
  [
    'an SPF failure behind 5.7.1',
    {
      status: '5.7.1',
      replyCode: 550,
      diagnosticCode: '550 5.7.1 SPF check failed: example.com does not designate 192.0.2.1 as permitted sender',
    },
    { reason: 'policy-or-blocked', permanent: true, suppress: false },
  ],
  [
    "Gmail's DMARC refusal (5.7.26)",
    {
      status: '5.7.26',
      replyCode: 550,
      diagnosticCode: "550-5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy",
    },
    { reason: 'policy-or-blocked', permanent: true, suppress: false },
  ],
  [
    "Gmail's reputation deferral (4.7.28)",
    {
      status: '4.7.28',
      replyCode: 421,
      diagnosticCode: '421-4.7.28 Our system has detected an unusual rate of unsolicited mail',
    },
    { reason: 'policy-or-blocked', permanent: false, suppress: false },
  ],
  [
    "Exim's ACL refusal",
    { status: '5.0.0', replyCode: 550, diagnosticCode: '550 5.0.0 Administrative prohibition' },
    { reason: 'policy-or-blocked', permanent: true, suppress: false },
  ],
  [
    'too many connections',
    { status: '4.7.0', replyCode: 421, diagnosticCode: '421 4.7.0 Too many connections from your host, slow down' },
    { reason: 'rate-limited', permanent: false, suppress: false },
  ],
  [
    "Office 365's directory-based edge blocking (5.4.1 Access denied)",
    {
      status: '5.4.1',
      replyCode: 550,
      diagnosticCode: '550 5.4.1 Recipient address rejected: Access denied. AS(201806281)',
    },
    { reason: 'user-unknown', permanent: true, suppress: true },
  ],
  [
    'a full mailbox, even with a 5.x.x status',
    { status: '5.2.2', replyCode: 552, diagnosticCode: '552 5.2.2 Mailbox full' },
    { reason: 'mailbox-full', permanent: true, suppress: false },
  ],
  [
    'a disabled account',
    {
      status: '5.2.1',
      replyCode: 550,
      diagnosticCode: '550 5.2.1 The email account that you tried to reach is disabled',
    },
    { reason: 'mailbox-disabled', permanent: true, suppress: true },
  ],
  [
    'a message too large',
    { status: '5.3.4', replyCode: 552, diagnosticCode: '552 5.3.4 Message size exceeds fixed limit' },
    { reason: 'message-too-large', permanent: true, suppress: false },
  ],
  [
    'a spam verdict behind 5.7.1',
    { status: '5.7.1', replyCode: 554, diagnosticCode: '554 5.7.1 Message rejected as spam by Content Filtering' },
    { reason: 'spam-or-content', permanent: true, suppress: false },
  ],
  [
    'a domain without MX (NXDOMAIN), once',
    {
      status: '5.4.4',
      diagnosticCode: "DNS Error: DNS type 'mx' lookup of example.invalid responded with code NXDOMAIN",
    },
    { reason: 'host-unknown', permanent: true, suppress: false },
  ],
  [
    'a message returned after the retry period',
    { status: '4.4.7', diagnosticCode: 'connect to mx.example.org[192.0.2.9]:25: Connection timed out' },
    { reason: 'expired', permanent: false, suppress: false },
  ],
  [
    'a greylisting deferral in a delay warning',
    {
      action: 'delayed',
      status: '4.2.0',
      replyCode: 451,
      diagnosticCode: '451 4.2.0 Greylisted, please try again later',
    },
    { reason: 'temporary-other', permanent: false, suppress: false },
  ],
  [
    'a 5.0.0 that says nothing',
    { status: '5.0.0', replyCode: 554, diagnosticCode: '554 5.0.0 Something went wrong' },
    { reason: 'unknown', permanent: true, suppress: false },
  ],
];

describe('why a recipient failed', () => {
  it.each(rows)('reads %s from the status, the reply code and the text', (_, facts, expected) => {
    expect(classifyFailure({ action: 'failed', ...facts })).toEqual(expected);
  });

  it('covers every reason of the taxonomy', () => {
    const reasons = new Set(rows.map(([, , e]) => e.reason));
    expect([...reasons].sort()).toEqual([...BounceReasons].sort());
  });
});
