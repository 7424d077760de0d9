import libmime from 'libmime';
import addressparser, { type Address } from 'nodemailer/lib/addressparser';
import type { InboundMessage, InboundPart } from './classify-inbound.js';
import { UnparsableMessageError, UnparsableReasons } from './errors.js';

/** What one message may cost the parser. A message over any of them is refused with an UnparsableMessageError. */
export type ParseLimits = {
  /** Whole message, bytes. @default 48 MiB (SES's largest message is 40 MB) */
  maxBytes: number;
  /** One header block (the message's or a part's), bytes. @default 256 KiB */
  maxHeaderBytes: number;
  /** One header field, unfolded, bytes. @default 64 KiB */
  maxFieldBytes: number;
  /** MIME entities in the whole tree, attached messages included. @default 500 */
  maxParts: number;
  /** Nesting of multiparts and attached messages. @default 20 */
  maxDepth: number;
  /** Text kept per part for classification (the rest is not decoded), bytes. @default 256 KiB */
  maxTextBytes: number;
  /** Text kept over all parts, bytes. @default 1 MiB */
  maxTotalTextBytes: number;
};

const DEFAULT_PARSE_LIMITS: ParseLimits = {
  maxBytes: 48 * 1024 * 1024,
  maxHeaderBytes: 256 * 1024,
  maxFieldBytes: 64 * 1024,
  maxParts: 500,
  maxDepth: 20,
  maxTextBytes: 256 * 1024,
  maxTotalTextBytes: 1024 * 1024,
};

/** Parts whose text the classifier reads; every other part is listed with its type only. */
const TEXT_PARTS = new Set([
  'text/plain',
  'text/html',
  'text/rfc822-headers',
  'message/rfc822-headers',
  'message/delivery-status',
  'message/global-delivery-status',
  'message/feedback-report',
  'message/disposition-notification',
  'message/global-headers',
]);
const ATTACHED_MESSAGES = new Set(['message/rfc822', 'message/global']);

type Field = { key: string; value: string };
type Entity = { fields: Field[]; bodyStart: number };
type Walk = { s: string; limits: ParseLimits; parts: InboundPart[]; count: number; textLeft: number };

/**
 * Parses a raw message into the plain shape the classifier reads: its headers, and every MIME part (delivery
 * reports, quoted headers, attached messages, text) wherever it sits in the tree. The walk is linear in the size of
 * the message (times the nesting depth, which is bounded): boundaries and line ends are found with indexOf, header
 * values are tokenised by libmime and nodemailer's addressparser, and only text-like parts are decoded, up to a
 * budget. A message that breaks a limit throws UnparsableMessageError, the same way every time.
 */
export async function parseInbound(
  source: Buffer,
  limits: ParseLimits = DEFAULT_PARSE_LIMITS,
): Promise<InboundMessage> {
  return parseInboundSync(source, limits);
}

/** parseInbound without the promise, for tools and tests. */
export function parseInboundSync(source: Buffer, limits: ParseLimits = DEFAULT_PARSE_LIMITS): InboundMessage {
  if (source.length > limits.maxBytes)
    throw new UnparsableMessageError(UnparsableReasons.tooLarge, limits.maxBytes, `${source.length} bytes`);
  const s = withLineFeeds(source.toString('latin1'));
  const walk: Walk = { s, limits, parts: [], count: 0, textLeft: limits.maxTotalTextBytes };
  const root = readHeaders(walk, 0, s.length, true);
  const message = toMessage(root.fields);
  walkEntity(walk, root, s.length, 0, false);
  return { ...message, parts: walk.parts };
}

/** A message whose lines end in a bare CR (classic Mac OS) gets LFs; any other is left as it is. */
function withLineFeeds(s: string): string {
  const head = s.slice(0, 64 * 1024);
  return head.includes('\r') && !head.includes('\n') ? s.replaceAll('\r', '\n') : s;
}

/** The header block (up to the first empty line) of a message, parsed; `parts` stays empty. */
export function parseHeaderBlock(source: Buffer, limits: ParseLimits = DEFAULT_PARSE_LIMITS): InboundMessage {
  const s = source.toString('latin1');
  return {
    ...toMessage(readHeaders({ s, limits, parts: [], count: 0, textLeft: 0 }, 0, s.length, true).fields),
    parts: [],
  };
}

