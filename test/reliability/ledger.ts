import { toDispatchId } from '#core/message-id.js';
import type { ReceivedMessage } from '#local/smtp-sink.js';

/** The end-of-run comparison of what producers sent with what the sink received and the events topic carried. */
export type LedgerSummary = {
  jobs: number;
  delivered: number;
  rejected: number;
  lost: number;
  duplicated: number;
  /** Jobs without a terminal outcome event (email.delivered, email.rejected, email.failed). */
  eventsMissing: number;
  /** Terminal outcome events beyond one per job. */
  eventsDuplicated: number;
  inDlq: number;
};

const DISPATCH_ID = /^X-Dispatch-Id:\s*([a-f0-9]{32})\s*$/im;
const OUTCOME_TYPES = new Set(['email.delivered', 'email.rejected', 'email.failed']);

/**
 * Compares the producer ledger (every job by key, and whether the design rejects it) with the sink ledger (every
 * message received, by its X-Dispatch-Id), the outcome events published, and the dead-letter queue.
 */
export function compareLedgers(
  produced: Array<{ key: string; expect: 'delivered' | 'rejected' }>,
  received: ReceivedMessage[],
  deadLetters: unknown[],
  events: Array<Record<string, unknown>>,
): LedgerSummary & { duplicatedKeys: string[] } {
  const counts = new Map<string, number>();
  for (const message of received) {
    const header = message.raw.subarray(0, Math.min(message.raw.length, 8192)).toString('utf8');
    const id = DISPATCH_ID.exec(header)?.[1] ?? 'unknown';
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  const outcomes = new Map<string, number>();
  for (const event of events) {
    if (OUTCOME_TYPES.has(String(event.type)))
      outcomes.set(String(event.idempotencyKey), (outcomes.get(String(event.idempotencyKey)) ?? 0) + 1);
  }
  const unique = new Map(produced.map((p) => [p.key, p.expect]));
  const summary: LedgerSummary = {
    jobs: unique.size,
    delivered: 0,
    rejected: 0,
    lost: 0,
    duplicated: 0,
    eventsMissing: 0,
    eventsDuplicated: 0,
    inDlq: deadLetters.length,
  };
  const duplicatedKeys: string[] = [];
  for (const [key, expect] of unique) {
    const published = outcomes.get(key) ?? 0;
    if (published === 0) summary.eventsMissing += 1;
    summary.eventsDuplicated += Math.max(0, published - 1);
    const n = counts.get(toDispatchId(key)) ?? 0;
    if (expect === 'rejected') {
      summary.rejected += 1;
      if (n > 0) summary.duplicated += n;
      continue;
    }
    if (n === 0) summary.lost += 1;
    else summary.delivered += 1;
    if (n > 1) {
      summary.duplicated += n - 1;
      duplicatedKeys.push(key);
    }
  }
  return { ...summary, duplicatedKeys };
}

/**
 * Prints the scenario's summary line, exactly
 * `ledger <scenario>: jobs N, delivered N, rejected N, lost N, duplicated D, events missing N, events duplicated E`,
 * and under it what else the scenario counted (the dead-letter queue, retries, kills).
 */
export const printSummary = (scenario: string, s: LedgerSummary, extra = '') =>
  console.log(
    `ledger ${scenario}: jobs ${s.jobs}, delivered ${s.delivered}, rejected ${s.rejected}, lost ${s.lost}, ` +
      `duplicated ${s.duplicated}, events missing ${s.eventsMissing}, events duplicated ${s.eventsDuplicated}\n` +
      `  ${scenario} also: in DLQ ${s.inDlq}${extra ? `, ${extra}` : ''}`,
  );

/**
 * The keys of `duplicatedKeys` whose job no log line calls ambiguous (by its dispatch id): a repeat is allowed only
 * where an attempt said the provider may already have the message.
 */
export function unexplainedDuplicates(duplicatedKeys: string[], logLines: string[]): string[] {
  const ambiguous = logLines.filter((line) => line.includes('ambiguous'));
  return duplicatedKeys.filter((key) => !ambiguous.some((line) => line.includes(toDispatchId(key))));
}
