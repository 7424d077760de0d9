/**
 * Scanners for the tokens a bounce is read by (addresses, Message-IDs, reply codes, enhanced status codes). Each is
 * one pass over its input with indexOf and character tests: inbound text is hostile, so nothing here backtracks.
 */

const isDomainChar = (c: number) =>
  (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c > 127;
/** RFC 5322 atext and the dot, less the apostrophe (which quotes addresses in bounce text more than it is in one). */
const isLocalChar = (c: number) =>
  isDomainChar(c) || (c > 32 && c < 127 && '!#$%&*+/=?^_`{|}~'.includes(String.fromCharCode(c)));

export type FoundAddress = { address: string; start: number; end: number };

/** The addresses in `text`, in order: each `@` grown left over local-part characters and right over a domain. */
export function findAddresses(text: string, limit = 50): FoundAddress[] {
  const found: FoundAddress[] = [];
  for (let at = text.indexOf('@'); at >= 0 && found.length < limit; at = text.indexOf('@', at + 1)) {
    let start = at;
    while (start > 0 && isLocalChar(text.charCodeAt(start - 1))) start -= 1;
    while (start < at && text[start] === '.') start += 1;
    let end = at + 1;
    while (end < text.length && isDomainChar(text.charCodeAt(end))) end += 1;
    while (end > at + 1 && (text[end - 1] === '.' || text[end - 1] === '-')) end -= 1;
    const local = text.slice(start, at);
    const domain = text.slice(at + 1, end);
    if (local.length === 0 || local.length > 64 || domain.length > 253) continue;
    const dot = domain.indexOf('.');
    if (dot <= 0 || domain.startsWith('-') || domain.includes('..')) continue;
    found.push({ address: `${local}@${domain}`, start, end });
  }
  return found;
}

/**
 * `rfc822; Bob@Example.net`, `<Bob@Example.net> (comment)` → `Bob@Example.net`: the one address the value starts
 * with; anything else (no address, text before it, a second address) → undefined.
 */
export function addressOf(typed: string | undefined): string | undefined {
  if (!typed) return undefined;
  const value = (typed.includes(';') ? typed.slice(typed.indexOf(';') + 1) : typed).trim();
  const bare = value.startsWith('<') ? value.slice(1).trimStart() : value;
  const [found, second] = findAddresses(bare, 2);
  if (!found || second || found.start !== 0) return undefined;
  const rest = bare.slice(found.end).trim();
  return rest === '' || rest === '>' || rest.startsWith('(') || rest.startsWith('>') ? found.address : undefined;
}

/** The `<id@host>` tokens of `text` (Message-ID, In-Reply-To, References values), in order. */
export function messageIdsIn(text: string): string[] {
  const ids: string[] = [];
  // One forward pass: an id runs from the last '<' to the next '>', so a run of '<' or '>' costs nothing extra.
  let open = -1;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (c === 60) open = i;
    else if (c === 62 && open >= 0) {
      if (i - open >= 3 && i - open < 250) {
        const id = text.slice(open, i + 1);
        if (id.includes('@') && !/\s/.test(id)) ids.push(id);
      }
      open = -1;
    }
  }
  return ids;
}

const isDigit = (c: number) => c >= 48 && c <= 57;

/** The first RFC 3463 enhanced status code (`5.1.1`, `4.7.28`) standing alone in `text`. */
export function enhancedStatusIn(text: string): string | undefined {
  for (let dot = text.indexOf('.'); dot >= 0; dot = text.indexOf('.', dot + 1)) {
    const cls = text.charCodeAt(dot - 1);
    if (cls !== 50 && cls !== 52 && cls !== 53) continue;
    const before = text.charCodeAt(dot - 2);
    if (isDigit(before) || before === 46) continue;
    let i = dot + 1;
    const subjectStart = i;
    while (i < text.length && isDigit(text.charCodeAt(i)) && i - subjectStart < 4) i += 1;
    if (i === subjectStart || i - subjectStart > 3 || text[i] !== '.') continue;
    const detailStart = i + 1;
    i = detailStart;
    while (i < text.length && isDigit(text.charCodeAt(i)) && i - detailStart < 4) i += 1;
    if (i === detailStart || i - detailStart > 3) continue;
    // "5.1.1." ends a sentence; "5.1.1.4" is a version or an address.
    if (text[i] === '.' && isDigit(text.charCodeAt(i + 1))) continue;
    return text.slice(dot - 1, i);
  }
  return undefined;
}

/**
 * The SMTP reply code of a diagnostic (`550`, `421`): the one right before the enhanced status when there is one,
 * else the first three-digit number starting with 2, 4 or 5 that stands alone and is followed by a space, a hyphen
 * or the end (`550-5.1.1`, `said: 550 No such user`).
 */
export function replyCodeIn(text: string, status?: string): number | undefined {
  if (status) {
    const at = text.indexOf(status);
    const code = at >= 4 ? text.slice(at - 4, at - 1) : '';
    if (/^[245]\d\d$/.test(code) && (at < 5 || !isDigit(text.charCodeAt(at - 5)))) return Number(code);
  }
  for (let i = 0; i + 3 <= text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (c !== 50 && c !== 52 && c !== 53) continue;
    const prev = text.charCodeAt(i - 1);
    if (i > 0 && (isDigit(prev) || prev === 46 || prev === 45 || prev === 58 || prev === 35 || isWordChar(prev)))
      continue;
    if (!isDigit(text.charCodeAt(i + 1)) || !isDigit(text.charCodeAt(i + 2))) continue;
    const next = text[i + 3];
    if (next === undefined || next === ' ' || next === '-' || next === '\t' || next === '\n' || next === '\r')
      return Number(text.slice(i, i + 3));
  }
  return undefined;
}

const isWordChar = (c: number) => (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95;

/** Lines of `text` (CRLF, LF or CR), each at most `width` characters, at most `count` of them. */
export function linesOf(text: string, width = 1000, count = 5000): string[] {
  const lines: string[] = [];
  let pos = 0;
  while (pos < text.length && lines.length < count) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    let line = text.slice(pos, Math.min(end, pos + width));
    if (line.endsWith('\r')) line = line.slice(0, -1);
    lines.push(line.includes('\r') ? line.replaceAll('\r', ' ') : line);
    pos = end + 1;
  }
  return lines;
}

/** Whether `text` (already lowercase) contains any of `phrases` (lowercase). */
export const containsAny = (text: string, phrases: readonly string[]): boolean => phrases.some((p) => text.includes(p));

/** The first of `phrases` (lowercase) in `text` (already lowercase), with where it is. */
export function firstOf(text: string, phrases: readonly string[]): { phrase: string; at: number } | undefined {
  let best: { phrase: string; at: number } | undefined;
  for (const phrase of phrases) {
    const at = text.indexOf(phrase);
    if (at >= 0 && (!best || at < best.at)) best = { phrase, at };
  }
  return best;
}
