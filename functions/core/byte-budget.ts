/** Bytes that may be held at once, shared by the jobs of an instance; `acquire` waits for room. */
export interface ByteBudget {
  /** Resolves with a release function once `bytes` fit in the budget (first come, first served). */
  acquire(bytes: number): Promise<() => void>;
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
    while (waiting.length > 0 && fits((waiting[0] as { bytes: number }).bytes)) (waiting.shift() as { grant: () => void }).grant();
  };
  return {
    get held() {
      return held;
    },
    acquire(bytes) {
      return new Promise((resolve) => {
        const grant = () => {
          held += bytes;
          let released = false;
          resolve(() => {
            if (released) return;
            released = true;
            held -= bytes;
            drain();
          });
        };
        waiting.push({ bytes, grant });
        drain();
      });
    },
  };
}
