import { appendFileSync } from 'node:fs';
import type { VisibilityControl } from '#core/dispatch-ports.js';

/** One deferred attempt of a job, as the twin records it for `npm run send -- --wait`. */
export type DeferralEntry = {
  idempotencyKey: string;
  action?: string;
  reason?: string;
  detail?: string;
  attempt?: number;
  retryInSeconds: number;
  time: string;
};

type DeferredLine = {
  message?: string;
  action?: string;
  reason?: string;
  detail?: string;
  attempt?: number;
  retryInSeconds?: number;
};

const keyOf = (body: string): string | undefined => {
  try {
    const key = (JSON.parse(body) as { idempotencyKey?: unknown }).idempotencyKey;
    return typeof key === 'string' ? key : undefined;
  } catch {
    return undefined;
  }
};

/**
 * Records why the twin's dispatcher deferred a job, by key, in a JSON-lines file: what Lambda leaves in CloudWatch
 * Logs, where a person would read it. The handler logs `job deferred` (reason, detail, delay; no key, by design) and
 * at once postpones the record (whose body has the key); the journal pairs the two, and only when the delays agree.
 */
export function createDeferralJournal(file: string) {
  let last: DeferredLine | undefined;
  return {
    file,
    /** Sees every log line of the twin's functions. */
    observe(line: string): void {
      if (!line.includes('"job deferred')) return;
      try {
        last = JSON.parse(line) as DeferredLine;
      } catch {
        last = undefined;
      }
    },
    /** The dispatcher's visibility control, recording each postponement before it is made. */
    wrap(visibility: VisibilityControl): VisibilityControl {
      return {
        // The handler hands over the SQS record itself: its body names the job.
        postpone: async (record: { receiptHandle: string; body?: string }, delaySeconds: number) => {
          const seen = last?.retryInSeconds === delaySeconds ? last : undefined;
          last = undefined;
          const idempotencyKey = record.body === undefined ? undefined : keyOf(record.body);
          if (idempotencyKey) {
            const entry: DeferralEntry = {
              idempotencyKey,
              action: seen?.action,
              reason: seen?.reason,
              detail: seen?.detail,
              attempt: seen?.attempt,
              retryInSeconds: delaySeconds,
              time: new Date().toISOString(),
            };
            appendFileSync(file, `${JSON.stringify(entry)}\n`);
          }
          return visibility.postpone(record, delaySeconds);
        },
      };
    },
  };
}
