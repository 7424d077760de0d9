import type { Lease, MailboxStateStore } from './ports.js';

/** The run no longer holds its mailbox's lease: another run took it over. The run stops; nothing is lost. */
export class LeaseLostError extends Error {
  constructor(mailboxId: string, what: string) {
    super(`lease on mailbox ${mailboxId} lost: ${what}`);
    this.name = 'LeaseLostError';
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Takes a mailbox's lease until `untilMs`. A run handing over may still hold it for a moment: this waits for it (up
 * to `waitMs`, never past `stopAtMs`) rather than skip a whole interval. Undefined when another run keeps it.
 */
export async function takeLease(
  state: MailboxStateStore,
  request: { mailboxId: string; owner: string; untilMs: number; waitMs: number; stopAtMs: number; clock: () => number },
): Promise<Lease | undefined> {
  const { mailboxId, owner, untilMs, clock } = request;
  let lease = await state.acquireLease(mailboxId, owner, untilMs);
  for (const waitUntil = clock() + request.waitMs; !lease && clock() < waitUntil && clock() < request.stopAtMs; ) {
    await sleep(500);
    lease = await state.acquireLease(mailboxId, owner, untilMs);
  }
  return lease;
}

/** A lease a run holds: `confirm` renews it before each publish and throws LeaseLostError once it is lost. */
export type HeldLease = { lease: Lease; confirm(what: string): Promise<void> };

/**
 * Holds a taken lease. Each `confirm` extends it to `renewForMs` from now (never shorter than the run was given), so
 * a run that works past its plan keeps it, and one that stalled past it and was overtaken learns so before it
 * publishes anything more.
 */
export function holdLease(
  state: MailboxStateStore,
  lease: Lease,
  options: { untilMs: number; renewForMs: number; clock: () => number },
): HeldLease {
  return {
    lease,
    async confirm(what) {
      if (!(await state.renewLease(lease, Math.max(options.untilMs, options.clock() + options.renewForMs))))
        throw new LeaseLostError(lease.mailboxId, what);
    },
  };
}
