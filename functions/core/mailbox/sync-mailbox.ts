import type { InboundMessage } from '../inbound-report.js';
import type { DispatchEvent } from '../events.js';
import { toChunks } from './chunks.js';
import type { Suppress } from './classify-and-suppress.js';
import { handleChunk, type ChunkContext, type ChunkDeps } from './handle-chunk.js';
import { holdLease, LeaseLostError, takeLease } from './lease.js';
import type {
  Checkpoint,
  FetchedMessage,
  MailboxSession,
  MailboxStateStore,
  MailboxStatus,
  MessageRef,
  StartFrom,
} from './ports.js';
import { createSeenCheck, resyncCheckpoint, resyncPending } from './seen-markers.js';

export type SyncDeps = {
  state: MailboxStateStore;
  openSession: () => Promise<MailboxSession>;
  parse: (source: Buffer) => Promise<InboundMessage>;
  /** Stores an object of raw messages; returns where. */
  storeRaw: (key: string, body: Buffer) => Promise<{ bucket: string; key: string }>;
  /** Publishes events in order; resolves with the ones that could not be published. */
  publishBatch: (events: DispatchEvent[]) => Promise<Array<{ event: DispatchEvent; error: string }>>;
  suppress: Suppress;
  /** Failures that suppress once they repeat (see repeated-bounces); without it, none does. */
  repeats?: ChunkDeps['repeats'];
  /**
   * Checks that a report (bounce, delay, complaint) is about mail we sent, to the addresses it names (see
   * verify-report). Only a verified report suppresses; without this, none is verified.
   */
  verifyReport?: ChunkDeps['verifyReport'];
  /** Reads what a message is: the classifier and its log facts (functions/inbound's `inboundReader`). */
  reader: ChunkDeps['reader'];
  clock?: () => number;
  /** Called for each message handled, for metrics. */
  onMessage?: ChunkDeps['onMessage'];
  log?: ChunkDeps['log'];
};

export type SyncOptions = {
  mailboxId: string;
  /** Unique per run: the lease owner. */
  runId: string;
  /** Stop starting work after this time (ms since epoch): the Lambda deadline minus a margin. */
  stopAtMs: number;
  /** Stay connected and keep fetching until this time (bounded IDLE). @default stopAtMs (0 = catch up once) */
  idleUntilMs?: number;
  /**
   * A mailbox without a checkpoint starts at its current UIDNEXT (`now`: nothing already there is published or
   * acted on) or with its first message (`beginning`). @default now
   */
  startFrom?: StartFrom;
  /** How long to wait for a running run's lease before yielding, ms. @default 10000 */
  leaseWaitMs?: number;
  /** A run working past its plan extends its lease this far ahead each time it publishes, ms. @default 30000 */
  leaseRenewMs?: number;
  /**
   * Most messages fetched per FETCH and handled together (one raw object, one seen write, one checkpoint).
   * @default 250
   */
  chunkSize?: number;
  /** Most bytes of messages in a chunk (a bigger single message is a chunk of its own). @default 16 MiB */
  chunkBytes?: number;
  /**
   * A bigger message is not parsed: its first `maxMessageBytes + 1` bytes (no more are fetched) are stored raw and it
   * is published as unparsable (`too-large`). @default 10 MiB
   */
  maxMessageBytes?: number;
  /** Raw objects of a chunk stored at once (a chunk's object is split at `rawObjectBytes`). @default 4 */
  concurrency?: number;
  /** Largest raw object, bytes (a bigger single message gets an object of its own). @default 8 MiB */
  rawObjectBytes?: number;
  /** How often to ask the server for news while idling, ms. @default 1000 */
  refreshEveryMs?: number;
};

export type SyncResult = {
  /** `lease-lost`: another run took the mailbox over while this one worked; this one stopped publishing. */
  status: 'synced' | 'busy' | 'lease-lost';
  processed: number;
  skippedDuplicates: number;
  resynchronised: boolean;
  checkpoint?: Checkpoint;
};