/** End of the line that starts at `pos` (before CRLF or LF) and where the next line starts. */
function lineAt(s: string, pos: number, end: number): [number, number] {
  const lf = s.indexOf('\n', pos);
  if (lf < 0 || lf >= end) return [end, end];
  return [lf > pos && s.charCodeAt(lf - 1) === 13 ? lf - 1 : lf, lf + 1];
}

/** `Name:` with a name of printable ASCII other than the colon (RFC 5322 2.2). */
function fieldNameEnd(s: string, start: number, lineEnd: number): number {
  for (let i = start; i < lineEnd; i += 1) {
    const c = s.charCodeAt(i);
    if (c === 58) return i > start ? i : -1;
    if (c <= 32 || c > 126) return -1;
  }
  return -1;
}

const isBlank = (s: string, start: number, end: number) => {
  for (let i = start; i < end; i += 1) if (s.charCodeAt(i) !== 32 && s.charCodeAt(i) !== 9) return false;
  return true;
};

/**
 * Reads the header block of the entity at `start`. For the message itself (`lenient`) leading blank lines and an
 * mbox `From ` line are skipped, and a first line that is no header field means there are no headers at all (a
 * bare body). A line that is neither a field nor a continuation ends the block.
 */
function readHeaders(walk: Walk, start: number, end: number, lenient: boolean): Entity {
  const { s, limits } = walk;
  let pos = start;
  if (lenient) {
    // Leading blank lines and an mbox "From " line are not part of the header block.
    for (
      let [lineEnd, next] = lineAt(s, pos, end);
      pos < end && isBlank(s, pos, lineEnd);
      [lineEnd, next] = lineAt(s, next, end)
    )
      pos = next;
    if (s.startsWith('From ', pos)) pos = lineAt(s, pos, end)[1];
  }
  const blockStart = pos;
  const fields: Field[] = [];
  let current: { key: string; parts: string[]; size: number } | undefined;
  const flush = () => {
    if (current) fields.push({ key: current.key, value: current.parts.join('') });
    current = undefined;
  };
  while (pos < end) {
    const [lineEnd, next] = lineAt(s, pos, end);
    if (lineEnd === pos) {
      flush();
      return { fields, bodyStart: next };
    }
    const first = s.charCodeAt(pos);
    if ((first === 32 || first === 9) && current) {
      current.size += lineEnd - pos;
      if (current.size > limits.maxFieldBytes) {
        throw new UnparsableMessageError(
          UnparsableReasons.fieldTooLarge,
          limits.maxFieldBytes,
          `${current.key} over ${limits.maxFieldBytes} bytes`,
        );
      }
      current.parts.push(s.slice(pos, lineEnd));
    } else {
      const colon = fieldNameEnd(s, pos, lineEnd);
      if (colon < 0) {
        flush();
        // No header field where one must start: the entity has no headers, or they end here.
        return { fields, bodyStart: fields.length === 0 && lenient ? start : pos };
      }
      flush();
      const size = lineEnd - colon - 1;
      const key = s.slice(pos, colon).trim().toLowerCase();
      if (size > limits.maxFieldBytes)
        throw new UnparsableMessageError(
          UnparsableReasons.fieldTooLarge,
          limits.maxFieldBytes,
          `${key} over ${limits.maxFieldBytes} bytes`,
        );
      current = { key, parts: [s.slice(colon + 1, lineEnd)], size };
    }
    if (lineEnd - blockStart > limits.maxHeaderBytes) {
      throw new UnparsableMessageError(
        UnparsableReasons.headerTooLarge,
        limits.maxHeaderBytes,
        `a header block over ${limits.maxHeaderBytes} bytes`,
      );
    }
    pos = next;
  }
  flush();
  return { fields, bodyStart: end };
}

/** A raw header value (binary string) as text: UTF-8 where it is (RFC 6532), unfolded, trimmed. */
const NON_ASCII = /[^\x00-\x7f]/;
const textOf = (raw: string) =>
  // ASCII (most header values) reads the same as UTF-8: only a value with other bytes is decoded.
  (NON_ASCII.test(raw) ? Buffer.from(raw, 'latin1').toString('utf8') : raw).replace(/\s+/g, ' ').trim();

function decodeWords(value: string): string {
  // Only an RFC 2047 encoded word ("=?charset?B|Q?text?=") needs decoding; most header values have none.
  if (!value.includes('=?')) return value;
  try {
    return libmime.decodeWords(value);
  } catch {
    return value;
  }
}

