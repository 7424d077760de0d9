import type { Checkpoint, MailboxStateStore, MailboxStatus, Resync, SeenMessage } from './ports.js';

/**
 * The checkpoint that restarts a mailbox whose UIDVALIDITY changed (RFC 3501 2.3.1.1: every stored UID is void):
 * from UID 0, with every message up to `top` checked against the markers of the old UIDVALIDITY (and of the one
 * before it, when that resynchronisation had not finished).
 */
export function resyncCheckpoint(checkpoint: Checkpoint, status: MailboxStatus, top: number): Checkpoint {
  const unfinished =
    checkpoint.resync && checkpoint.lastUid < checkpoint.resync.until ? checkpoint.resync.previous : [];
  const reached = Math.max(checkpoint.lastUid, checkpoint.verifyUpTo ?? 0);
  const previous = [...unfinished, { uidValidity: checkpoint.uidValidity, upToUid: reached }];
  return {
    uidValidity: status.uidValidity,
    lastUid: 0,
    highestModseq: status.highestModseq,
    verifyUpTo: top,
    resync: { until: top, previous },
  };
}

/** The resynchronisation still under way once the checkpoint is at `lastUid`, if any. */
export const resyncPending = (checkpoint: Checkpoint | undefined, lastUid: number): Resync | undefined =>
  checkpoint?.resync && lastUid < checkpoint.resync.until ? checkpoint.resync : undefined;

/**
 * Finds the messages published before: by a run that died after publishing but before its checkpoint (those up to
 * the verify mark, against this UIDVALIDITY's markers), or under an earlier UIDVALIDITY during a resynchronisation
 * (against the markers of the earlier ones, read once per run).
 */
export function createSeenCheck(state: MailboxStateStore, mailboxId: string) {
  let earlierKeys: Promise<Set<string>> | undefined;
  const seenEarlier = (resync: Resync) =>
    (earlierKeys ??= Promise.all(resync.previous.map((p) => state.seenUpTo(mailboxId, p.uidValidity, p.upToUid))).then(
      (sets) => new Set(sets.flatMap((set) => [...set])),
    ));
  return {
    /** Forgets the earlier markers read, after the UIDVALIDITY changed again. */
    forget() {
      earlierKeys = undefined;
    },
    /** The keys among `messages` that were published before. */
    async seenBefore(
      messages: SeenMessage[],
      uidValidity: string,
      verifyUpTo: number,
      resync: Resync | undefined,
    ): Promise<Set<string>> {
      const suspects = messages.filter((m) => m.uid <= verifyUpTo);
      const seen = suspects.length > 0 ? await state.seenAmong(mailboxId, uidValidity, suspects) : new Set<string>();
      if (resync) {
        const earlier = await seenEarlier(resync);
        for (const m of messages) if (m.uid <= resync.until && earlier.has(m.key)) seen.add(m.key);
      }
      return seen;
    },
  };
}
export type SeenCheck = ReturnType<typeof createSeenCheck>;