/**
 * Brings one mailbox up to date under its lease: every message above the checkpoint is stored, classified, acted on
 * (suppression) and published, and only then is the checkpoint moved past it. Messages are handled a chunk at a time
 * (one FETCH, one raw object, one PublishBatch per ten, one seen write, one checkpoint), and the next
 * chunk is fetched while this one is handled. A UIDVALIDITY change restarts from UID 1 and skips messages already
 * published (by Message-ID). In bounded-IDLE mode it keeps fetching new mail until `idleUntilMs`, asking the server
 * every `refreshEveryMs` rather than trusting notifications alone. Every write is fenced by the lease, and the lease
 * is confirmed before every publish: a run overtaken by another stops there.
 */
export async function syncMailbox(deps: SyncDeps, options: SyncOptions): Promise<SyncResult> {
  const clock = deps.clock ?? Date.now;
  const { mailboxId } = options;
  const chunkSize = options.chunkSize ?? 250;
  const chunkBytes = options.chunkBytes ?? 16 * 1024 * 1024;
  // A chunk of `chunkSize` messages of at most this size each stays within `chunkBytes`: only bigger ones need sizes.
  const sizeBound = Math.floor(chunkBytes / chunkSize);
  const maxMessageBytes = options.maxMessageBytes ?? 10 * 1024 * 1024;
  const leaseUntil = Math.max(options.stopAtMs, options.idleUntilMs ?? 0) + 5000;

  const result: SyncResult = { status: 'synced', processed: 0, skippedDuplicates: 0, resynchronised: false };
  const lease = await takeLease(deps.state, {
    mailboxId,
    owner: options.runId,
    untilMs: leaseUntil,
    waitMs: options.leaseWaitMs ?? 10_000,
    stopAtMs: options.stopAtMs,
    clock,
  });
  if (!lease) return { ...result, status: 'busy' };
  const held = holdLease(deps.state, lease, { untilMs: leaseUntil, renewForMs: options.leaseRenewMs ?? 30_000, clock });
  const seen = createSeenCheck(deps.state, mailboxId);
  const chunkDeps: ChunkDeps = { ...deps, clock };

  let session: MailboxSession | undefined;
  try {
    session = await deps.openSession();
    const current = session;
    let checkpoint = await deps.state.getCheckpoint(mailboxId);
    /** Moves the checkpoint under the lease; a refusal means another run has taken the mailbox over. */
    const advance = async (next: Checkpoint, what: string) => {
      if (!(await deps.state.advanceCheckpoint(lease, next, checkpoint)))
        throw new LeaseLostError(mailboxId, `checkpoint refused (${what})`);
      checkpoint = next;
    };
    /**
     * Fetches a chunk. A chunk holding a message over the size cap is fetched partially, the cap and one byte of
     * each message: a message too big to fetch in time or hold in memory would otherwise stop every run before it
     * could record anything, and its prefix is all that is kept of it anyway.
     */
    const collect = async (uids: number[], oversized: Set<number>) => {
      const fetched: FetchedMessage[] = [];
      const maxBytes = uids.some((uid) => oversized.has(uid)) ? maxMessageBytes + 1 : undefined;
      for await (const m of current.fetch(uids, maxBytes)) fetched.push(m);
      return fetched;
    };

    if (!checkpoint && options.startFrom !== 'beginning') {
      // Seen for the first time: its history is not news. UIDNEXT is where new mail will go (RFC 3501 2.3.1.1);
      // without it, after the highest UID there is now.
      const { status } = current;
      const start =
        status.uidNext > 0 ? status.uidNext - 1 : ((await current.messagesAfter(0, sizeBound)).at(-1)?.uid ?? 0);
      await advance(
        { uidValidity: status.uidValidity, lastUid: start, highestModseq: status.highestModseq },
        'first run',
      );
      deps.log?.('info', 'first run: starting after the mail already there', { mailboxId, lastUid: start });
    }

    const catchUp = async (status: MailboxStatus) => {
      let listed: MessageRef[] | undefined;
      if (checkpoint && checkpoint.uidValidity !== status.uidValidity) {
        // RFC 3501 2.3.1.1: every stored UID is void. Start again from the top; the seen markers prevent repeats.
        deps.log?.('warn', 'UIDVALIDITY changed: resynchronising', {
          mailboxId,
          from: checkpoint.uidValidity,
          to: status.uidValidity,
        });
        result.resynchronised = true;
        listed = await current.messagesAfter(0, sizeBound);
        await advance(resyncCheckpoint(checkpoint, status, listed[listed.length - 1]?.uid ?? 0), 'UIDVALIDITY reset');
        seen.forget();
      }
      const lastUid = checkpoint?.lastUid ?? 0;
      // UIDNEXT is a lower bound for any new message's UID: nothing can be new when it has not moved past us.
      if (!listed && checkpoint && status.uidNext > 0 && status.uidNext <= lastUid + 1) return;
      listed ??= await current.messagesAfter(lastUid, sizeBound);
      if (listed.length === 0) return;
      // Messages up to the mark may have been published by a run that died: those are checked against the seen
      // markers. Before this run publishes anything above the mark, it raises it.
      const verifyUpTo = checkpoint?.verifyUpTo ?? 0;
      const resync = resyncPending(checkpoint, lastUid);
      const top = (listed[listed.length - 1] as MessageRef).uid;
      if (verifyUpTo < top) {
        if (!(await deps.state.raiseVerifyMark(lease, status.uidValidity, top, checkpoint)))
          throw new LeaseLostError(mailboxId, 'verify mark refused');
        checkpoint = {
          uidValidity: status.uidValidity,
          lastUid,
          highestModseq: checkpoint?.highestModseq,
          verifyUpTo: top,
          resync: checkpoint?.resync,
          attempt: checkpoint?.attempt,
        };
      }
      const chunks = toChunks(listed, chunkSize, chunkBytes);
      const oversized = new Set(listed.filter((m) => m.size > maxMessageBytes).map((m) => m.uid));
      const context: ChunkContext = {
        mailboxId,
        status,
        held,
        seen,
        verifyUpTo,
        resync,
        stopAtMs: options.stopAtMs,
        maxMessageBytes,
        rawObjectBytes: options.rawObjectBytes ?? 8 * 1024 * 1024,
        concurrency: options.concurrency ?? 4,
      };
      /**
       * The first UID of the chunk this run goes on to, whose attempt it recorded with its last checkpoint move and
       * has not started yet.
       */
      let planned: number | undefined;
      /** Takes back an attempt recorded for a chunk this run does not start (a renewal clears it). */
      const unplan = async () => {
        if (planned === undefined) return;
        planned = undefined;
        await held.confirm('taking back an attempt not started');
        checkpoint = { ...(checkpoint as Checkpoint), attempt: undefined };
      };
      /**
       * Handles fetched messages and moves the checkpoint as far as they are done. With `goOnAt`, a run that finished
       * them and goes on records, in the same write, that it starts reading at that UID next.
       */
      const handleAndAdvance = async (
        fetched: FetchedMessage[],
        chunkContext: ChunkContext,
        goOnAtOf?: () => number | undefined,
      ) => {
        const done = await handleChunk(fetched, chunkContext, chunkDeps);
        result.processed += done.processed;
        result.skippedDuplicates += done.skippedDuplicates;
        // The checkpoint moves once, to the highest UID below which every message is done. A failure stops there:
        // what was published and marked seen is skipped next time, what was published and not marked is repeated.
        let reached: number | undefined;
        for (const m of fetched) {
          if (!done.done.has(m.uid)) break;
          reached = m.uid;
        }
        if (reached !== undefined) {
          const goOnAt = goOnAtOf?.();
          const goesOn =
            goOnAt !== undefined &&
            done.failure === undefined &&
            reached === fetched[fetched.length - 1]?.uid &&
            clock() < options.stopAtMs;
          // A resynchronisation is over once the checkpoint has passed every message it had to check.
          const moved: Checkpoint = {
            uidValidity: status.uidValidity,
            lastUid: reached,
            highestModseq: status.highestModseq,
            verifyUpTo: checkpoint?.verifyUpTo,
            resync: resyncPending(checkpoint, reached),
            attempt: goesOn ? attemptAt(goOnAt) : undefined,
          };
          await advance(moved, `UID ${reached}`);
          if (goesOn) planned = goOnAt;
        }
        if (done.failure !== undefined) throw done.failure;
      };
      // Whether the next chunk's FETCH has completed: only then does its attempt ride on the move (a run ended while
      // still fetching it has not read it).
      let nextFetched = false;
      const fetchNext = (uids: number[]) => {
        nextFetched = false;
        const fetching = collect(uids, oversized);
        fetching.then(
          () => {
            if (next === fetching) nextFetched = true;
          },
          () => {},
        );
        return fetching;
      };
      let next: Promise<FetchedMessage[]> | undefined = fetchNext(chunks[0] as number[]);
      for (let i = 0; next && clock() < options.stopAtMs; i += 1) {
        const fetched = await next.catch(async (error: unknown) => {
          await unplan().catch(() => {});
          throw error;
        });
        // The next FETCH runs on the connection while this chunk's AWS calls are in flight.
        const following = chunks[i + 1];
        next = following ? fetchNext(following) : undefined;
        next?.catch(() => {});
        const first = fetched[0];
        if (!first || clock() >= options.stopAtMs) {
          await unplan();
          continue;
        }
        const runs = planned === first.uid ? (checkpoint?.attempt?.runs ?? 1) : await startAttempt(first.uid);
        planned = undefined;
        if (runs < 2) {
          await handleAndAdvance(fetched, context, () => (nextFetched ? following?.[0] : undefined));
          continue;
        }
        // The run before started reading here and stopped before publishing: one of these messages may be stopping
        // runs (a parse that outlives the function, or its memory). They go one at a time, each recorded; one that
        // stopped the runs reading it twice (the last time alone) is published unparsable without being parsed again.
        deps.log?.('warn', 'runs did not finish this chunk: handling it one message at a time', {
          mailboxId,
          uid: first.uid,
          runs,
        });
        for (const m of fetched) {
          if (clock() >= options.stopAtMs) break;
          const attempts = m === first ? runs : await startAttempt(m.uid);
          await handleAndAdvance([m], {
            ...context,
            abandon: attempts >= 3 ? { uid: m.uid, runs: attempts } : undefined,
          });
        }
      }
      // Stopped at the deadline after recording where it would go on.
      await unplan();
    };

    /** The attempt of a run starting at `uid`: one more run in a row when the last one recorded started there. */
    const attemptAt = (uid: number) => ({
      uid,
      runs: checkpoint?.attempt?.uid === uid ? checkpoint.attempt.runs + 1 : 1,
    });
    /** Records that this run starts handling messages at `uid`; returns how many runs in a row have. */
    const startAttempt = async (uid: number): Promise<number> => {
      const attempt = attemptAt(uid);
      if (!(await deps.state.recordAttempt(lease, attempt))) throw new LeaseLostError(mailboxId, 'attempt refused');
      checkpoint = { ...(checkpoint as Checkpoint), attempt };
      return attempt.runs;
    };

    await catchUp(current.status);
    const idleUntil = Math.min(options.idleUntilMs ?? 0, options.stopAtMs);
    while (clock() < idleUntil) {
      const status = await current.refresh(Math.min(options.refreshEveryMs ?? 1000, Math.max(0, idleUntil - clock())));
      await catchUp(status);
    }
    result.checkpoint = checkpoint;
    return result;
  } catch (error) {
    if (!(error instanceof LeaseLostError)) throw error;
    deps.log?.('warn', 'lease lost: another run took the mailbox over; this run stops', {
      mailboxId,
      reason: error.message,
    });
    return { ...result, status: 'lease-lost' };
  } finally {
    await session?.close().catch(() => {});
    await deps.state.releaseLease(lease).catch(() => {});
  }
}