const addressesOf = (list: Address[]): string[] =>
  list.flatMap((a) => (a.group ? addressesOf(a.group) : [decodeWords(a.address)])).filter(Boolean);
const parseAddresses = (value: string | undefined): string[] => (value ? addressesOf(addressparser(value)) : []);

/** Where the report was delivered: the envelope recipient as the receiving system recorded it, then the To. */
const ENVELOPE_FIELDS = ['delivered-to', 'x-original-to', 'envelope-to', 'to'];

function toMessage(fields: Field[]): Omit<InboundMessage, 'parts'> {
  const headers: Record<string, string> = {};
  const first: Record<string, string> = {};
  const envelopeTo: string[] = [];
  // The To is read for the envelope and for itself, and Delivered-To often repeats it: each value is parsed once.
  const parsed = new Map<string, string[]>();
  const addressesIn = (value: string | undefined) => {
    if (!value) return [];
    const found = parsed.get(value) ?? parseAddresses(value);
    parsed.set(value, found);
    return found;
  };
  for (const { key, value: raw } of fields) {
    const value = textOf(raw);
    if (!value) continue;
    first[key] ??= value;
    headers[key] = headers[key] === undefined ? decodeWords(value) : `${headers[key]}, ${decodeWords(value)}`;
    if (ENVELOPE_FIELDS.includes(key))
      for (const a of addressesIn(value)) if (!envelopeTo.includes(a)) envelopeTo.push(a);
  }
  const contentType = first['content-type'] ? libmime.parseHeaderValue(first['content-type']) : undefined;
  const date = first.date ? new Date(first.date) : undefined;
  const messageId = first['message-id'] ? decodeWords(first['message-id']).trim() : '';
  return {
    messageId: messageId
      ? `${messageId.startsWith('<') ? '' : '<'}${messageId}${messageId.endsWith('>') ? '' : '>'}`
      : undefined,
    from: addressesIn(first.from)[0],
    to: addressesIn(first.to),
    envelopeTo,
    subject: first.subject !== undefined ? decodeWords(first.subject) : undefined,
    date: date && !Number.isNaN(date.getTime()) ? date : undefined,
    headers,
    contentType: (contentType?.value || 'text/plain').toLowerCase(),
    reportType: contentType?.params['report-type']?.toLowerCase(),
  };
}

const fieldOf = (fields: Field[], key: string) => fields.find((f) => f.key === key)?.value;

/** Walks one entity (its headers already read) and the entities below it, adding each to `walk.parts`. */
function walkEntity(walk: Walk, entity: Entity, end: number, depth: number, embedded: boolean): void {
  const { limits } = walk;
  walk.count += 1;
  if (walk.count > limits.maxParts)
    throw new UnparsableMessageError(
      UnparsableReasons.tooManyParts,
      limits.maxParts,
      `more than ${limits.maxParts} MIME parts`,
    );
  if (depth > limits.maxDepth)
    throw new UnparsableMessageError(
      UnparsableReasons.tooDeep,
      limits.maxDepth,
      `MIME parts nested more than ${limits.maxDepth} deep`,
    );
  const rawType = fieldOf(entity.fields, 'content-type');
  const parsedType = rawType ? libmime.parseHeaderValue(textOf(rawType)) : undefined;
  const contentType = (parsedType?.value || 'text/plain').toLowerCase();
  const encoding = textOf(fieldOf(entity.fields, 'content-transfer-encoding') ?? '').toLowerCase();
  const boundary = parsedType?.params.boundary;
  if (contentType.startsWith('multipart/')) {
    const declared =
      boundary && boundary.length <= 200 ? splitMultipart(walk, entity.bodyStart, end, boundary) : undefined;
    const found = declared ? undefined : guessBoundary(walk.s, entity.bodyStart, end);
    const children = declared ?? (found ? splitMultipart(walk, entity.bodyStart, end, found) : undefined);
    // Broken boundaries: a multipart none of whose delimiters is there is read as text, not dropped.
    if (children) {
      for (const [childStart, childEnd] of children)
        walkEntity(walk, readHeaders(walk, childStart, childEnd, false), childEnd, depth + 1, embedded);
      return;
    }
    walk.parts.push({
      contentType: 'text/plain',
      content: takeText(walk, entity.bodyStart, end, encoding, undefined),
      embedded,
    });
    return;
  }
  if (
    ATTACHED_MESSAGES.has(contentType) &&
    (encoding === '' || encoding === '7bit' || encoding === '8bit' || encoding === 'binary')
  ) {
    walk.parts.push({ contentType, content: takeText(walk, entity.bodyStart, end, '', 'utf-8'), embedded });
    walkEntity(walk, readHeaders(walk, entity.bodyStart, end, false), end, depth + 1, true);
    return;
  }
  // Some MTAs misspell the report's type ("message/xdelivery-status"); it is read all the same. The text of the
  // returned original is not needed (only reports nested in it are), so it does not use up the budget.
  const prose = contentType === 'text/plain' || contentType === 'text/html';
  const known =
    (TEXT_PARTS.has(contentType) || ATTACHED_MESSAGES.has(contentType) || contentType.endsWith('delivery-status')) &&
    !(embedded && prose);
  const text = known ? takeText(walk, entity.bodyStart, end, encoding, parsedType?.params.charset) : '';
  walk.parts.push({ contentType, content: contentType === 'text/html' ? htmlToText(text) : text, embedded });
}

