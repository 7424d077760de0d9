import type { InboundClassification, InboundMessage, InboundReader } from '../inbound-report.js';
import type { DispatchEvent } from '../events.js';
import { countedReports, type CountedReport } from '../reputation.js';
import type { ReportVerification } from '../verify-report.js';
import { storeRawChunk } from './chunks.js';
import { classifyMessage, suppressReported, type Suppress } from './classify-and-suppress.js';
import type { Repeats } from './repeated-bounces.js';
import { eventBytes, inboundEventOf, MAX_EVENT_BYTES, unparsableEventOf } from './inbound-event.js';
import { LeaseLostError, type HeldLease } from './lease.js';
import type { FetchedMessage, MailboxStateStore, MailboxStatus, RawLocation, Resync, SeenMessage } from './ports.js';
import { abandonedMessage, readMessage, toUnparsable, type ReadMessage, type Unparsable } from './read-message.js';
import type { SeenCheck } from './seen-markers.js';

/** What a handled message was, for metrics: its classification, or `unparsable`. */
type MessageKind = InboundClassification['kind'] | 'unparsable';

export type ChunkDeps = {
  state: MailboxStateStore;
  parse: (source: Buffer) => Promise<InboundMessage>;
  storeRaw: (key: string, body: Buffer) => Promise<{ bucket: string; key: string }>;
  publishBatch: (events: DispatchEvent[]) => Promise<Array<{ event: DispatchEvent; error: string }>>;
  suppress: Suppress;
  /** Failures that suppress once they repeat (see repeated-bounces); without it, none does. */
  repeats?: Omit<Repeats, 'now'>;
  verifyReport?: (message: InboundMessage, classification: InboundClassification) => Promise<ReportVerification>;
  /** Reads what a message is (functions/inbound). */
  reader: InboundReader;
  clock: () => number;
  /** Called for each message handled, with how long it waited in the mailbox. */
  onMessage?: (facts: MessageFacts & { lagMs: number }) => void;
  log?: (level: 'info' | 'warn', message: string, facts: Record<string, unknown>) => void;
};

export type ChunkContext = {
  mailboxId: string;
  status: MailboxStatus;
  held: HeldLease;
  seen: SeenCheck;
  /** Messages up to this UID may have been published by a run that died: they are checked against the markers. */
  verifyUpTo: number;
  resync: Resync | undefined;
  /** No message is started after this time. */
  stopAtMs: number;
  maxMessageBytes: number;
  rawObjectBytes: number;
  concurrency: number;
  /** A message runs keep stopping on, and how many runs started on it: published as unparsable, not parsed. */
  abandon?: { uid: number; runs: number };
};

/** The UIDs done (published, or published before), in UID order as far as they go, and the first failure. */
export type ChunkOutcome = { done: Set<number>; failure?: unknown; processed: number; skippedDuplicates: number };

/** What handling one message found: its kind, what it suppressed and, for a report, what it counts against. */
type MessageFacts = {
  kind: MessageKind;
  suppressed: number;
  reason?: string;
  /** A bounce or delay that blames our side. */
  senderSide?: boolean;
  /** Set for reports (bounces, delays, complaints): whether the report was tied to mail we sent. */
  verified?: boolean;
  /** The tenant of the job a verified report is about. */
  tenant?: string;
  /** What a verified report counts against that tenant: one per address, named so a replay counts once. */
  reports?: CountedReport[];
};

type Outgoing = MessageFacts & { event: DispatchEvent; entry: ReadMessage };

/**
 * Handles one fetched chunk in UID order: each message is parsed on its own (the deadline is checked before each),
 * what was published before is skipped, the new ones are stored raw, classified and acted on, then published under a
 * confirmed lease and marked seen. A message that cannot be parsed, classified or published as it is goes out as
 * `inbound.unparsable` and counts as done, so it never holds up the messages after it.
 */
