import { createHash } from 'node:crypto';
import { classifyInbound, type InboundClassification, type InboundMessage } from './classify-inbound.js';
import { createEvent, EventTypes, type DispatchEvent } from './events.js';
import { hashAddress } from './message-id.js';

/** A selected mailbox as the server reports it. UIDVALIDITY and MODSEQ are decimal strings (they are 64-bit). */
export type MailboxStatus = { uidValidity: string; uidNext: number; highestModseq?: string; exists: number };

export type FetchedMessage = { uid: number; source: Buffer; internalDate?: Date; size: number };

/** One IMAP session on one mailbox; the imapflow adapter implements it. */
export interface MailboxSession {
  readonly status: MailboxStatus;
  /** UIDs above `lastUid`, ascending (the server's "n:*" quirk already filtered). */
  uidsAfter(lastUid: number): Promise<number[]>;
  fetch(uids: number[]): AsyncIterable<FetchedMessage>;
  /** Waits up to `waitMs` for news, then asks the server for the mailbox's state. */
  refresh(waitMs: number): Promise<MailboxStatus>;
  close(): Promise<void>;
}

/** Where a mailbox stands: everything up to `lastUid` under `uidValidity` has been processed and published. */
export type Checkpoint = { uidValidity: string; lastUid: number; highestModseq?: string };

/** The poller's durable state: per-mailbox lease and checkpoint, and markers of messages already published. */
export interface MailboxStateStore {
  /** Takes the mailbox's lease until `untilMs` unless another run holds an unexpired one. */
  acquireLease(mailboxId: string, owner: string, untilMs: number): Promise<boolean>;
  releaseLease(mailboxId: string, owner: string): Promise<void>;
  getCheckpoint(mailboxId: string): Promise<Checkpoint | undefined>;
  /** Compare-and-set: moves forward only (same UIDVALIDITY and a higher UID, or a new UIDVALIDITY from `expected`). */
  advanceCheckpoint(mailboxId: string, next: Checkpoint, expected: Checkpoint | undefined): Promise<boolean>;
  hasSeen(mailboxId: string, messageKey: string): Promise<boolean>;
  markSeen(mailboxId: string, messageKey: string): Promise<void>;
}

