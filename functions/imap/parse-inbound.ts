import mailsplit from '@zone-eu/mailsplit';
import libmime from 'libmime';
import addressparser, { type Address } from 'nodemailer/lib/addressparser';
import type { AddressObject, HeaderValue } from 'mailparser';
import type { InboundMessage } from '#core/classify-inbound.js';

const REPORT_PARTS = /^(message\/(delivery-status|global-delivery-status|feedback-report|rfc822|rfc822-headers|global)|text\/rfc822-headers)$/;

/**
 * Parses a raw message into the plain shape the classifier reads. Only a report (multipart/report: delivery status
 * notifications, complaints) needs its body, and only a report loads mailparser; everything else is classified by
 * its header block alone, decoded the way mailparser decodes it (mailsplit, libmime, nodemailer's addressparser).
 */
export async function parseInbound(source: Buffer): Promise<InboundMessage> {
  const message = parseHeaderBlock(source);
  if (message.contentType !== 'multipart/report') return message;
  return { ...(await parseReport(source)), envelopeTo: message.envelopeTo };
}

/** Where the receiving side records the envelope recipient, most specific first; `to` last. */
const ENVELOPE_FIELDS = ['delivered-to', 'x-original-to', 'envelope-to', 'to'];

/** The header block (up to the first empty line) of a message, parsed; `parts` stays empty. */
export function parseHeaderBlock(source: Buffer): InboundMessage {
  const crlf = source.indexOf('\r\n\r\n');
  const lf = source.indexOf('\n\n');
  const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf + 4 : lf >= 0 ? lf + 2 : source.length;
  const headers: Record<string, string> = {};
  const first: Record<string, string> = {};
  for (const line of new mailsplit.Headers(source.subarray(0, end)).getList()) {
    const decoded = libmime.decodeHeader(line.line);
    if (!decoded) continue;
    const value = Buffer.from(String(decoded.value ?? '').trim(), 'binary').toString();
    if (!value) continue;
    const key = line.key;
    first[key] ??= value;
    headers[key] = headers[key] === undefined ? decodeWords(value) : `${headers[key]}, ${decodeWords(value)}`;
  }
  const contentType = first['content-type'] ? libmime.parseHeaderValue(first['content-type']) : undefined;
  const date = first.date ? new Date(first.date) : undefined;
  const messageId = first['message-id'] ? decodeWords(first['message-id']).trim() : '';
  return {
    messageId: messageId ? `${messageId.startsWith('<') ? '' : '<'}${messageId}${messageId.endsWith('>') ? '' : '>'}` : undefined,
    from: first.from ? addressesOf(addressparser(first.from))[0] : undefined,
    to: first.to ? addressesOf(addressparser(first.to)) : [],
    envelopeTo: ENVELOPE_FIELDS.flatMap((name) => (headers[name] ? addressesOf(addressparser(headers[name])) : []))
      .slice(0, 32),
    subject: first.subject !== undefined ? decodeWords(first.subject) : undefined,
    date: date && !Number.isNaN(date.getTime()) ? date : undefined,
    headers,
    contentType: (contentType?.value || 'text/plain').toLowerCase(),
    reportType: contentType?.params['report-type']?.toLowerCase(),
    parts: [],
  };
}

function decodeWords(value: string): string {
  // Only an RFC 2047 encoded word ("=?charset?B|Q?text?=") needs decoding; most header values have none.
  if (!value.includes('=?')) return value;
  try {
    return libmime.decodeWords(value);
  } catch {
    return value;
  }
}

const addressesOf = (list: Address[]): string[] => list.flatMap((a) => (a.group ? addressesOf(a.group) : [decodeWords(a.address)])).filter(Boolean);

const mailparserAddresses = (value: AddressObject | AddressObject[] | undefined): string[] =>
  (Array.isArray(value) ? value : value ? [value] : []).flatMap((a) => a.value.map((v) => v.address ?? '')).filter(Boolean);

const headerText = (value: HeaderValue): string => {
  if (typeof value === 'string') return value;
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map((v) => headerText(v as HeaderValue)).join(', ');
  if (value && typeof value === 'object' && 'text' in value) return String((value as { text: unknown }).text);
  if (value && typeof value === 'object' && 'value' in value) return String((value as { value: unknown }).value);
  return String(value);
};

/** A report, parsed whole with mailparser: the report parts (delivery-status, feedback-report, the returned message or its headers) as text. */
async function parseReport(source: Buffer): Promise<InboundMessage> {
  const { simpleParser } = await import('mailparser');
  const parsed = await simpleParser(source, { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true, keepDeliveryStatus: true } as Parameters<typeof simpleParser>[1]);
  const headers: Record<string, string> = {};
  for (const [name, value] of parsed.headers) headers[name.toLowerCase()] = headerText(value);
  const contentType = parsed.headers.get('content-type') as { value?: string; params?: Record<string, string> } | undefined;
  const parts = parsed.attachments
    .filter((a) => REPORT_PARTS.test(a.contentType.toLowerCase()))
    .map((a) => ({ contentType: a.contentType.toLowerCase(), content: a.content.toString('utf8') }));
  return {
    messageId: parsed.messageId,
    from: mailparserAddresses(parsed.from)[0],
    to: mailparserAddresses(parsed.to),
    envelopeTo: [],
    subject: parsed.subject,
    date: parsed.date,
    headers,
    contentType: (contentType?.value ?? 'text/plain').toLowerCase(),
    reportType: contentType?.params?.['report-type']?.toLowerCase(),
    parts,
  };
}
