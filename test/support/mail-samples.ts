/** Builds test messages: plain mail and delivery reports in the shapes real MTAs send. */
export function plainMessage(n: number, options: { messageId?: string; from?: string; subject?: string } = {}): string {
  return [
    `From: ${options.from ?? `sender${n}@example.org`}`,
    'To: inbox@example.com',
    `Subject: ${options.subject ?? `Message ${n}`}`,
    `Message-ID: ${options.messageId ?? `<msg-${n}-${process.pid}@example.org>`}`,
    `Date: ${new Date().toUTCString()}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `Body of message ${n}.`,
    '',
  ].join('\r\n');
}

/** A Postfix-style RFC 3464 bounce for `recipient`, quoting the original's headers. */
export function bounceMessage(
  recipient: string,
  options: {
    status?: string;
    action?: string;
    originalMessageId?: string;
    dispatchId?: string;
    lineEnding?: string;
    /** Extra header lines on top, e.g. the Delivered-To of a VERP address. */
    headers?: string[];
    /** Quote the original's headers (a text/rfc822-headers part). @default true */
    quoteOriginal?: boolean;
  } = {},
): string {
  const status = options.status ?? '5.1.1';
  return [
    ...(options.headers ?? []),
    'From: MAILER-DAEMON@mx.example.net (Mail Delivery System)',
    'To: bounces@example.com',
    'Subject: Undelivered Mail Returned to Sender',
    `Message-ID: <bounce-${recipient}-${status}-${Math.random().toString(36).slice(2)}@mx.example.net>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"',
    '',
    '--BOUNDARY',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'This is the mail system at host mx.example.net.',
    '',
    '--BOUNDARY',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.example.net',
    'X-Postfix-Queue-ID: 4Yb2kq1XzLz3x',
    '',
    `Final-Recipient: rfc822; ${recipient}`,
    `Original-Recipient: rfc822;${recipient}`,
    `Action: ${options.action ?? 'failed'}`,
    `Status: ${status}`,
    'Remote-MTA: dns; mx2.example.net',
    `Diagnostic-Code: smtp; 550 ${status} <${recipient}>: Recipient address rejected: User unknown`,
    '',
    ...(options.quoteOriginal === false
      ? []
      : [
          '--BOUNDARY',
          'Content-Type: text/rfc822-headers',
          '',
          `Message-ID: ${options.originalMessageId ?? '<original@example.com>'}`,
          ...(options.dispatchId ? [`X-Dispatch-Id: ${options.dispatchId}`] : []),
          'Subject: Your receipt',
          '',
        ]),
    '--BOUNDARY--',
    '',
  ].join(options.lineEnding ?? '\r\n');
}

/** An RFC 5965 (ARF) complaint about `recipient`, quoting the original's headers unless told not to. */
export function complaintMessage(
  recipient: string,
  options: { feedbackType?: string; originalMessageId?: string; quoteOriginal?: boolean; headers?: string[] } = {},
): string {
  const quotedId = options.originalMessageId ?? '<original@example.com>';
  return [
    ...(options.headers ?? []),
    'From: feedback@fbl.example.org',
    'To: abuse@example.com',
    'Subject: Abuse report',
    `Message-ID: <arf-${Math.random().toString(36).slice(2)}@fbl.example.org>`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"',
    '',
    '--ARF',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'This is an email abuse report.',
    '',
    '--ARF',
    'Content-Type: message/feedback-report',
    '',
    `Feedback-Type: ${options.feedbackType ?? 'abuse'}`,
    'User-Agent: ExampleFBL/1.0',
    'Version: 1',
    `Original-Rcpt-To: ${recipient}`,
    '',
    ...(options.quoteOriginal === false
      ? []
      : ['--ARF', 'Content-Type: text/rfc822-headers', '', `Message-ID: ${quotedId}`, `To: ${recipient}`, '']),
    '--ARF--',
    '',
  ].join('\r\n');
}