/**
 * The [start, end) ranges of a multipart's children, or undefined when no delimiter line is there. A delimiter is
 * `--boundary` at the start of a line (RFC 2046 5.1.1); the close delimiter ends the list, and a missing one ends it
 * at the end of the entity.
 */
function splitMultipart(walk: Walk, start: number, end: number, boundary: string): Array<[number, number]> | undefined {
  const { s, limits } = walk;
  const delimiter = `--${boundary}`;
  const children: Array<[number, number]> = [];
  let childStart = -1;
  for (let at = s.indexOf(delimiter, start); at >= 0 && at < end; at = s.indexOf(delimiter, at + delimiter.length)) {
    if (at > start && s.charCodeAt(at - 1) !== 10) continue;
    const [lineEnd, next] = lineAt(s, at, end);
    const closing = s.startsWith('--', at + delimiter.length);
    if (!closing && !isBlank(s, at + delimiter.length, lineEnd)) continue;
    if (childStart >= 0) {
      // The line break before the delimiter belongs to the delimiter.
      const childEnd =
        at > childStart && s.charCodeAt(at - 1) === 10
          ? at - 1 > childStart && s.charCodeAt(at - 2) === 13
            ? at - 2
            : at - 1
          : at;
      children.push([childStart, childEnd]);
      if (walk.count + children.length > limits.maxParts) {
        throw new UnparsableMessageError(
          UnparsableReasons.tooManyParts,
          limits.maxParts,
          `more than ${limits.maxParts} MIME parts`,
        );
      }
    }
    if (closing) return children;
    childStart = next;
  }
  if (childStart < 0) return undefined;
  if (childStart < end) children.push([childStart, end]);
  return children;
}

/**
 * The boundary a multipart really uses when the declared one is not there (a mangled Content-Type): the first line
 * of the body that starts with `--` and is followed by a header field line.
 */
function guessBoundary(s: string, start: number, end: number): string | undefined {
  for (let pos = start, lines = 0; pos < end && lines < 200; lines += 1) {
    const [lineEnd, next] = lineAt(s, pos, end);
    if (s.startsWith('--', pos) && lineEnd - pos > 2 && lineEnd - pos <= 202 && !isBlank(s, pos + 2, lineEnd)) {
      const [followingEnd] = lineAt(s, next, end);
      if (fieldNameEnd(s, next, followingEnd) > 0) return s.slice(pos + 2, lineEnd).trimEnd();
    }
    pos = next;
  }
  return undefined;
}

/** The text of a part's body, transfer-decoded and charset-decoded, within the per-part and total budgets. */
function takeText(walk: Walk, start: number, end: number, encoding: string, charset: string | undefined): string {
  const budget = Math.min(walk.limits.maxTextBytes, walk.textLeft);
  if (budget <= 0) return '';
  // Encoded text is at most 4/3 of its decoded size: take what the budget can use, no more.
  const raw = walk.s.slice(start, Math.min(end, start + Math.ceil(budget * 1.4)));
  let bytes: Buffer;
  if (encoding === 'base64') bytes = Buffer.from(raw, 'base64');
  else if (encoding === 'quoted-printable') bytes = decodeQuotedPrintable(raw);
  else bytes = Buffer.from(raw, 'latin1');
  bytes = bytes.subarray(0, budget);
  walk.textLeft -= bytes.length;
  return decodeCharset(bytes, charset);
}

