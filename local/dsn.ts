import { randomBytes } from 'node:crypto';

/**
 * Builds the RFC 3464 delivery status notification a relay sends back when it accepted a message and could not
 * deliver it: multipart/report with a human part, the machine-readable delivery-status, and the original's headers.
 */
export function buildDsn(options: {
  reportingMta: string;
  to: string;
  recipient: string;
  status: string;
  diagnostic: string;
  originalHeaders: string;
  arrival?: Date;
}): string {
  const boundary = `dsn-${randomBytes(8).toString('hex')}`;
  const date = (options.arrival ?? new Date()).toUTCString();
  return [
    `From: Mail Delivery System <MAILER-DAEMON@${options.reportingMta}>`,
    `To: ${options.to}`,
    'Subject: Undelivered Mail Returned to Sender',
    `Message-ID: <${randomBytes(10).toString('hex')}@${options.reportingMta}>`,
    `Date: ${new Date().toUTCString()}`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    '',
    `This is the mail system at host ${options.reportingMta}.`,
    '',
    "I'm sorry to have to inform you that your message could not be delivered to one or more recipients.",
    '',
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    '',
    `Reporting-MTA: dns; ${options.reportingMta}`,
    `Arrival-Date: ${date}`,
    '',
    `Final-Recipient: rfc822; ${options.recipient}`,
    `Original-Recipient: rfc822;${options.recipient}`,
    'Action: failed',
    `Status: ${options.status}`,
    `Diagnostic-Code: smtp; ${options.diagnostic}`,
    '',
    `--${boundary}`,
    'Content-Type: text/rfc822-headers',
    '',
    options.originalHeaders.replace(/\r?\n$/, ''),
    '',
    `--${boundary}--`,
    '',
  ].join('\r\n');
}
