import { toDispatchId } from '#core/message-id.js';
import type { ReceivedMessage } from '#local/smtp-sink.js';

/** The end-of-run comparison of what producers sent with what the sink received. */
export type LedgerSummary = { jobs: number; delivered: number; lost: number; duplicated: number; rejected: number; inDlq: number };

const DISPATCH_ID = /^X-Dispatch-Id:\s*([a-f0-9]{32})\s*$/im;

/**
 * Compares the producer ledger (every job by key, and whether the design rejects it) with the sink ledger (every
 * message received, by its X-Dispatch-Id) and the dead-letter queue.
 */
export function compareLedgers(produced: Array<{ key: string; expect: 'delivered' | 'rejected' }>, received: ReceivedMessage[], deadLetters: unknown[] = []): LedgerSummary & { duplicatedKeys: string[] } {
  const counts = new Map<string, number>();
  for (const message of received) {
    const header = message.raw.subarray(0, Math.min(message.raw.length, 8192)).toString('utf8');
    const id = DISPATCH_ID.exec(header)?.[1] ?? 'unknown';
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  const unique = new Map(produced.map((p) => [p.key, p.expect]));
  let delivered = 0;
  let lost = 0;
  let duplicated = 0;
  let rejected = 0;
  const duplicatedKeys: string[] = [];
  for (const [key, expect] of unique) {
    const n = counts.get(toDispatchId(key)) ?? 0;
    if (expect === 'rejected') {
      rejected += 1;
      if (n > 0) duplicated += n;
      continue;
    }
    if (n === 0) lost += 1;
    else delivered += 1;
    if (n > 1) {
      duplicated += n - 1;
      duplicatedKeys.push(key);
    }
  }
  return { jobs: unique.size, delivered, lost, duplicated, rejected, inDlq: deadLetters.length, duplicatedKeys };
}

export const printSummary = (scenario: string, s: LedgerSummary, extra = '') =>
  console.log(`ledger ${scenario}: jobs ${s.jobs}, delivered ${s.delivered}, lost ${s.lost}, duplicated ${s.duplicated}, rejected ${s.rejected}, in DLQ ${s.inDlq}${extra ? `, ${extra}` : ''}`);
