import { createHash } from 'node:crypto';
import { classifyInbound, type InboundClassification, type InboundMessage } from './classify-inbound.js';
import { forEachBounded } from './bounded.js';
import { createEvent, EventTypes, type DispatchEvent } from './events.js';
import { hashAddress } from './message-id.js';
import type { ReportVerification } from './verify-report.js';

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
  fetch(uids: number[]): AsyncIterable<FetchedMessage>;
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
};

export type Resync = { until: number; previous: Array<{ uidValidity: string; upToUid: number }> };

/** A message as the seen markers know it: where it is under the current UIDVALIDITY, and its key. */
export type SeenMessage = { uid: number; key: string };

/** The poller's durable state: per-mailbox lease and checkpoint, and markers of messages already published. */
export interface MailboxStateStore {
  /** Takes the mailbox's lease until `untilMs` unless another run holds an unexpired one. */
  acquireLease(mailboxId: string, owner: string, untilMs: number): Promise<boolean>;
  releaseLease(mailboxId: string, owner: string): Promise<void>;
  getCheckpoint(mailboxId: string): Promise<Checkpoint | undefined>;
  /** Compare-and-set: moves forward only (same UIDVALIDITY and a higher UID, or a new UIDVALIDITY from `expected`). */
  advanceCheckpoint(mailboxId: string, next: Checkpoint, expected: Checkpoint | undefined): Promise<boolean>;
  /**
   * Raises `verifyUpTo` to `upToUid` before messages up to it are published (creating the checkpoint at UID 0 when
   * there is none). Compare-and-set on the UIDVALIDITY and the `verifyUpTo` that was read.
   */
  raiseVerifyMark(mailboxId: string, uidValidity: string, upToUid: number, expected: Checkpoint | undefined): Promise<boolean>;
  /** Which of `messages` were marked seen under `uidValidity` (reads only the markers of their UIDs). */
  seenAmong(mailboxId: string, uidValidity: string, messages: SeenMessage[]): Promise<Set<string>>;
  /** The keys of every message marked seen under `uidValidity` up to `upToUid`, for a resynchronisation. */
  seenUpTo(mailboxId: string, uidValidity: string, upToUid: number): Promise<Set<string>>;
  markSeen(mailboxId: string, uidValidity: string, messages: SeenMessage[]): Promise<void>;
}

/** Where a message's raw bytes are: a byte range of an S3 object that holds a chunk's new messages back to back. */
export type RawLocation = { bucket: string; key: string; offset: number; length: number };

/** An address to suppress, with the report that asks for it. */
export type SuppressionRequest = {
  address: string;
  reason: 'hard-bounce' | 'complaint';
  source: string;
  status?: string;
  verified?: boolean;
};

/** What the poller tells its metrics about each message. */
export type MessageFacts = {
  kind: InboundClassification['kind'];
  lagMs: number;
  suppressed: number;
  verified?: boolean;
};

export type SyncDeps = {
  state: MailboxStateStore;
  openSession: () => Promise<MailboxSession>;
  parse: (source: Buffer) => Promise<InboundMessage>;
  /** Stores an object of raw messages; returns where. */
  storeRaw: (key: string, body: Buffer) => Promise<{ bucket: string; key: string }>;
  /** Publishes events in order; resolves with the ones that could not be published. */
  publishBatch: (events: DispatchEvent[]) => Promise<Array<{ event: DispatchEvent; error: string }>>;
  suppress: (entry: SuppressionRequest) => Promise<void>;
  /**
   * Checks that a report (bounce, delay, complaint) is about mail we sent, to the addresses it names (see
   * verify-report). Only a verified report suppresses; without this, none is verified.
   */
  verifyReport?: (message: InboundMessage, classification: InboundClassification) => Promise<ReportVerification>;
  clock?: () => number;
  /** Called for each message handled, for metrics. `verified` is set for reports. */
  onMessage?: (facts: MessageFacts) => void;
  log?: (level: 'info' | 'warn', message: string, facts: Record<string, unknown>) => void;
};