export type SyncDeps = {
  state: MailboxStateStore;
  openSession: () => Promise<MailboxSession>;
  parse: (source: Buffer) => Promise<InboundMessage>;
  /** Stores the raw message; returns where. */
  storeRaw: (key: string, source: Buffer) => Promise<{ bucket: string; key: string }>;
  publish: (event: DispatchEvent) => Promise<void>;
  suppress: (entry: { address: string; reason: 'hard-bounce' | 'complaint'; source: string; status?: string }) => Promise<void>;
  clock?: () => number;
  /** Called for each message handled, for metrics. */
  onMessage?: (facts: { kind: InboundClassification['kind']; lagMs: number; suppressed: number }) => void;
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
  /** Messages fetched per FETCH. @default 50 */
  chunkSize?: number;
  /** Messages of a chunk processed at once (store, publish, mark). @default 8 */
  concurrency?: number;
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
 * (suppression) and published, and only then is the checkpoint moved past it. A UIDVALIDITY change restarts from
 * UID 1 and skips messages already published (by Message-ID). In bounded-IDLE mode it keeps fetching new mail until
 * `idleUntilMs`, asking the server every `refreshEveryMs` rather than trusting notifications alone.
 */
export async function syncMailbox(deps: SyncDeps, options: SyncOptions): Promise<SyncResult> {
  const clock = deps.clock ?? Date.now;
  const { mailboxId, runId } = options;
  const chunkSize = options.chunkSize ?? 50;
  const concurrency = options.concurrency ?? 8;
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
    let checkpoint = await deps.state.getCheckpoint(mailboxId);

    const catchUp = async (status: MailboxStatus) => {
      const current = session as MailboxSession;
      if (checkpoint && checkpoint.uidValidity !== status.uidValidity) {
        // RFC 3501 2.3.1.1: every stored UID is void. Start again from the top; the seen markers prevent repeats.
        deps.log?.('warn', 'UIDVALIDITY changed: resynchronising', { mailboxId, from: checkpoint.uidValidity, to: status.uidValidity });
        result.resynchronised = true;
        const reset: Checkpoint = { uidValidity: status.uidValidity, lastUid: 0, highestModseq: status.highestModseq };
        if (!(await deps.state.advanceCheckpoint(mailboxId, reset, checkpoint))) throw new Error('checkpoint moved under us during UIDVALIDITY reset');
        checkpoint = reset;
      }
      const lastUid = checkpoint?.lastUid ?? 0;
      // UIDNEXT is a lower bound for any new message's UID: nothing can be new when it has not moved past us.
      if (checkpoint && status.uidNext > 0 && status.uidNext <= lastUid + 1) return;
      const uids = await current.uidsAfter(lastUid);
      for (let i = 0; i < uids.length; i += chunkSize) {
        if (clock() >= options.stopAtMs) return;
        const fetched: FetchedMessage[] = [];
        for await (const m of current.fetch(uids.slice(i, i + chunkSize))) fetched.push(m);
        // Up to `concurrency` messages in flight; the checkpoint then moves once, to the highest UID below which
        // every message is done. A failure stops the chunk there: what was marked seen is skipped next time.
        const done = new Set<number>();
        let failure: unknown;
        let next = 0;
        await Promise.all(
          Array.from({ length: Math.min(concurrency, fetched.length) }, async () => {
            while (next < fetched.length && failure === undefined && clock() < options.stopAtMs) {
              const message = fetched[next] as FetchedMessage;
              next += 1;
              try {
                await processOne(message, status);
                done.add(message.uid);
              } catch (error) {
                failure ??= error;
              }
            }
          }),
        );
        let reached: number | undefined;
        for (const m of fetched) {
          if (!done.has(m.uid)) break;
          reached = m.uid;
        }
        if (reached !== undefined) {
          const moved: Checkpoint = { uidValidity: status.uidValidity, lastUid: reached, highestModseq: status.highestModseq };
          if (!(await deps.state.advanceCheckpoint(mailboxId, moved, checkpoint))) throw new Error(`checkpoint for ${mailboxId} moved under us at UID ${reached}`);
          checkpoint = moved;
        }
        if (failure !== undefined) throw failure;
        if (done.size < fetched.length) return;
      }
    };

    const processOne = async (fetched: FetchedMessage, status: MailboxStatus): Promise<void> => {
      const message = await deps.parse(fetched.source);
      const key = messageKeyOf(message, fetched.size);
      // Seen before: a resync after a UIDVALIDITY change, or a run that died after publishing but before its checkpoint.
      const duplicate = await deps.state.hasSeen(mailboxId, key);
      let suppressed = 0;
      let kind: InboundClassification['kind'] = 'message';
      if (duplicate) {
        result.skippedDuplicates += 1;
      } else {
        const classification = classifyInbound(message);
        kind = classification.kind;
        const raw = await deps.storeRaw(`inbound/${mailboxId}/${status.uidValidity}/${fetched.uid}.eml`, fetched.source);
        // Suppress before publishing: once the event is out, the list already reflects it.
        if (classification.kind === 'bounce') {
          for (const r of classification.recipients.filter((x) => x.suppress)) {
            await deps.suppress({ address: r.recipient, reason: 'hard-bounce', source: `dsn:${key}`, status: r.status });
            suppressed += 1;
          }
        } else if (classification.kind === 'complaint' && classification.suppress) {
          for (const address of classification.recipients) {
            await deps.suppress({ address, reason: 'complaint', source: `arf:${key}`});
            suppressed += 1;
          }
        }
        // The event id is derived from the message's place in the mailbox: a republish after a crash between
        // publishing and checkpointing carries the same id, so consumers can drop it.
        const id = createHash('sha256').update(`${mailboxId}:${status.uidValidity}:${fetched.uid}`).digest('hex').slice(0, 32);
        await deps.publish({
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
        });
        await deps.state.markSeen(mailboxId, key);
        result.processed += 1;
      }
      deps.onMessage?.({ kind, lagMs: fetched.internalDate ? clock() - fetched.internalDate.getTime() : 0, suppressed });
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

/** Bounce and complaint recipients are the producer's own addresses: publish them, but hashed alongside. */
function withHashedRecipients(classification: InboundClassification) {
  if (classification.kind === 'bounce' || classification.kind === 'delay') {
    return { ...classification, recipients: classification.recipients.map((r) => ({ ...r, recipientHash: hashAddress(r.recipient) })) };
  }
  if (classification.kind === 'complaint') return { ...classification, recipientHashes: classification.recipients.map(hashAddress) };
  return classification;
}
