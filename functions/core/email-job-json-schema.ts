import * as z from 'zod/mini';
import { EmailJobSchema } from './email-job.js';

/**
 * Letters and digits of any script (`\p{L}`, `\p{N}`), which not every regular-expression engine a JSON Schema
 * validator uses understands (Python's `re` does not), said portably: ASCII letters and digits, and every character
 * from U+00AA (the first letter after ASCII) to U+FFFD. Looser than the dispatcher, which still checks the address.
 */
const PORTABLE_CLASSES: ReadonlyArray<readonly [string, string]> = [
  ['\\p{L}\\p{N}', 'A-Za-z0-9\u00aa-\ufffd'],
  ['\\p{L}', 'A-Za-z\u00aa-\ufffd'],
];
/** A length check as a lookahead (which RE2, Go's engine, lacks); the schema says it as minLength and maxLength. */
const LENGTH_LOOKAHEAD = /^\^\(\?=\.\{(\d+),(\d+)\}\$\)/;

/** The schema with every `pattern` in the portable subset of regular expressions, nothing else changed. */
function portablePatterns(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(portablePatterns);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) out[key] = portablePatterns(value);
  if (typeof out.pattern !== 'string') return out;
  let pattern = out.pattern;
  for (const [from, to] of PORTABLE_CLASSES) pattern = pattern.replaceAll(from, to);
  const length = LENGTH_LOOKAHEAD.exec(pattern);
  if (length) {
    pattern = `^${pattern.slice(length[0].length)}`;
    out.minLength = Math.max(Number(out.minLength ?? 0), Number(length[1]));
    out.maxLength = Math.min(Number(out.maxLength ?? Number.POSITIVE_INFINITY), Number(length[2]));
  }
  out.pattern = pattern;
  return out;
}

/**
 * The JSON Schema (draft 2020-12) of the email job, generated from the zod schema, for producers in other languages.
 * Checks zod runs as code (no control characters in header fields, at least one recipient, text or html) cannot be
 * expressed here; the handler still applies them and says which field failed. Its patterns are portable (no Unicode
 * property escapes, no lookaround), so validators in Python, Go, Java or .NET compile them.
 */
export function toEmailJobJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(EmailJobSchema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' });
  return {
    ...(portablePatterns(schema) as Record<string, unknown>),
    $id: 'urn:email-dispatch:email-job:v1',
    title: 'Email job, version 1',
    description:
      'A message on the email-dispatch jobs queue. Header-bearing fields must not contain control characters or line breaks; at least one of to, cc, bcc is required, and either template or subject with one of text, html. Addresses: the pattern admits any non-ASCII character where the dispatcher admits letters and digits of any script.',
  };
}
