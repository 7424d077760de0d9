import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { classifyInbound } from '#inbound/classify-inbound.js';
import { parseInbound } from '#inbound/parse-inbound.js';

const report = (type: string, boundary: string, parts: Array<[string, string]>, headers: string[] = []) =>
  [
    'From: Mail Delivery Subsystem <mailer-daemon@mx.example.net>',
    'To: bounces@example.com',
    'Subject: Delivery Status Notification (Failure)',
    ...headers,
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=${type};\r\n\tboundary="${boundary}"`,
    '',
    ...parts.flatMap(([contentType, body]) => [`--${boundary}`, `Content-Type: ${contentType}`, '', body, '']),
    `--${boundary}--`,
    '',
  ].join('\r\n');

const withEndings = (text: string, ending: string) => text.replace(/\r\n/g, ending);

// Shapes of the reports MTAs really send (fields, folding, comments), rebuilt with example addresses.
const samples = {
  postfix: report(
    'delivery-status',
    'B1',
    [
      ['text/plain; charset=us-ascii', 'This is the mail system at host mx.example.net.'],
      [
        'message/delivery-status',
        'Reporting-MTA: dns; mx.example.net\r\nX-Postfix-Queue-ID: 4Yb2kq1XzLz3x\r\nArrival-Date: Sat, 21 Nov 2026 10:00:00 +0000 (UTC)\r\n\r\nFinal-Recipient: rfc822; gone@example.net\r\nOriginal-Recipient: rfc822;gone@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx2.example.net\r\nDiagnostic-Code: smtp; 550 5.1.1 <gone@example.net>: Recipient address\r\n    rejected: User unknown in local recipient table',
      ],
      [
        'text/rfc822-headers',
        'Message-ID: <m1@example.com>\r\nX-Dispatch-Id: 0123456789abcdef0123456789abcdef\r\nSubject: Receipt',
      ],
    ],
    ['Auto-Submitted: auto-replied'],
  ),
  exim: report(
    'delivery-status',
    '1700000000-eximdsn-1',
    [
      ['text/plain; charset=us-ascii', 'This message was created automatically by mail delivery software.'],
      [
        'message/delivery-status',
        'Reporting-MTA: dns; mx.example.net\r\n\r\nAction: failed\r\nFinal-Recipient: rfc822;nobody@example.org\r\nStatus: 5.0.0\r\nRemote-MTA: dns; mx.example.org\r\nDiagnostic-Code: smtp; 550 No such user here',
      ],
      ['message/rfc822', 'Message-ID: <m2@example.com>\r\nSubject: hi\r\n\r\nbody'],
    ],
    ['X-Failed-Recipients: nobody@example.org', 'Auto-Submitted: auto-replied'],
  ),
  office365: report('delivery-status', '_000_abc', [
    ['text/html; charset="us-ascii"', "<p>Your message to user@contoso.example couldn't be delivered.</p>"],
    [
      'message/delivery-status',
      'Reporting-MTA: dns;AM0PR01MB1234.eurprd01.prod.exchangelabs.com\r\nReceived-From-MTA: dns;mail.example.com\r\nArrival-Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\nFinal-Recipient: rfc822;user@contoso.example\r\nAction: failed\r\nStatus: 5.1.10\r\nDiagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup\r\nX-Display-Name: User',
    ],
    ['message/rfc822', 'Message-ID: <m3@example.com>\r\nSubject: hi\r\n\r\nbody'],
  ]),
  gmail: report('delivery-status', '000000000000abc', [
    ['text/plain; charset="UTF-8"', '** Address not found **'],
    [
      'message/delivery-status',
      "Reporting-MTA: dns; googlemail.com\r\nReceived-From-MTA: dns; noreply@example.com\r\nArrival-Date: Sat, 21 Nov 2026 02:00:00 -0800 (PST)\r\nX-Original-Message-ID: <m4@example.com>\r\n\r\nFinal-Recipient: rfc822; typo@gmial.example\r\nAction: failed\r\nStatus: 5.4.4\r\nDiagnostic-Code: smtp; DNS Error: DNS type 'mx' lookup of gmial.example responded with code NXDOMAIN\r\nLast-Attempt-Date: Sat, 21 Nov 2026 02:00:01 -0800 (PST)",
    ],
    ['message/rfc822', 'Message-ID: <m4@example.com>\r\nSubject: hi\r\n\r\nbody'],
  ]),
  sesMailboxFull: report('delivery-status', '=_amazonses_1', [
    ['text/plain', 'An error occurred while trying to deliver the mail to the following recipients:'],
    [
      'message/delivery-status',
      'Reporting-MTA: dns; a1-2.smtp-out.eu-west-1.amazonses.com\r\n\r\nAction: failed\r\nFinal-Recipient: rfc822; full@example.net\r\nDiagnostic-Code: smtp; 552 5.2.2 Mailbox full\r\nStatus: 5.2.2',
    ],
  ]),
  sendmailDelayed: report(
    'delivery-status',
    'xAB12345.1700000000/mx.example.net',
    [
      ['text/plain', 'Warning: could not send message for past 4 hours'],
      [
        'message/delivery-status',
        'Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: RFC822; slow@example.net\r\nAction: delayed\r\nStatus: 4.4.7\r\nWill-Retry-Until: Sun, 26 Nov 2026 10:00:00 GMT',
      ],
    ],
    ['Auto-Submitted: auto-generated (warning-timeout)'],
  ),
  policyBlock: report('delivery-status', 'B2', [
    [
      'message/delivery-status',
      'Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; someone@example.net\r\nAction: failed\r\nStatus: 5.7.1\r\nDiagnostic-Code: smtp; 550 5.7.1 Message rejected as spam',
    ],
  ]),
  complaint: report('feedback-report', 'ARF', [
    ['text/plain', 'This is an email abuse report.'],
    [
      'message/feedback-report',
      'Feedback-Type: abuse\r\nUser-Agent: SomeFBL/1.0\r\nVersion: 1\r\nOriginal-Mail-From: <bounces@example.com>\r\nOriginal-Rcpt-To: <annoyed@example.net>\r\nArrival-Date: Sat, 21 Nov 2026 10:00:00 +0000',
    ],
    [
      'message/rfc822',
      'Message-ID: <m5@example.com>\r\nX-Dispatch-Id: fedcba9876543210fedcba9876543210\r\nTo: annoyed@example.net\r\nSubject: hi\r\n\r\nbody',
    ],
  ]),
  notSpam: report('feedback-report', 'ARF2', [
    ['message/feedback-report', 'Feedback-Type: not-spam\r\nOriginal-Rcpt-To: fan@example.net'],
  ]),
};

const malformed = {
  noStatusPart: report('delivery-status', 'X', [
    ['text/plain', 'Final-Recipient: rfc822; a@example.net\r\nAction: failed\r\nStatus: 5.1.1'],
  ]),
  garbledStatus: report('delivery-status', 'X', [
    [
      'message/delivery-status',
      'Reporting-MTA: dns; mx\r\n\r\nFinal-Recipient: rfc822; a@example.net\r\nAction: failed\r\nStatus: five-one-one',
    ],
  ]),
  unknownAction: report('delivery-status', 'X', [
    [
      'message/delivery-status',
      'Reporting-MTA: dns; mx\r\n\r\nFinal-Recipient: rfc822; a@example.net\r\nAction: exploded\r\nStatus: 5.1.1',
    ],
  ]),
  noRecipient: report('delivery-status', 'X', [
    ['message/delivery-status', 'Reporting-MTA: dns; mx\r\n\r\nAction: failed\r\nStatus: 5.1.1'],
  ]),
  badAddress: report('delivery-status', 'X', [
    [
      'message/delivery-status',
      'Reporting-MTA: dns; mx\r\n\r\nFinal-Recipient: rfc822; not an address\r\nAction: failed\r\nStatus: 5.1.1',
    ],
  ]),
  vacation: [
    'From: bob@example.net',
    'Subject: Out of office',
    'Auto-Submitted: auto-replied',
    '',
    'I am away. Final-Recipient: rfc822; x@example.net Action: failed Status: 5.1.1',
    '',
  ].join('\r\n'),
  personMentioningBounce: [
    'From: carol@example.net',
    'Subject: Re: did it bounce?',
    'Content-Type: text/plain',
    '',
    'Action: failed\r\nStatus: 5.1.1\r\nFinal-Recipient: rfc822; x@example.net',
    '',
  ].join('\r\n'),
};

const classify = async (raw: string) => classifyInbound(await parseInbound(Buffer.from(raw)));

describe('classifying real-world delivery reports', () => {
  for (const ending of ['\r\n', '\n']) {
    const label = ending === '\n' ? 'LF' : 'CRLF';
    it(`reads Postfix, Exim, Office 365 and Gmail bounces with their reasons (${label})`, async () => {
      const results = await Promise.all(
        [samples.postfix, samples.exim, samples.office365, samples.gmail].map((s) => classify(withEndings(s, ending))),
      );
      expect(results.map((r) => r.kind)).toEqual(['bounce', 'bounce', 'bounce', 'bounce']);
      const recipients = results.flatMap((r) => (r.kind === 'bounce' ? r.recipients : []));
      // Exim's 5.0.0 says "No such user": a user-unknown. A domain without MX is no reason to suppress on one report.
      expect(recipients.map((r) => [r.recipient, r.status, r.replyCode, r.reason, r.permanent, r.suppress])).toEqual([
        ['gone@example.net', '5.1.1', 550, 'user-unknown', true, true],
        ['nobody@example.org', '5.0.0', 550, 'user-unknown', true, true],
        ['user@contoso.example', '5.1.10', 550, 'user-unknown', true, true],
        ['typo@gmial.example', '5.4.4', undefined, 'host-unknown', true, false],
      ]);
      expect(results[0]).toMatchObject({
        original: {
          messageId: '<m1@example.com>',
          dispatchId: '0123456789abcdef0123456789abcdef',
          messageIds: ['<m1@example.com>'],
        },
      });
      expect(recipients[0]?.diagnosticCode).toBe(
        '550 5.1.1 <gone@example.net>: Recipient address rejected: User unknown in local recipient table',
      );
    });
  }

  it('keeps a full mailbox and a policy block as bounces that do not suppress', async () => {
    for (const sample of [samples.sesMailboxFull, samples.policyBlock]) {
      const result = await classify(sample);
      expect(result.kind).toBe('bounce');
      expect(result.kind === 'bounce' && result.recipients.every((r) => !r.suppress)).toBe(true);
    }
  });

  it('treats a delayed DSN as a delay, not a bounce', async () => {
    expect(await classify(samples.sendmailDelayed)).toMatchObject({
      kind: 'delay',
      recipients: [{ recipient: 'slow@example.net', action: 'delayed', suppress: false }],
    });
  });

  it('reads an ARF abuse report as a suppressing complaint, and not-spam as a harmless one', async () => {
    expect(await classify(samples.complaint)).toMatchObject({
      kind: 'complaint',
      feedbackType: 'abuse',
      recipients: ['annoyed@example.net'],
      suppress: true,
      original: { dispatchId: 'fedcba9876543210fedcba9876543210' },
    });
    expect(await classify(samples.notSpam)).toMatchObject({
      kind: 'complaint',
      feedbackType: 'not-spam',
      suppress: false,
    });
  });
});

describe('plain-text bounces', () => {
  it('reads a qmail bounce and suppresses its unknown user', async () => {
    const raw = [
      'From: MAILER-DAEMON@mx.example.net',
      'Subject: failure notice',
      '',
      'Hi. This is the qmail-send program at mx.example.net.',
      '<gone@example.net>:',
      'Sorry, no mailbox here by that name. (#5.1.1)',
      '',
    ].join('\r\n');

    const result = await classify(raw);

    expect(result).toMatchObject({
      kind: 'bounce',
      format: 'qmail',
      recipients: [
        { recipient: 'gone@example.net', status: '5.1.1', reason: 'user-unknown', permanent: true, suppress: true },
      ],
    });
  });
});

describe('plain-text layouts beyond the known families', () => {
  const bounce = (subject: string, body: string[]) =>
    [
      'From: Postmaster <postmaster@mx.example.net>',
      'To: bounces@example.com',
      `Subject: ${subject}`,
      '',
      ...body,
      '',
    ].join('\r\n');

  it.each([
    [
      'a transcript reply after a label',
      ['Sent <<< RCPT TO:<a@example.org>', 'Received >>> 550 5.1.1 <a@example.org>... user unknown'],
    ],
    ['the reason before the address', ['Unknown user: a@example.org', '', 'Original message follows.']],
    [
      'the address again in brackets after ">>>"',
      [
        '  ----- The following addresses had permanent fatal errors -----',
        '',
        '>>> a@example.org <a@example.org>',
        '',
        '  ----- Transcript of session follows -----',
        '550 sorry, no mailbox here by that name (#5.1.1 - chkusr)',
      ],
    ],
    [
      'the reason in brackets after it',
      ['---The following addresses had delivery errors---', '', 'a@example.org [User unknown]'],
    ],
    [
      'one reply stated for the whole report',
      [
        'Could not be delivered because of',
        '',
        '550 5.1.1 User unknown',
        '',
        'The following recipients were affected:',
        '    a@example.org',
      ],
    ],
  ])('reads %s', async (_, body) => {
    const result = await classify(bounce('Undeliverable Mail', body));

    expect(result).toMatchObject({
      kind: 'bounce',
      recipients: [{ recipient: 'a@example.org', reason: 'user-unknown', permanent: true, suppress: true }],
    });
  });

  it('falls back to the single recipient of the quoted original, and never suppresses it', async () => {
    const raw = bounce('Returned mail: see transcript for details', [
      'User unknown',
      '',
      '------ This is a copy of the message, including all the headers. ------',
      '',
      'To: only@example.org',
      'Subject: hi',
    ]);

    const result = await classify(raw);

    expect(result).toMatchObject({ kind: 'bounce', recipients: [{ recipient: 'only@example.org', suppress: false }] });
  });
});

describe('what must never suppress anyone', () => {
  it.each(Object.entries(malformed))('%s', async (_, raw) => {
    const result = await classify(raw);
    expect(result.kind === 'bounce' && result.recipients.some((r) => r.suppress)).toBe(false);
    expect(result.kind === 'complaint' && result.suppress).toBe(false);
  });

  it('recognises an RFC 3834 auto-reply as such, not as a bounce', async () => {
    expect(await classify(malformed.vacation)).toMatchObject({ kind: 'auto-reply' });
    expect(await classify(malformed.personMentioningBounce)).toMatchObject({ kind: 'message' });
  });
});

describe('a recipient-side idiom next to a cause on our side', () => {
  const dsn = (diagnostic: string) =>
    report('delivery-status', 'S', [
      [
        'message/delivery-status',
        `Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; ceo@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; ${diagnostic}`,
      ],
    ]);

  it.each([
    '550 5.1.1 Recipient address rejected: Access denied; client host [203.0.113.5] blocked using zen.spamhaus.org',
    '550 5.1.1 The email account that you tried to reach does not exist; your IP is listed at a blocklist',
    '550 5.1.1 Mailbox unavailable or access denied; sender address rejected: domain of sender address not found',
    '550 5.1.1 Recipient address rejected: Access denied; rate limit exceeded for your IP',
    // Our account or domain disabled, in the words a recipient's disabled mailbox is told by.
    '550 5.7.1 Sender account disabled',
    '550 5.7.1 Your domain has been suspended for sending',
    '550 5.0.0 Sending from your domain is suspended',
    '550 5.1.1 <bounces+x@example.com>: sender domain inactive',
    // The reply says temporary: the report contradicts itself, so it proves no permanent failure.
    '450 4.2.0 <ceo@example.org>: Recipient address rejected: Greylisted, please try again later',
  ])('does not suppress: %s', async (diagnostic) => {
    const result = await classify(dsn(diagnostic));

    expect(result).toMatchObject({ kind: 'bounce', recipients: [{ recipient: 'ceo@example.org', suppress: false }] });
  });

  it('still suppresses for the idiom alone', async () => {
    const result = await classify(dsn('550 5.4.1 Recipient address rejected: Access denied. AS(201806281)'));

    expect(result).toMatchObject({ recipients: [{ reason: 'user-unknown', suppress: true }] });
  });
});

describe('a person whose mail reads like a bounce', () => {
  it('suppresses nobody when only the subject and some words say bounce', async () => {
    const raw = [
      'From: Alice Customer <alice@example.org>',
      'To: support@example.com',
      'Subject: Parcel not delivered',
      'Content-Type: text/plain',
      '',
      'Hello, my parcel was not delivered. Please use my new address from now on, my old one',
      'alice.old@example.org: no longer valid',
      '',
      'Thanks, Alice',
      '',
    ].join('\r\n');

    const result = await classify(raw);

    expect(result.kind).toBe('message');
  });

  it('is ordinary mail when a sender that is no delivery system writes a bounce subject and a 550', async () => {
    const raw = [
      'From: Orders <orders@shop.example.com>',
      'To: alice@example.net',
      'Subject: Undeliverable orders: please check the addresses',
      'Content-Type: text/plain',
      '',
      'Two orders could not be delivered to the addresses on file:',
      '',
      'bob@example.org: 550 Elm Street does not exist in this town',
      '',
    ].join('\r\n');

    expect((await classify(raw)).kind).toBe('message');
    // The same words from a delivery system are a bounce.
    const fromDaemon = raw.replace(
      'Orders <orders@shop.example.com>',
      'Mail Delivery System <MAILER-DAEMON@mx.example>',
    );
    expect(await classify(fromDaemon)).toMatchObject({
      kind: 'bounce',
      recipients: [{ recipient: 'bob@example.org', replyCode: 550, reason: 'user-unknown', suppress: true }],
    });
  });
});

describe('a complaint that does not name who complained', () => {
  const arf = (to: string) =>
    report('feedback-report', 'F', [
      ['text/plain', 'This is an email abuse report.'],
      ['message/feedback-report', 'Feedback-Type: abuse\r\nUser-Agent: fbl/1.0\r\nVersion: 1'],
      ['text/rfc822-headers', `From: news@example.com\r\nTo: ${to}\r\nMessage-ID: <m9@example.com>\r\nSubject: News`],
    ]);

  it('suppresses nobody when the original went to several people', async () => {
    const result = await classify(arf('alice@example.net, bob@example.net, carol@example.net'));

    expect(result).toMatchObject({ kind: 'complaint', feedbackType: 'abuse', suppress: false });
  });

  it('suppresses the one recipient of an original sent to one person', async () => {
    const result = await classify(arf('alice@example.net'));

    expect(result).toMatchObject({ kind: 'complaint', recipients: ['alice@example.net'], suppress: true });
  });
});

describe('bounces marked Auto-Submitted: auto-replied', () => {
  const own = (name: string) => readFileSync(join(import.meta.dirname, '../../fixtures/bounces/messages/own', name));

  it.each([
    ['Exim', 'exim-user-unknown.eml', { recipient: 'nobody@mail.example.org', reason: 'user-unknown', suppress: true }],
    ['Mail.ru', 'exim-mailru-disabled.eml', { reason: 'mailbox-disabled', suppress: true }],
    [
      'Google Groups',
      'googlegroups-cannot-post.eml',
      { recipient: 'customers-list@googlegroups.com', suppress: false },
    ],
  ])('are read as bounces, not auto-replies (%s)', async (_, file, recipient) => {
    const message = await parseInbound(own(file));

    expect(message.headers['auto-submitted']).toBe('auto-replied');
    expect(classifyInbound(message)).toMatchObject({ kind: 'bounce', recipients: [recipient] });
  });

  it('reads an Exim delay warning as a delay (published as bounce.delayed), not as mail', async () => {
    expect(classifyInbound(await parseInbound(own('exim-delay.eml')))).toMatchObject({
      kind: 'delay',
      recipients: [{ action: 'delayed', permanent: false, suppress: false }],
    });
  });
});
