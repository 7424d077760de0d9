import { AttemptAbortedError } from './errors.js';

/** Bytes that may be held at once, shared by the jobs of an instance; `acquire` waits for room. */
export interface ByteBudget {
  /**
   * Resolves with a release function once `bytes` fit in the budget (first come, first served). Rejects with
   * AttemptAbortedError, holding nothing, if `signal` aborts while it waits.
   */
  acquire(bytes: number, signal?: AbortSignal): Promise<() => void>;
}

/**
 * A budget of `capacity` bytes. Requests are granted in order; one bigger than the whole budget is granted when
 * nothing else is held, so it runs alone rather than never. A job acquires everything it needs at once, so no two
 * jobs can each hold part and wait for the other.
 */
export function createByteBudget(capacity: number): ByteBudget & { readonly held: number } {
  let held = 0;
  const waiting: Array<{ bytes: number; grant: () => void }> = [];
  const fits = (bytes: number) => held === 0 || held + bytes <= capacity;
  const drain = () => {
    while (waiting.length > 0 && fits((waiting[0] as { bytes: number }).bytes))
      (waiting.shift() as { grant: () => void }).grant();
  };
  return {
    get held() {
      return held;
    },
    acquire(bytes, signal) {
      return new Promise((resolve, reject) => {
        if (signal?.aborted) return reject(new AttemptAbortedError('no time left to wait for memory'));
        const onAbort = () => {
          const index = waiting.indexOf(entry);
          if (index === -1) return;
          waiting.splice(index, 1);
          reject(new AttemptAbortedError('the attempt ran out of its budget waiting for memory'));
          // The head of the line may have been the one leaving: let the next in.
          drain();
        };
        const entry = {
          bytes,
          grant: () => {
            signal?.removeEventListener('abort', onAbort);
            held += bytes;
            let released = false;
            resolve(() => {
              if (released) return;
              released = true;
              held -= bytes;
              drain();
            });
          },
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        waiting.push(entry);
        drain();
      });
    },
  };
}
