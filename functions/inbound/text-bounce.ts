import { BOUNCE_FAMILIES, ORIGINAL_STARTS, type BounceFamily } from './bounce-families.js';
import { reasonNamedIn } from './bounce-reasons.js';
import {
  containsAny,
  enhancedStatusIn,
  findAddresses,
  firstOf,
  linesOf,
  replyCodeIn,
  type FoundAddress,
} from './mail-text.js';

/** What the human-readable text of a bounce says, as the family tables read it. */
export type TextBounce = {
  /** The first specific family whose markers the text carries; undefined when only generic words matched. */
  family?: string;
  /** Generic bounce words (undeliverable, could not be delivered…) are in the text. */
  generic: boolean;
  /** The text says delivery is still being tried. */
  delay: boolean;
  /**
   * What the report says for all its recipients: the text under a diagnostic heading before any recipient is listed,
   * else the first line that gives a reply code or status without naming an address.
   */
  stated?: string;
  /** The To of the original where the text quotes its headers after the report. */
  quotedTo: string[];
  /** What the text says about permanence, when it says anything. */
  permanentHint?: boolean;
  recipients: Array<{ address: string; diagnostic?: string; permanentHint?: boolean }>;
};

const GENERIC = BOUNCE_FAMILIES.find((f) => f.name === 'generic') as BounceFamily;
const SPECIFIC = BOUNCE_FAMILIES.filter((f) => f !== GENERIC);
const DIAGNOSTIC_STARTS = [...new Set(BOUNCE_FAMILIES.flatMap((f) => f.diagnosticStarts ?? []))];
const RECIPIENT_PHRASES = [...new Set(BOUNCE_FAMILIES.flatMap((f) => f.recipientPhrases ?? []))];

