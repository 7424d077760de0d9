import { simpleParser, type AddressObject, type HeaderValue } from 'mailparser';
import type { InboundMessage } from '#core/classify-inbound.js';

const REPORT_PARTS = /^(message\/(delivery-status|global-delivery-status|feedback-report|rfc822|rfc822-headers|global)|text\/rfc822-headers)$/;

const addresses = (value: AddressObject | AddressObject[] | undefined): string[] =>
  (Array.isArray(value) ? value : value ? [value] : []).flatMap((a) => a.value.map((v) => v.address ?? '')).filter(Boolean);

const headerText = (value: HeaderValue): string => {
  if (typeof value === 'string') return value;
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map((v) => headerText(v as HeaderValue)).join(', ');
  if (value && typeof value === 'object' && 'text' in value) return String((value as { text: unknown }).text);
  if (value && typeof value === 'object' && 'value' in value) return String((value as { value: unknown }).value);
  return String(value);
};

/**
 * Parses a raw message with mailparser into the plain shape the classifier reads: headers as text, the report
 * parts (delivery-status, feedback-report, the returned message or its headers) as text.
 */
export async function parseInbound(source: Buffer): Promise<InboundMessage> {
  const parsed = await simpleParser(source, { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true, keepDeliveryStatus: true } as Parameters<typeof simpleParser>[1]);
  const headers: Record<string, string> = {};
  for (const [name, value] of parsed.headers) headers[name.toLowerCase()] = headerText(value);
  const contentType = parsed.headers.get('content-type') as { value?: string; params?: Record<string, string> } | undefined;
  const parts = parsed.attachments
    .filter((a) => REPORT_PARTS.test(a.contentType.toLowerCase()))
    .map((a) => ({ contentType: a.contentType.toLowerCase(), content: a.content.toString('utf8') }));
  return {
    messageId: parsed.messageId,
    from: addresses(parsed.from)[0],
    to: addresses(parsed.to),
    subject: parsed.subject,
    date: parsed.date,
    headers,
    contentType: (contentType?.value ?? 'text/plain').toLowerCase(),
    reportType: contentType?.params?.['report-type']?.toLowerCase(),
    parts,
  };
}
