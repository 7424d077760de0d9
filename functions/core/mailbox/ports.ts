/** A selected mailbox as the server reports it. UIDVALIDITY and MODSEQ are decimal strings (they are 64-bit). */
export type MailboxStatus = { uidValidity: string; uidNext: number; highestModseq?: string; exists: number };

export type FetchedMessage = { uid: number; source: Buffer; internalDate?: Date; size: number };

/** A message listed before it is fetched: its UID and its size in bytes (RFC822.SIZE), or a bound on it. */
export type MessageRef = { uid: number; size: number };

/** One IMAP session on one mailbox; the imapflow adapter implements it. */
export interface MailboxSession {
  readonly status: MailboxStatus;
  /**
   * The messages above `lastUid`, ascending by UID (the server's "n:*" quirk already filtered). A message of more
   * than `sizeBound` bytes comes with its size; any other with `sizeBound` itself, the most it can be.
   */
  messagesAfter(lastUid: number, sizeBound: number): Promise<MessageRef[]>;
  /**
   * Fetches the messages (source, internal date, RFC822.SIZE). With `maxBytes`, at most that many bytes of each
   * source (a partial FETCH, RFC 3501 6.4.5 `BODY.PEEK[]<0.n>`); `size` is still the whole message's.
   */
  fetch(uids: number[], maxBytes?: number): AsyncIterable<FetchedMessage>;
  /** Waits up to `waitMs` for news, then asks the server for the mailbox's state. */
  refresh(waitMs: number): Promise<MailboxStatus>;
  close(): Promise<void>;
}

/**
 * Where a mailbox stands: everything up to `lastUid` under `uidValidity` has been processed and published. Above it,
 * up to `verifyUpTo`, a run may have published messages before it died: only those are checked against the seen
 * markers. During a resynchronisation (`resync`), messages up to `resync.until` are also checked against the
 * markers of the earlier UIDVALIDITYs, each up to the highest UID it reached.
 */
export type Checkpoint = {
  uidValidity: string;
  lastUid: number;
  highestModseq?: string;
  verifyUpTo?: number;
  resync?: Resync;
  /**
   * Where runs started reading messages and stopped before publishing them; cleared by a renewal or a move, unless the
   * move records the next one (a run going on to its next chunk says so in the same write).
   */
  attempt?: Attempt;
};

/**
 * `runs` runs in a row started handling messages at `uid` (the first above the checkpoint) and did not get as far as
 * publishing them.
 */
export type Attempt = { uid: number; runs: number };

export type Resync = { until: number; previous: Array<{ uidValidity: string; upToUid: number }> };

/** A message as the seen markers know it: where it is under the current UIDVALIDITY, and its key. */
export type SeenMessage = { uid: number; key: string };

/** Where a mailbox seen for the first time starts: after the mail it holds now, or at its first message. */
export const StartFrom = ['now', 'beginning'] as const;
export type StartFrom = (typeof StartFrom)[number];

/**
 * A run's hold on a mailbox: its owner (the run) and its fencing token, higher for every take of the lease. Every
 * write of the run carries the token, and the store refuses it once a later take holds a higher one.
 */
export type Lease = { mailboxId: string; owner: string; fence: number };

/** The poller's durable state: per-mailbox lease and checkpoint, and markers of messages already published. */
export interface MailboxStateStore {
  /** Takes the mailbox's lease until `untilMs` unless another run holds an unexpired one. */
  acquireLease(mailboxId: string, owner: string, untilMs: number): Promise<Lease | undefined>;
  /**
   * Extends the lease to `untilMs`; false when another run has taken it since (the lease is lost). A run renews just
   * before it publishes, that is once it has read its messages: the renewal also clears the recorded attempt.
   */
  renewLease(lease: Lease, untilMs: number): Promise<boolean>;
  releaseLease(lease: Lease): Promise<void>;
  getCheckpoint(mailboxId: string): Promise<Checkpoint | undefined>;
  /**
   * Compare-and-set: moves forward only (same UIDVALIDITY and a higher UID, or a new UIDVALIDITY from `expected`),
   * and only under the lease that is current. False when either does not hold. Records `next.attempt` in the same
   * write when there is one, and clears the attempt otherwise.
   */
  advanceCheckpoint(lease: Lease, next: Checkpoint, expected: Checkpoint | undefined): Promise<boolean>;
  /**
   * Raises `verifyUpTo` to `upToUid` before messages up to it are published (creating the checkpoint at UID 0 when
   * there is none). Compare-and-set on the UIDVALIDITY and the `verifyUpTo` that was read, under the current lease.
   */
  raiseVerifyMark(
    lease: Lease,
    uidValidity: string,
    upToUid: number,
    expected: Checkpoint | undefined,
  ): Promise<boolean>;
  /** Records that a run starts handling messages at `attempt.uid`, under the current lease. */
  recordAttempt(lease: Lease, attempt: Attempt): Promise<boolean>;
  /** Which of `messages` were marked seen under `uidValidity` (reads only the markers of their UIDs). */
  seenAmong(mailboxId: string, uidValidity: string, messages: SeenMessage[]): Promise<Set<string>>;
  /** The keys of every message marked seen under `uidValidity` up to `upToUid`, for a resynchronisation. */
  seenUpTo(mailboxId: string, uidValidity: string, upToUid: number): Promise<Set<string>>;
  /** Marks messages seen; false when a later lease has written their markers (the write is refused). */
  markSeen(lease: Lease, uidValidity: string, messages: SeenMessage[]): Promise<boolean>;
}

/** Where a message's raw bytes are: a byte range of an S3 object that holds a chunk's new messages back to back. */
export type RawLocation = { bucket: string; key: string; offset: number; length: number };