/** A recipient named in a sentence ("Your message to <addr> couldn't be delivered."): the address after the phrase. */
function recipientInSentence(line: string): { address: string; rest: string } | undefined {
  const lower = line.toLowerCase();
  const phrase = firstOf(lower, RECIPIENT_PHRASES);
  if (!phrase) return undefined;
  const after = phrase.at + phrase.phrase.length;
  const [found] = findAddresses(line.slice(after, after + 300), 1);
  if (
    !found ||
    line
      .slice(after, after + found.start)
      .trim()
      .replace('<', '') !== ''
  )
    return undefined;
  return {
    address: found.address,
    rest: line
      .slice(after + found.end)
      .replace(/^[>'"\s.:]+/, '')
      .trim(),
  };
}

/** What may stand before an address that begins a recipient line (lowercase, trimmed). */
const RECIPIENT_PREFIXES = new Set([
  '',
  '<',
  '"',
  "'",
  '<<',
  'mailto:',
  '<mailto:',
  '*',
  '-',
  'failed to deliver to',
  "failed to deliver to '",
  "failed to deliver to '<",
  'recipient:',
  'recipient: <',
  'rcpt to:',
  'rcpt to: <',
  'to:',
  'to: <',
  'address:',
  'user',
  'user <',
  // Active!Hunter lists each failed address after ">>>" under Sendmail's "permanent fatal errors" heading.
  '>>>',
]);
/** Characters that close the address's brackets or quotes. */
const CLOSERS = '>"\']';

/** A diagnostic keeps at most this many characters. */
const DIAGNOSTIC_CHARS = 1000;
/** A report about our mail names at most a job's recipients (50): more are not read. */
const MAX_RECIPIENTS = 100;

/** A recipient being read: the pieces of its diagnostic and their length so far (joined by one space each). */
type Reading = { address: string; diagnostic: string[]; size: number };

/**
 * Whether the text before an address ends with an SMTP reply naming it, as session transcripts print them:
 * "<<< 550 5.1.1 <bob@example.net>... User unknown", "Received >>> 550-5.1.1 <bob@example.net>".
 */
const isReplyLine = (prefix: string): boolean => {
  const words = (prefix.endsWith('<') ? prefix.slice(0, -1) : prefix).trim().split(' ').filter(Boolean).slice(-2);
  const last = words[words.length - 1] ?? '';
  if (/^[245]\d\d$/.test(last)) return true;
  if (/^[245]\d\d-[245]\.\d{1,3}\.\d{1,3}$/.test(last)) return true;
  return /^[245]\.\d{1,3}\.\d{1,3}$/.test(last) && /^[245]\d\d$/.test(words[0] ?? '');
};

/**
 * Whether `line` lists a failed recipient: an address at its start (after a bracket, quote or a known label), then
 * nothing, a colon and the diagnostic, a parenthesis, `...` (Sendmail), `<mailto:` (Exchange), or a transcript
 * reply. Returns the address (the original one for Postfix's "(expanded from <…>)") and the rest of the line.
 */
function recipientLine(line: string): { address: string; rest: string } | undefined {
  const found = findAddresses(line, 3);
  const first = found[0];
  if (!first) return undefined;
  const prefix = line.slice(0, first.start).trim().toLowerCase();
  if (isReplyLine(prefix)) return { address: first.address, rest: line.trim() };
  // "Unknown user: addr" (IMail and others): the reason before the address.
  if (prefix.endsWith(':') && prefix.length <= 60 && reasonNamedIn(prefix)) {
    return { address: first.address, rest: line.slice(0, first.start).trim().slice(0, -1) };
  }
  if (!RECIPIENT_PREFIXES.has(prefix)) return undefined;
  let suffix = line.slice(first.end);
  while (suffix && CLOSERS.includes(suffix[0] as string)) suffix = suffix.slice(1);
  const trimmed = suffix.trim();
  const lower = trimmed.toLowerCase();
  if (trimmed === '' || lower.startsWith('<mailto:') || lower.startsWith('on '))
    return { address: first.address, rest: '' };
  // "addr <addr>" (Active!Hunter): the same address again in brackets, then maybe the diagnostic.
  const again = found[1];
  if (trimmed.startsWith('<') && again && again.address.toLowerCase() === first.address.toLowerCase())
    return {
      address: first.address,
      rest: line
        .slice(again.end)
        .replace(/^[>\s:]+/, '')
        .trim(),
    };
  if (trimmed.startsWith(':')) return { address: first.address, rest: trimmed.slice(1).trim() };
  if (trimmed.startsWith('...')) return { address: first.address, rest: trimmed.slice(3).trim() };
  if (trimmed.startsWith('(') || trimmed.startsWith('[')) {
    // "(expanded from <…>): …", "(Unknown user)", "[User unknown]": what the brackets hold explains the failure.
    const close = trimmed.indexOf(trimmed[0] === '(' ? ')' : ']');
    const inside = close >= 0 ? trimmed.slice(1, close).trim() : trimmed.slice(1);
    const after = close >= 0 ? trimmed.slice(close + 1).trim() : '';
    const rest = after.startsWith(':') ? after.slice(1).trim() : '';
    if (lower.startsWith('(expanded from')) {
      return { address: (found[1] as FoundAddress | undefined)?.address ?? first.address, rest };
    }
    return { address: first.address, rest: [inside, rest].filter(Boolean).join(' ') };
  }
  return undefined;
}

/**
 * Reads a bounce's human-readable text with the family tables: which family wrote it, the failed recipients each
 * with the diagnostic that follows it (on its line, on the lines below it up to a blank line, or after a
 * family's diagnostic heading), and whether it is a delay warning. Reads only up to where the returned message
 * is quoted. `exclude` holds addresses that are not recipients (the report's own sender and receiver).
 */
export function readTextBounce(text: string, exclude: ReadonlySet<string>): TextBounce {
  const fullLower = text.toLowerCase();
  const cut = firstOf(fullLower, ORIGINAL_STARTS);
  const body = cut ? text.slice(0, cut.at) : text;
  const lower = cut ? fullLower.slice(0, cut.at) : fullLower;
  const families = SPECIFIC.filter((f) => containsAny(lower, f.markers));
  const considered = [...families, GENERIC];
  const permanentMarkers = considered.flatMap((f) => f.permanentMarkers ?? []);
  const temporaryMarkers = considered.flatMap((f) => f.temporaryMarkers ?? []);
  const permanent = containsAny(lower, permanentMarkers);
  const temporary = containsAny(lower, temporaryMarkers);
  const permanentHint = permanent ? true : temporary ? false : undefined;
  // What a recipient's own diagnostic says ("retry timeout exceeded") beats what the report says as a whole.
  const hintFor = (diagnostic: string | undefined) => {
    const said = diagnostic?.toLowerCase() ?? '';
    return containsAny(said, temporaryMarkers) ? false : containsAny(said, permanentMarkers) ? true : permanentHint;
  };
  const delayWords = considered.some((f) => containsAny(lower, f.delayMarkers ?? []));

  const recipients = new Map<string, Reading>();
  const lines = linesOf(body);
  const orphan: Reading = { address: '', diagnostic: [], size: 0 };
  let current: Reading[] = [];
  let currentIndent = 0;
  let heading = false;
  // Each target's length is kept, not measured again: a line may go to every recipient listed (up to 100).
  const append = (targets: Reading[], piece: string) => {
    if (!piece) return;
    for (const t of targets) {
      if (t.size >= DIAGNOSTIC_CHARS) continue;
      t.size += (t.diagnostic.length > 0 ? 1 : 0) + piece.length;
      t.diagnostic.push(piece);
    }
  };
  for (const line of lines) {
    const trimmed = line.trim();
    if (trimmed === '') {
      // A heading's text, or the explanation of a recipient listed alone, may follow after a blank line.
      if (!heading && !current.every((r) => r.diagnostic.length === 0)) current = [];
      heading = false;
      continue;
    }
    const indent = line.length - line.trimStart().length;
    const start = firstOf(trimmed.toLowerCase(), DIAGNOSTIC_STARTS);
    if (start && start.at === 0) {
      const all = [...recipients.values()];
      const lacking = all.filter((r) => r.diagnostic.length === 0);
      // Under a heading before any recipient is listed, the text belongs to the report (recipients named elsewhere).
      current = current.length > 0 ? current : lacking.length > 0 ? lacking : all.length > 0 ? all.slice(-1) : [orphan];
      append(current, trimmed.slice(start.phrase.length).replace(/^[\s:]+/, ''));
      heading = true;
      continue;
    }
    // A line indented deeper than the recipient's own continues its diagnostic, whatever it names.
    const continues = current.length > 0 && !heading && indent > currentIndent;
    const listed = continues ? undefined : recipientLine(line);
    if (
      listed &&
      !exclude.has(listed.address.toLowerCase()) &&
      !listed.address.toLowerCase().startsWith('mailer-daemon@')
    ) {
      const key = listed.address.toLowerCase();
      const known = recipients.get(key);
      if (!known && recipients.size >= MAX_RECIPIENTS) {
        // Past the most a report can name: neither this address nor the lines under it are read.
        current = [];
        heading = false;
        continue;
      }
      const entry = known ?? { address: listed.address, diagnostic: [], size: 0 };
      recipients.set(key, entry);
      // A recipient listed again (in a transcript, under "for administrators") gets what is said there too.
      if (!heading || !current.includes(entry)) current = [entry];
      currentIndent = indent;
      heading = false;
      append(current, listed.rest);
      continue;
    }
    append(current, trimmed);
  }
  // No recipient listed on a line of its own: one named in a sentence, with what the lines after it say.
  if (recipients.size === 0) {
    let named: Reading | undefined;
    for (const line of lines) {
      const sentence = named ? undefined : recipientInSentence(line);
      if (!named && sentence && !exclude.has(sentence.address.toLowerCase())) {
        named = { address: sentence.address, diagnostic: [], size: 0 };
        append([named], sentence.rest);
        recipients.set(sentence.address.toLowerCase(), named);
      } else if (named) append([named], line.trim());
    }
  }
  // A reason stated once for the whole report ("Could not be delivered because of 550 5.1.1 User unknown"), before
  // or after the list, explains every recipient whose own lines give no code.
  const hasCode = (text: string) => enhancedStatusIn(text) !== undefined || replyCodeIn(text) !== undefined;
  const stated = lines.find((line) => findAddresses(line, 1).length === 0 && hasCode(line))?.trim();
  const listed = [...recipients.values()];
  if (stated && listed.every((r) => !hasCode(r.diagnostic.join(' '))))
    for (const r of listed) r.diagnostic.push(stated);
  // The original's To, where the report quotes its headers inline (the first To: line after the report).
  const quotedToLine = cut
    ? linesOf(text.slice(cut.at, cut.at + 64 * 1024), 1000, 400).find((l) => /^to:/i.test(l))
    : undefined;
  const quotedTo = quotedToLine ? findAddresses(quotedToLine, 10).map((a) => a.address) : [];
  return {
    family: families[0]?.name,
    quotedTo,
    stated: orphan.diagnostic.length > 0 ? orphan.diagnostic.join(' ').slice(0, DIAGNOSTIC_CHARS) : stated,
    generic: containsAny(lower, GENERIC.markers),
    delay: delayWords && !permanent,
    permanentHint,
    recipients: [...recipients.values()].map((r) => {
      const diagnostic = r.diagnostic.length > 0 ? r.diagnostic.join(' ').slice(0, DIAGNOSTIC_CHARS) : undefined;
      return { address: r.address, diagnostic, permanentHint: hintFor(diagnostic) };
    }),
  };
}