export async function handleChunk(
  fetched: FetchedMessage[],
  context: ChunkContext,
  deps: ChunkDeps,
): Promise<ChunkOutcome> {
  const { mailboxId, status, held } = context;
  const outcome: ChunkOutcome = { done: new Set<number>(), processed: 0, skippedDuplicates: 0 };
  const lagOf = (m: FetchedMessage) => (m.internalDate ? deps.clock() - m.internalDate.getTime() : 0);

  const read: ReadMessage[] = [];
  for (const m of fetched) {
    if (deps.clock() >= context.stopAtMs) break;
    read.push(
      m.uid === context.abandon?.uid
        ? abandonedMessage(m, context.abandon.runs)
        : await readMessage(m, deps.parse, context.maxMessageBytes),
    );
  }

  // A message repeated within the chunk counts as seen too.
  const seen = await context.seen.seenBefore(read.map(toSeen), status.uidValidity, context.verifyUpTo, context.resync);
  const fresh: ReadMessage[] = [];
  const skipped: SeenMessage[] = [];
  for (const entry of read) {
    if (seen.has(entry.key)) {
      outcome.skippedDuplicates += 1;
      skipped.push(toSeen(entry));
      outcome.done.add(entry.fetched.uid);
      deps.onMessage?.({ kind: 'message', lagMs: lagOf(entry.fetched), suppressed: 0 });
    } else {
      seen.add(entry.key);
      fresh.push(entry);
    }
  }
  // During a resync, what was skipped is marked again under this UIDVALIDITY (with what is published below, in the
  // same writes), so that a later resync finds it there.
  const markAgain = context.resync ? skipped : [];
  const markSeen = async (messages: SeenMessage[]) => {
    if (messages.length > 0 && !(await deps.state.markSeen(held.lease, status.uidValidity, messages)))
      throw new LeaseLostError(mailboxId, 'seen markers fenced');
  };
  if (fresh.length === 0) {
    await markSeen(markAgain);
    return outcome;
  }

  const raw = await storeRawChunk(
    fresh.map((m) => m.fetched),
    {
      mailboxId,
      uidValidity: status.uidValidity,
      storeRaw: deps.storeRaw,
      rawObjectBytes: context.rawObjectBytes,
      concurrency: context.concurrency,
    },
  );
  // Suppressing changes who we send to: like publishing, only under a lease confirmed held (once per chunk, and only
  // when the chunk suppresses anyone), so a run overtaken while it parsed acts on nothing.
  let confirmed = false;
  const suppress: ChunkDeps['suppress'] = async (entry) => {
    if (!confirmed) await held.confirm('before suppressing');
    confirmed = true;
    return deps.suppress(entry);
  };
  const outgoing: Outgoing[] = [];
  for (const entry of fresh) {
    try {
      outgoing.push(
        await toOutgoing(entry, { mailboxId, status, raw: raw.get(entry.fetched.uid) }, { ...deps, suppress }),
      );
    } catch (error) {
      if (error instanceof LeaseLostError) throw error;
      // The suppression list could not be written: a fault of ours, not of the message. Retried by the next run.
      outcome.failure = error;
      break;
    }
  }

  if (outgoing.length > 0) await held.confirm('before publishing');
  const failed = await deps.publishBatch(outgoing.map((o) => o.event));
  const failedIds = new Set(failed.map((f) => f.event.id));
  const published = outgoing.filter((o) => !failedIds.has(o.event.id));
  await markSeen([...markAgain, ...published.map((o) => toSeen(o.entry))]);
  for (const o of published) {
    outcome.done.add(o.entry.fetched.uid);
    outcome.processed += 1;
    if (o.kind === 'unparsable')
      deps.log?.('warn', 'inbound message published as unparsable', {
        mailboxId,
        uid: o.entry.fetched.uid,
        reason: o.reason,
      });
    const { kind, suppressed, reason, senderSide, verified, tenant, reports } = o;
    const lagMs = lagOf(o.entry.fetched);
    deps.onMessage?.({ kind, lagMs, suppressed, reason, senderSide, verified, tenant, reports });
  }
  if (failed.length > 0)
    outcome.failure ??= new Error(`${failed.length} event(s) not published: ${failed[0]?.error ?? ''}`);
  return outcome;
}

const toSeen = (entry: ReadMessage): SeenMessage => ({ uid: entry.fetched.uid, key: entry.key });

/** One message's event and its suppressions; a message that cannot be classified or published as it is, unparsable. */
async function toOutgoing(
  entry: ReadMessage,
  where: { mailboxId: string; status: MailboxStatus; raw: RawLocation | undefined },
  deps: Pick<ChunkDeps, 'suppress' | 'log' | 'verifyReport' | 'reader' | 'repeats' | 'clock'>,
): Promise<Outgoing> {
  const unparsable = (why: Unparsable): Outgoing => ({
    event: unparsableEventOf(entry, why, where),
    entry,
    kind: 'unparsable',
    suppressed: 0,
    reason: why.reason,
  });
  if (entry.unparsable) return unparsable(entry.unparsable);
  let classification: InboundClassification;
  try {
    classification = classifyMessage(entry.message, deps.reader);
  } catch (error) {
    return unparsable(toUnparsable(error, 'classification-failed'));
  }
  const event = inboundEventOf(entry, classification, where);
  const bytes = eventBytes(event);
  // Published as it is, it would be refused every time and hold the mailbox up; its raw bytes say everything.
  if (bytes > MAX_EVENT_BYTES)
    return unparsable({ reason: 'event-too-large', detail: `${classification.kind} event of ${bytes} bytes` });
  const facts = deps.reader.logFacts(classification);
  if (facts)
    deps.log?.('info', `${classification.kind} read`, { mailboxId: where.mailboxId, uid: entry.fetched.uid, ...facts });
  const verification = await verificationOf(entry.message, classification, deps.verifyReport);
  const verified = verification?.verified;
  // Only a report tied to mail we sent, to the addresses it names, suppresses; any other is published, marked.
  const tenant = verified ? verification?.tenant : undefined;
  const entries = verified
    ? await suppressReported(classification, entry.key, deps.suppress, verification?.via, tenant, repeatsNow(deps))
    : [];
  const suppressed = entries.length;
  const judged = verification
    ? { ...event, verified, tenant, verification: { reason: verification.reason, via: verification.via } }
    : event;
  const senderSide = deps.reader.blamesUs(classification);
  const reports = verified ? countedReports(entries) : undefined;
  return { event: judged, entry, kind: classification.kind, suppressed, senderSide, verified, tenant, reports };
}

const repeatsNow = (deps: Pick<ChunkDeps, 'repeats' | 'clock'>): Repeats | undefined =>
  deps.repeats && { ...deps.repeats, now: deps.clock() };

/** The verdict on a report (bounce, delay, complaint); undefined for any other message. */
async function verificationOf(
  message: InboundMessage,
  classification: InboundClassification,
  verify: ChunkDeps['verifyReport'],
): Promise<ReportVerification | undefined> {
  if (!['bounce', 'delay', 'complaint'].includes(classification.kind)) return undefined;
  if (!verify) return { verified: false, reason: 'no-verifier' };
  return verify(message, classification);
}