function decodeCharset(bytes: Buffer, charset: string | undefined): string {
  const label = (charset ?? 'utf-8').trim().toLowerCase();
  try {
    return new TextDecoder(label === 'us-ascii' || label === 'ascii' ? 'utf-8' : label).decode(bytes);
  } catch {
    return bytes.toString('utf8');
  }
}

const HEX = '0123456789abcdef';

/** RFC 2045 6.7 quoted-printable, one pass; a malformed escape is kept as it is. */
function decodeQuotedPrintable(raw: string): Buffer {
  const out = Buffer.allocUnsafe(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i += 1) {
    const c = raw.charCodeAt(i);
    if (c !== 61) {
      out[n++] = c & 0xff;
      continue;
    }
    if (raw[i + 1] === '\n') i += 1;
    else if (raw[i + 1] === '\r' && raw[i + 2] === '\n') i += 2;
    else {
      const hi = HEX.indexOf((raw[i + 1] ?? '').toLowerCase());
      const lo = HEX.indexOf((raw[i + 2] ?? '').toLowerCase());
      if (hi >= 0 && lo >= 0) {
        out[n++] = hi * 16 + lo;
        i += 2;
      } else out[n++] = c;
    }
  }
  return out.subarray(0, n);
}

const ENTITIES: Record<string, string> = {
  nbsp: ' ',
  lt: '<',
  gt: '>',
  amp: '&',
  quot: '"',
  apos: "'",
  '#39': "'",
  '#160': ' ',
};
const BLOCK_TAGS = new Set([
  'br',
  'p',
  '/p',
  'div',
  '/div',
  'tr',
  '/tr',
  'li',
  '/li',
  'table',
  '/table',
  'h1',
  'h2',
  'h3',
  '/h1',
  '/h2',
  '/h3',
  'pre',
  '/pre',
  'hr',
  'blockquote',
  '/blockquote',
]);

/** HTML reduced to its text in one pass: tags dropped (block tags become line breaks), scripts and styles skipped. */
function htmlToText(html: string): string {
  const out: string[] = [];
  const lower = html.toLowerCase();
  let i = 0;
  while (i < html.length) {
    const lt = html.indexOf('<', i);
    // Line breaks in HTML source are spaces; only block tags break lines.
    out.push(decodeEntities(html.slice(i, lt < 0 ? html.length : lt).replace(/\s+/g, ' ')));
    if (lt < 0) break;
    const gt = html.indexOf('>', lt);
    if (gt < 0) break;
    let nameEnd = lt + 1;
    while (nameEnd < gt && !' \t\r\n/>'.includes(html[nameEnd] as string)) nameEnd += 1;
    if (html[lt + 1] === '/' && nameEnd === lt + 1)
      for (nameEnd = lt + 2; nameEnd < gt && !' \t\r\n>'.includes(html[nameEnd] as string); ) nameEnd += 1;
    const name = html.slice(lt + 1, nameEnd).toLowerCase();
    if (name === 'style' || name === 'script') {
      const close = lower.indexOf(`</${name}`, gt);
      i = close < 0 ? html.length : close;
      continue;
    }
    if (BLOCK_TAGS.has(name)) out.push('\n');
    i = gt + 1;
  }
  return out.join('');
}

function codePoint(name: string): string | undefined {
  const n = Number(name.startsWith('#x') ? `0x${name.slice(2)}` : name.slice(1));
  return Number.isInteger(n) && n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : undefined;
}

function decodeEntities(text: string): string {
  if (!text.includes('&')) return text;
  const out: string[] = [];
  let i = 0;
  for (let amp = text.indexOf('&'); amp >= 0; amp = text.indexOf('&', i)) {
    out.push(text.slice(i, amp));
    const semi = text.indexOf(';', amp);
    const name = semi > amp && semi - amp <= 8 ? text.slice(amp + 1, semi).toLowerCase() : undefined;
    const value =
      name === undefined ? undefined : (ENTITIES[name] ?? (name.startsWith('#') ? codePoint(name) : undefined));
    if (value === undefined) {
      out.push('&');
      i = amp + 1;
    } else {
      out.push(value);
      i = (semi as number) + 1;
    }
  }
  out.push(text.slice(i));
  return out.join('');
}
