/**
 * Builds hostile inbound messages, the shapes that have stopped mailbox pollers: too many parts, enormous fields,
 * deep nesting, broken MIME. Each is a complete message an MTA would deliver.
 */
const CRLF = '\r\n';

const headerBlock = (contentType: string, extra: string[] = []) =>
  [
    'From: MAILER-DAEMON@mx.example.net',
    'To: bounces@example.com',
    'Subject: Delivery Status Notification',
    ...extra,
    'MIME-Version: 1.0',
    `Content-Type: ${contentType}`,
    '',
  ].join(CRLF);

/** A multipart/report whose body is `parts` tiny text parts (7 bytes of content each). */
export function manyPartsReport(parts: number): string {
  const body = Array.from(
    { length: parts },
    (_, i) => `--P${CRLF}Content-Type: text/plain${CRLF}${CRLF}part ${i}${CRLF}`,
  ).join('');
  return `${headerBlock('multipart/report; report-type=delivery-status; boundary="P"')}${CRLF}${body}--P--${CRLF}`;
}

/** A one-recipient delivery report (failed, 5.1.1) with the given extra header fields. */
const deliveryReport = (recipient: string, extraHeaders: string[] = []) =>
  [
    headerBlock('multipart/report; report-type=delivery-status; boundary="B"', extraHeaders),
    '--B',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.example.net',
    '',
    `Final-Recipient: rfc822; ${recipient}`,
    'Action: failed',
    'Status: 5.1.1',
    '',
    '--B--',
    '',
  ].join(CRLF);

/** A delivery report with a `Cc` field that lists addresses for `bytes` bytes. */
export function longAddressField(bytes: number): string {
  const address = 'someone.with.a.long.name@example.net, ';
  return deliveryReport('someone@example.net', [
    `Cc: ${address.repeat(Math.ceil(bytes / address.length))}last@example.net`,
  ]);
}

/** A delivery report naming one "recipient" of `bytes` bytes. */
export function longRecipientReport(bytes: number): string {
  return deliveryReport(`${'a.'.repeat(Math.ceil(bytes / 2))}x@example.net`);
}

/** Multiparts nested `depth` deep, a text leaf at the bottom. */
export function deeplyNested(depth: number): string {
  let open = '';
  let close = '';
  for (let i = 1; i < depth; i += 1) {
    open += `--N${i - 1}${CRLF}Content-Type: multipart/mixed; boundary="N${i}"${CRLF}${CRLF}`;
    close = `--N${i - 1}--${CRLF}${close}`;
  }
  const leaf = `--N${depth - 1}${CRLF}Content-Type: text/plain${CRLF}${CRLF}the bottom${CRLF}--N${depth - 1}--${CRLF}`;
  return `${headerBlock('multipart/report; report-type=delivery-status; boundary="N0"')}${CRLF}${open}${leaf}${close}`;
}

/** A message with one header field of `bytes` bytes, folded into lines of 76. */
export function hugeHeader(bytes: number): string {
  const line = `${'x'.repeat(74)}${CRLF} `;
  const value = line.repeat(Math.ceil(bytes / line.length));
  return `${headerBlock('text/plain', [`X-Huge: ${value}end`])}${CRLF}A body after a huge header.${CRLF}`;
}

/** A report whose boundaries do not match: a part opened and never closed, a closing delimiter never opened. */
export function brokenBoundaries(): string {
  return [
    headerBlock('multipart/report; report-type=delivery-status; boundary="OUTER"'),
    '--OUTER',
    'Content-Type: multipart/mixed; boundary="INNER"',
    '',
    '--INNER',
    'Content-Type: message/delivery-status',
    '',
    'Final-Recipient: rfc822; someone@example.net',
    'Action: failed',
    '--NEVER-OPENED--',
    '--OUTER',
    'Content-Type: text/rfc822-headers; boundary=""',
    '',
    '--',
    '',
  ].join(CRLF);
}