export type SyncOptions = {
  mailboxId: string;
  /** Unique per run: the lease owner. */
  runId: string;
  /** Stop starting work after this time (ms since epoch): the Lambda deadline minus a margin. */
  stopAtMs: number;
  /** Stay connected and keep fetching until this time (bounded IDLE). @default stopAtMs (0 = catch up once) */
  idleUntilMs?: number;
  /** How long to wait for a running run's lease before yielding, ms. @default 10000 */
  leaseWaitMs?: number;
  /** Most messages fetched per FETCH and handled together (one raw object, one seen write, one checkpoint). @default 250 */
  chunkSize?: number;
  /** Most bytes of messages in a chunk (a bigger single message is a chunk of its own). @default 16 MiB */
  chunkBytes?: number;
  /** Raw objects of a chunk stored at once (a chunk's object is split at `rawObjectBytes`). @default 4 */
  concurrency?: number;
  /** Largest raw object, bytes (a bigger single message gets an object of its own). @default 8 MiB */
  rawObjectBytes?: number;
  /** How often to ask the server for news while idling, ms. @default 1000 */
  refreshEveryMs?: number;
};

export type SyncResult = {
  status: 'synced' | 'busy';
  processed: number;
  skippedDuplicates: number;
  resynchronised: boolean;
  checkpoint?: Checkpoint;
};

/**
 * The key a message is deduplicated by across a UIDVALIDITY change: its Message-ID, or for a message without one, a
 * hash of what identifies it.
 */
export function messageKeyOf(message: InboundMessage, size: number): string {
  const basis = message.messageId ?? `${message.date?.toISOString() ?? ''}|${message.from ?? ''}|${message.subject ?? ''}|${size}`;
  return createHash('sha256').update(basis).digest('hex').slice(0, 40);
}

const eventTypeOf = (kind: InboundClassification['kind']) =>
  kind === 'bounce' ? EventTypes.bounceDetected : kind === 'complaint' ? EventTypes.complaintDetected : kind === 'auto-reply' ? EventTypes.autoReplyDetected : EventTypes.inboundReceived;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Brings one mailbox up to date under its lease: every message above the checkpoint is stored, classified, acted on
 * (suppression) and published, and only then is the checkpoint moved past it. Messages are handled a chunk at a time
 * (one FETCH, one raw object, one PublishBatch per ten, one seen write, one checkpoint), and the next
 * chunk is fetched while this one is handled. A UIDVALIDITY change restarts from UID 1 and skips messages already
 * published (by Message-ID). In bounded-IDLE mode it keeps fetching new mail until `idleUntilMs`, asking the server
 * every `refreshEveryMs` rather than trusting notifications alone.
 */
