import { createHash } from 'node:crypto';
import type { InboundMessage } from '../inbound-report.js';
import type { FetchedMessage } from './ports.js';

/** A fetched message, parsed, with the key it is deduplicated by; or why it could not be. */
export type ReadMessage =
  | { fetched: FetchedMessage; key: string; message: InboundMessage; unparsable?: undefined }
  | { fetched: FetchedMessage; key: string; message?: undefined; unparsable: Unparsable };

/** A message that parsed. */
export type ParsedMessage = Extract<ReadMessage, { message: InboundMessage }>;

/** Why a message was not handled as mail: a short `reason` for subscribers and metrics, and a `detail`. */
export type Unparsable = { reason: string; detail?: string };

const digest = (basis: string | Buffer) => createHash('sha256').update(basis).digest('hex').slice(0, 40);

/**
 * The key a message is deduplicated by across a UIDVALIDITY change: its Message-ID, or for a message without one, a
 * hash of what identifies it.
 */
function messageKeyOf(message: InboundMessage, size: number): string {
  return digest(
    message.messageId ?? `${message.date?.toISOString() ?? ''}|${message.from ?? ''}|${message.subject ?? ''}|${size}`,
  );
}

/** Names what went wrong in a few words: the parser's own reason when it gives one (limit breaches do). */
export function toUnparsable(error: unknown, fallback: string): Unparsable {
  const e = error as { reason?: unknown; message?: unknown } | undefined;
  const reason = typeof e?.reason === 'string' && e.reason !== '' ? e.reason : fallback;
  const detail = typeof e?.message === 'string' ? e.message.slice(0, 200) : undefined;
  return { reason, detail };
}

/**
 * Parses one message on its own: a message over `maxBytes` is not parsed at all (only its prefix may have been
 * fetched), and one whose parse throws is returned as unparsable (keyed by a hash of its bytes) rather than failing
 * the messages around it.
 */
export async function readMessage(
  fetched: FetchedMessage,
  parse: (source: Buffer) => Promise<InboundMessage>,
  maxBytes: number,
): Promise<ReadMessage> {
  const size = Math.max(fetched.size, fetched.source.length);
  if (size > maxBytes) {
    const kept = fetched.source.length < size ? `; its first ${fetched.source.length} bytes kept` : '';
    return {
      fetched,
      key: digest(fetched.source),
      unparsable: { reason: 'too-large', detail: `${size} bytes, over ${maxBytes}${kept}` },
    };
  }
  try {
    const message = await parse(fetched.source);
    return { fetched, key: messageKeyOf(message, fetched.size), message };
  } catch (error) {
    return { fetched, key: digest(fetched.source), unparsable: toUnparsable(error, 'parse-failed') };
  }
}

/**
 * A message that runs keep stopping on (a parse that outlives the function, or its memory): published without being
 * parsed again, so the mailbox goes on.
 */
export function abandonedMessage(fetched: FetchedMessage, runs: number): ReadMessage {
  const detail = `the last ${runs - 1} runs that started on it did not finish, the last one handling it alone`;
  return { fetched, key: digest(fetched.source), unparsable: { reason: 'run-did-not-finish', detail } };
}
