import { forEachBounded } from '../bounded.js';
import type { FetchedMessage, MessageRef, RawLocation } from './ports.js';

/** UIDs in chunks of at most `count` messages and `bytes` bytes; a message bigger than `bytes` goes alone. */
export function toChunks(messages: MessageRef[], count: number, bytes: number): number[][] {
  const chunks: number[][] = [];
  let current: number[] = [];
  let size = 0;
  for (const m of messages) {
    if (current.length > 0 && (current.length >= count || size + m.size > bytes)) {
      chunks.push(current);
      current = [];
      size = 0;
    }
    current.push(m.uid);
    size += m.size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

export type RawChunkOptions = {
  mailboxId: string;
  uidValidity: string;
  /** Stores an object of raw messages; returns where. */
  storeRaw: (key: string, body: Buffer) => Promise<{ bucket: string; key: string }>;
  /** Largest raw object, bytes (a bigger single message gets an object of its own). */
  rawObjectBytes: number;
  /** Raw objects stored at once. */
  concurrency: number;
};

/**
 * Stores a chunk's messages back to back in as few objects as `rawObjectBytes` allows
 * (`inbound/<mailbox>/<uidvalidity>/<first uid>-<last uid>.eml`); returns where each message's bytes are.
 */
export async function storeRawChunk(
  messages: FetchedMessage[],
  options: RawChunkOptions,
): Promise<Map<number, RawLocation>> {
  const groups: FetchedMessage[][] = [];
  let size = 0;
  for (const m of messages) {
    const last = groups[groups.length - 1];
    if (!last || size + m.source.length > options.rawObjectBytes) {
      groups.push([m]);
      size = m.source.length;
    } else {
      last.push(m);
      size += m.source.length;
    }
  }
  const located = new Map<number, RawLocation>();
  await forEachBounded(groups, options.concurrency, async (group) => {
    const first = group[0] as FetchedMessage;
    const last = group[group.length - 1] as FetchedMessage;
    const key = `inbound/${options.mailboxId}/${options.uidValidity}/${first.uid}-${last.uid}.eml`;
    const stored = await options.storeRaw(key, Buffer.concat(group.map((m) => m.source)));
    let offset = 0;
    for (const m of group) {
      located.set(m.uid, { ...stored, offset, length: m.source.length });
      offset += m.source.length;
    }
  });
  return located;
}