export async function syncMailbox(deps: SyncDeps, options: SyncOptions): Promise<SyncResult> {
  const clock = deps.clock ?? Date.now;
  const { mailboxId, runId } = options;
  const chunkSize = options.chunkSize ?? 250;
  const chunkBytes = options.chunkBytes ?? 16 * 1024 * 1024;
  // A chunk of `chunkSize` messages of at most this size each stays within `chunkBytes`: only bigger ones need sizes.
  const sizeBound = Math.floor(chunkBytes / chunkSize);
  const leaseUntil = Math.max(options.stopAtMs, options.idleUntilMs ?? 0) + 5000;

  let leased = await deps.state.acquireLease(mailboxId, runId, leaseUntil);
  // A run handing over may still hold the lease for a moment: wait for it rather than skip a whole interval.
  for (const waitUntil = clock() + (options.leaseWaitMs ?? 10_000); !leased && clock() < waitUntil && clock() < options.stopAtMs; ) {
    await sleep(500);
    leased = await deps.state.acquireLease(mailboxId, runId, leaseUntil);
  }
  if (!leased) return { status: 'busy', processed: 0, skippedDuplicates: 0, resynchronised: false };

  const result: SyncResult = { status: 'synced', processed: 0, skippedDuplicates: 0, resynchronised: false };
  let session: MailboxSession | undefined;
  try {
    session = await deps.openSession();
    const current = session;
    let checkpoint = await deps.state.getCheckpoint(mailboxId);
    const collect = async (uids: number[]) => {
      const fetched: FetchedMessage[] = [];
      for await (const m of current.fetch(uids)) fetched.push(m);
      return fetched;
    };

    // The keys published under earlier UIDVALIDITYs, read once per run when a resynchronisation needs them.
    let earlierKeys: Promise<Set<string>> | undefined;
    const seenEarlier = (resync: Resync) =>
      (earlierKeys ??= Promise.all(resync.previous.map((p) => deps.state.seenUpTo(mailboxId, p.uidValidity, p.upToUid))).then((sets) => new Set(sets.flatMap((set) => [...set]))));

    const catchUp = async (status: MailboxStatus) => {
      let listed: MessageRef[] | undefined;
      if (checkpoint && checkpoint.uidValidity !== status.uidValidity) {
        // RFC 3501 2.3.1.1: every stored UID is void. Start again from the top; the seen markers prevent repeats.
        deps.log?.('warn', 'UIDVALIDITY changed: resynchronising', { mailboxId, from: checkpoint.uidValidity, to: status.uidValidity });
        result.resynchronised = true;
        listed = await current.messagesAfter(0, sizeBound);
        const top = listed[listed.length - 1]?.uid ?? 0;
        // Every message there now may be one published under the old UIDVALIDITY (or under one before it, when its
        // own resynchronisation had not finished): all are checked against those markers.
        const unfinished = checkpoint.resync && checkpoint.lastUid < checkpoint.resync.until ? checkpoint.resync.previous : [];
        const previous = [...unfinished, { uidValidity: checkpoint.uidValidity, upToUid: Math.max(checkpoint.lastUid, checkpoint.verifyUpTo ?? 0) }];
        const reset: Checkpoint = { uidValidity: status.uidValidity, lastUid: 0, highestModseq: status.highestModseq, verifyUpTo: top, resync: { until: top, previous } };
        if (!(await deps.state.advanceCheckpoint(mailboxId, reset, checkpoint))) throw new Error('checkpoint moved under us during UIDVALIDITY reset');
        checkpoint = reset;
        earlierKeys = undefined;
      }
      const lastUid = checkpoint?.lastUid ?? 0;
      // UIDNEXT is a lower bound for any new message's UID: nothing can be new when it has not moved past us.
      if (!listed && checkpoint && status.uidNext > 0 && status.uidNext <= lastUid + 1) return;
      listed ??= await current.messagesAfter(lastUid, sizeBound);
      if (listed.length === 0) return;
      // Messages up to the mark may have been published by a run that died: those are checked against the seen
      // markers. Before this run publishes anything above the mark, it raises it.
      const verifyUpTo = checkpoint?.verifyUpTo ?? 0;
      const resync = checkpoint?.resync && lastUid < checkpoint.resync.until ? checkpoint.resync : undefined;
      const top = (listed[listed.length - 1] as MessageRef).uid;
      if ((checkpoint?.verifyUpTo ?? 0) < top) {
        if (!(await deps.state.raiseVerifyMark(mailboxId, status.uidValidity, top, checkpoint))) throw new Error(`checkpoint for ${mailboxId} moved under us`);
        checkpoint = { uidValidity: status.uidValidity, lastUid, highestModseq: checkpoint?.highestModseq, verifyUpTo: top, resync: checkpoint?.resync };
      }
      const chunks = toChunks(listed, chunkSize, chunkBytes);
      let next: Promise<FetchedMessage[]> | undefined = collect(chunks[0] as number[]);
      for (let i = 0; next && clock() < options.stopAtMs; i += 1) {
        const fetched = await next;
        // The next FETCH runs on the connection while this chunk's AWS calls are in flight.
        const following = chunks[i + 1];
        next = following ? collect(following) : undefined;
        next?.catch(() => {});
        const done = await handleChunk(fetched, status, verifyUpTo, resync);
        // The checkpoint moves once, to the highest UID below which every message is done. A failure stops there:
        // what was published and marked seen is skipped next time, what was published and not marked is repeated.
        let reached: number | undefined;
        for (const m of fetched) {
          if (!done.has(m.uid)) break;
          reached = m.uid;
        }
        if (reached !== undefined) {
          // A resynchronisation is over once the checkpoint has passed every message it had to check.
          const stillResyncing = checkpoint?.resync && reached < checkpoint.resync.until ? checkpoint.resync : undefined;
          const moved: Checkpoint = { uidValidity: status.uidValidity, lastUid: reached, highestModseq: status.highestModseq, verifyUpTo: checkpoint?.verifyUpTo, resync: stillResyncing };
          if (!(await deps.state.advanceCheckpoint(mailboxId, moved, checkpoint))) throw new Error(`checkpoint for ${mailboxId} moved under us at UID ${reached}`);
          checkpoint = moved;
        }
        if (done.failure !== undefined) throw done.failure;
      }
    };

    /** Handles one chunk in UID order; returns the UIDs done (published or seen before) and the first failure. */
    const handleChunk = async (fetched: FetchedMessage[], status: MailboxStatus, verifyUpTo: number, resync: Resync | undefined): Promise<Set<number> & { failure?: unknown }> => {
      const done: Set<number> & { failure?: unknown } = new Set<number>();
      const messages: Array<{ fetched: FetchedMessage; message: InboundMessage; key: string }> = [];
      for (const m of fetched) {
        const message = await deps.parse(m.source);
        messages.push({ fetched: m, message, key: messageKeyOf(message, m.size) });
      }
      // Seen before: a run that died after publishing but before its checkpoint (up to the verify mark), or a
      // message published under an earlier UIDVALIDITY (during a resync). A message repeated within the chunk
      // counts as seen too.
      const suspects = messages.filter((m) => m.fetched.uid <= verifyUpTo).map((m) => ({ uid: m.fetched.uid, key: m.key }));
      const seen = suspects.length > 0 ? await deps.state.seenAmong(mailboxId, status.uidValidity, suspects) : new Set<string>();
      if (resync) {
        const earlier = await seenEarlier(resync);
        for (const m of messages) if (m.fetched.uid <= resync.until && earlier.has(m.key)) seen.add(m.key);
      }
      const fresh: typeof messages = [];
      const skipped: SeenMessage[] = [];
      for (const m of messages) {
        if (seen.has(m.key)) {
          result.skippedDuplicates += 1;
          skipped.push({ uid: m.fetched.uid, key: m.key });
          done.add(m.fetched.uid);
          deps.onMessage?.({ kind: 'message', lagMs: lagOf(m.fetched), suppressed: 0 });
        } else {
          seen.add(m.key);
          fresh.push(m);
        }
      }
      // During a resync, what was skipped is marked again under this UIDVALIDITY (with what is published below, in
      // the same writes), so that a later resync finds it there.
      const markAgain = resync ? skipped : [];
      if (fresh.length === 0) {
        if (markAgain.length > 0) await deps.state.markSeen(mailboxId, status.uidValidity, markAgain);
        return done;
      }
      const raw = await storeRawChunk(fresh.map((m) => m.fetched), status);

      type Outgoing = Omit<MessageFacts, 'lagMs'> & { event: DispatchEvent; entry: (typeof fresh)[number] };
      const outgoing: Outgoing[] = [];
      for (const entry of fresh) {
        try {
          const classification = classifyInbound(entry.message);
          const verification = await verificationOf(entry.message, classification);
          // Suppress before publishing: once the event is out, the list already reflects it. Only a verified report.
          const verified = verification?.verified;
          const source = `${entry.key}:${verification?.via ?? ''}`;
          const suppressed = verified ? await suppressFor(classification, source) : 0;
          const event = eventOf(entry, classification, status, raw.get(entry.fetched.uid));
          const { reason, via } = verification ?? {};
          const verdict = verification && { verified, verification: { reason, via } };
          const judged = verdict ? { ...event, ...verdict } : event;
          outgoing.push({ event: judged, entry, kind: classification.kind, suppressed, verified });
        } catch (error) {
          done.failure = error;
          break;
        }
      }
      const failed = await deps.publishBatch(outgoing.map((o) => o.event));
      const failedIds = new Set(failed.map((f) => f.event.id));
      const published = outgoing.filter((o) => !failedIds.has(o.event.id));
      await deps.state.markSeen(mailboxId, status.uidValidity, [...markAgain, ...published.map((o) => ({ uid: o.entry.fetched.uid, key: o.entry.key }))]);
      for (const o of published) {
        done.add(o.entry.fetched.uid);
        result.processed += 1;
        const lagMs = lagOf(o.entry.fetched);
        deps.onMessage?.({ kind: o.kind, lagMs, suppressed: o.suppressed, verified: o.verified });
      }
      if (failed.length > 0) done.failure ??= new Error(`${failed.length} event(s) not published: ${failed[0]?.error ?? ''}`);
      return done;
    };

    const lagOf = (fetched: FetchedMessage) => (fetched.internalDate ? clock() - fetched.internalDate.getTime() : 0);

    /** The chunk's new messages back to back in as few objects as `rawObjectBytes` allows. */
    const storeRawChunk = async (fresh: FetchedMessage[], status: MailboxStatus): Promise<Map<number, RawLocation>> => {
      const limit = options.rawObjectBytes ?? 8 * 1024 * 1024;
      const groups: FetchedMessage[][] = [];
      let size = 0;
      for (const m of fresh) {
        const last = groups[groups.length - 1];
        if (!last || size + m.source.length > limit) {
          groups.push([m]);
          size = m.source.length;
        } else {
          last.push(m);
          size += m.source.length;
        }
      }
      const located = new Map<number, RawLocation>();
      await forEachBounded(groups, options.concurrency ?? 4, async (group) => {
        const first = group[0] as FetchedMessage;
        const last = group[group.length - 1] as FetchedMessage;
        const stored = await deps.storeRaw(`inbound/${mailboxId}/${status.uidValidity}/${first.uid}-${last.uid}.eml`, Buffer.concat(group.map((m) => m.source)));
        let offset = 0;
        for (const m of group) {
          located.set(m.uid, { ...stored, offset, length: m.source.length });
          offset += m.source.length;
        }
      });
      return located;
    };

    type Verdict = ReportVerification | undefined;
    const verificationOf = async (message: InboundMessage, classification: InboundClassification): Promise<Verdict> => {
      if (!['bounce', 'delay', 'complaint'].includes(classification.kind)) return undefined;
      if (!deps.verifyReport) return { verified: false, reason: 'no-verifier' };
      return deps.verifyReport(message, classification);
    };

    const suppressFor = async (classification: InboundClassification, key: string): Promise<number> => {
      let suppressed = 0;
      if (classification.kind === 'bounce') {
        for (const r of classification.recipients.filter((x) => x.suppress)) {
          const source = `dsn:${key}`;
          const { recipient: address, status } = r;
          await deps.suppress({ address, reason: 'hard-bounce', source, status, verified: true });
          suppressed += 1;
        }
      } else if (classification.kind === 'complaint' && classification.suppress) {
        for (const address of classification.recipients) {
          await deps.suppress({ address, reason: 'complaint', source: `arf:${key}`, verified: true });
          suppressed += 1;
        }
      }
      return suppressed;
    };

    const eventOf = (entry: { fetched: FetchedMessage; message: InboundMessage; key: string }, classification: InboundClassification, status: MailboxStatus, raw: RawLocation | undefined): DispatchEvent => {
      const { fetched, message, key } = entry;
      // The event id is derived from the message's place in the mailbox: a republish after a crash between
      // publishing and checkpointing carries the same id, so consumers can drop it.
      const id = createHash('sha256').update(`${mailboxId}:${status.uidValidity}:${fetched.uid}`).digest('hex').slice(0, 32);
      return {
        ...createEvent(eventTypeOf(classification.kind), {
          mailbox: mailboxId,
          uidValidity: status.uidValidity,
          uid: fetched.uid,
          messageKey: key,
          messageId: message.messageId,
          from: message.from,
          subject: message.subject,
          receivedAt: fetched.internalDate?.toISOString(),
          size: fetched.size,
          raw,
          classification: withHashedRecipients(classification),
        }),
        id,
      };
    };

    await catchUp(session.status);
    const idleUntil = Math.min(options.idleUntilMs ?? 0, options.stopAtMs);
    while (clock() < idleUntil) {
      const status = await session.refresh(Math.min(options.refreshEveryMs ?? 1000, Math.max(0, idleUntil - clock())));
      await catchUp(status);
    }
    result.checkpoint = checkpoint;
    return result;
  } finally {
    await session?.close().catch(() => {});
    await deps.state.releaseLease(mailboxId, runId).catch(() => {});
  }
}

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

/** Bounce and complaint recipients are the producer's own addresses: publish them, but hashed alongside. */
function withHashedRecipients(classification: InboundClassification) {
  if (classification.kind === 'bounce' || classification.kind === 'delay') {
    return { ...classification, recipients: classification.recipients.map((r) => ({ ...r, recipientHash: hashAddress(r.recipient) })) };
  }
  if (classification.kind === 'complaint') return { ...classification, recipientHashes: classification.recipients.map(hashAddress) };
  return classification;
}
