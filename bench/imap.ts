import { randomBytes } from 'node:crypto';
import { chownSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSnsEventPublisher } from '#aws/event-publisher.js';
import { createMailboxStateStore } from '#aws/mailbox-state-store.js';
import { createRawMessageStore } from '#aws/raw-message-store.js';
import { syncMailbox, type SyncDeps } from '#core/mailbox/sync-mailbox.js';
import { DEFAULT_SETTINGS } from '#infra/settings.js';
import { openImapSession } from '#imap/imap-session.js';
import { inboundReader } from '#inbound/inbound-reader.js';
import { parseInbound } from '#inbound/parse-inbound.js';
import { connectToDovecot, startDovecot } from '#local/dovecot.js';
import { createLocalResources, LOCAL_NAMES } from '#local/resources.js';
import { localTlsCertificate } from '#local/tls-certificate.js';
import { slices } from '#core/bounded.js';
import { createEvent, EventTypes, type EventPublisher } from '#core/events.js';
import { startBenchEmulators } from './emulators.js';
import { percentile, record } from './measure.js';

const user = { username: 'bench', password: 'bench-pass' };
const message = (n: number) =>
  `From: sender${n}@example.org\r\nTo: inbox@example.com\r\nSubject: Message ${n}\r\nMessage-ID: <bench-${n}-${randomBytes(4).toString('hex')}@example.org>\r\nDate: ${new Date().toUTCString()}\r\n\r\n${'Body line.\r\n'.repeat(20)}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Against Dovecot on loopback: new-mail → event latency in poll mode and in bounded-IDLE mode; the cost of polling
 * an unchanged mailbox against a bare imapflow connect + STATUS + logout; catch-up on a backlog against a
 * hand-written loop doing the same I/O (one event a message included), with a bare imapflow fetch for reference.
 */
export async function benchImap(backlog: number) {
  const cert = localTlsCertificate();
  const dovecot = await startDovecot({ tls: cert, users: [user] });
  const emulators = await startBenchEmulators();
  const { clients } = emulators;
  // No subscriber on the events topic: delivering events to consumers is SNS's work, not the poller's.
  const resources = await createLocalResources(clients, DEFAULT_SETTINGS, LOCAL_NAMES, { tap: false });
  const sns = createSnsEventPublisher(clients.sns, resources.eventsTopicArn) as Required<EventPublisher>;
  const settings = (mailbox: string) => ({
    host: dovecot.host,
    port: dovecot.port,
    security: 'starttls' as const,
    mailbox,
    tls: { ca: cert.cert },
  });
  const connect = () => connectToDovecot(dovecot, user, cert.cert);
  const writer = await connect();
  const published = new Map<number, number>();
  const deps = (mailbox: string): SyncDeps => ({
    state: createMailboxStateStore(clients.documents, resources.mailboxStateTable),
    openSession: () => openImapSession(settings(mailbox), { get: async () => user }),
    parse: parseInbound,
    reader: inboundReader,
    storeRaw: createRawMessageStore(clients.s3, resources.bucket),
    publishBatch: async (events) => {
      const failed = await sns.publishBatch(events);
      for (const event of events) published.set((event as unknown as { uid: number }).uid, Date.now());
      return failed;
    },
    suppress: async () => {},
  });
  const section = 'IMAP (Dovecot on loopback)';
  try {
    // Latency, bounded IDLE: one run stays connected; mail arrives at random moments.
    await writer.mailboxCreate('Idle');
    const appendedAt: number[] = [];
    const idleRun = syncMailbox(deps('Idle'), {
      mailboxId: 'idle',
      runId: 'r1',
      stopAtMs: Date.now() + 30_000,
      idleUntilMs: Date.now() + 14_000,
      refreshEveryMs: 1000,
    });
    for (let i = 0; i < 20; i += 1) {
      await sleep(200 + Math.random() * 400);
      appendedAt.push(Date.now());
      await writer.append('Idle', message(i));
    }
    await idleRun;
    const idleLatencies = appendedAt.map((t, i) => (published.get(i + 1) ?? Infinity) - t);
    record(section, 'new mail → event, bounded IDLE p50', percentile(idleLatencies, 50), 'ms');
    record(section, 'new mail → event, bounded IDLE p95', percentile(idleLatencies, 95), 'ms', 'target ≤ 2000');

    // Latency, poll mode: a run every 5 s that catches up and leaves (the deployed schedule is every 60 s).
    published.clear();
    await writer.mailboxCreate('Poll');
    const pollAppended: number[] = [];
    const pollUntil = Date.now() + 26_000;
    const poller = (async () => {
      let run = 0;
      while (Date.now() < pollUntil) {
        const started = Date.now();
        await syncMailbox(deps('Poll'), { mailboxId: 'poll', runId: `p${(run += 1)}`, stopAtMs: Date.now() + 5000 });
        await sleep(Math.max(0, started + 5000 - Date.now()));
      }
    })();
    for (let i = 0; i < 10; i += 1) {
      await sleep(1500 + Math.random() * 700);
      pollAppended.push(Date.now());
      await writer.append('Poll', message(100 + i));
    }
    await poller;
    const pollLatencies = pollAppended.map((t, i) => (published.get(i + 1) ?? Infinity) - t);
    record(
      section,
      'new mail → event, poll every 5 s p50',
      percentile(pollLatencies, 50),
      'ms',
      'half the interval on average: 30 s at the deployed 60 s',
    );
    record(section, 'new mail → event, poll every 5 s p95', percentile(pollLatencies, 95), 'ms');

    // An unchanged mailbox: our whole poll against connect + STATUS + logout.
    const ours: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < 20; i += 1) {
      let t = performance.now();
      await syncMailbox(deps('Poll'), { mailboxId: 'poll', runId: `u${i}`, stopAtMs: Date.now() + 5000 });
      ours.push(performance.now() - t);
      t = performance.now();
      const c = await connect();
      await c.status('Poll', { uidNext: true, uidValidity: true, messages: true });
      await c.logout();
      bare.push(performance.now() - t);
    }
    record(
      section,
      'unchanged poll, ours (median)',
      percentile(ours, 50),
      'ms',
      'lease + checkpoint + connect + SELECT + release',
    );
    record(section, 'connect + STATUS + logout (median)', percentile(bare, 50), 'ms');
    record(section, 'unchanged poll ratio', percentile(ours, 50) / percentile(bare, 50), '×', 'target ≤ 2');

    // Catch-up on a backlog, delivered straight into the Maildir as an MTA would.
    await writer.mailboxCreate('Backlog');
    await writer.mailboxOpen('Backlog');
    await writer.mailboxClose();
    // Dovecot keeps mailbox `Backlog` in the Maildir++ folder `.Backlog`.
    const home = join(dovecot.mailRoot, user.username, 'Maildir', '.Backlog');
    const owner = statSync(home);
    for (let i = 0; i < backlog; i += 1) {
      const file = join(home, 'new', `${Date.now()}.M${i}P${process.pid}.bench`);
      writeFileSync(file, message(1000 + i));
      chownSync(file, owner.uid, owner.gid);
    }
    const bareFetch = async () => {
      const start = performance.now();
      const c = await connect();
      await c.mailboxOpen('Backlog');
      let fetched = 0;
      for await (const m of c.fetch('1:*', { uid: true, source: true })) if (m.source) fetched += 1;
      await c.logout();
      return (fetched / (performance.now() - start)) * 1000;
    };
    const ourCatchUp = async (round: number) => {
      const start = performance.now();
      const backlog = { mailboxId: `backlog-${round}`, runId: `b${round}`, startFrom: 'beginning' as const };
      const result = await syncMailbox(deps('Backlog'), { ...backlog, stopAtMs: Date.now() + 600_000 });
      return (result.processed / (performance.now() - start)) * 1000;
    };
    // The least a poller can do with the same I/O: list (UID SEARCH), fetch a chunk (with the envelope instead of
    // parsing), one S3 object, its events (PublishBatch), one checkpoint write; no classification. The I/O the
    // poller's contract needs of any poller is done too: a lease taken and released, confirmed before each publish
    // (fencing), and the published messages marked seen (dedup across a crash or a UIDVALIDITY change).
    const storeRaw = createRawMessageStore(clients.s3, resources.bucket);
    const state = createMailboxStateStore(clients.documents, resources.mailboxStateTable);
    const loopCatchUp = async (round: number) => {
      const start = performance.now();
      const mailboxId = `loop-${round}`;
      const lease = await state.acquireLease(mailboxId, `l${round}`, Date.now() + 600_000);
      if (!lease) throw new Error('loop: lease not taken');
      const c = await connect();
      const lock = await c.getMailboxLock('Backlog');
      const uidValidity = String(c.mailbox ? c.mailbox.uidValidity : 0);
      const listed = (await c.search({ uid: '1:*' }, { uid: true })) || [];
      let handled = 0;
      let checkpoint: { uidValidity: string; lastUid: number } | undefined;
      for (const chunk of slices(listed, 250)) {
        const fetched: Array<{
          uid: number;
          source: Buffer;
          envelope?: { from?: Array<{ address?: string }>; subject?: string; messageId?: string };
        }> = [];
        for await (const m of c.fetch(
          chunk.join(','),
          { uid: true, source: true, envelope: true, internalDate: true },
          { uid: true },
        ))
          if (m.source) fetched.push({ uid: m.uid, source: m.source, envelope: m.envelope });
        const key = `loop/${round}/${chunk[0]}.eml`;
        await storeRaw(key, Buffer.concat(fetched.map((m) => m.source)));
        let offset = 0;
        const events = fetched.map((m) => {
          const raw = { bucket: resources.bucket, key, offset, length: m.source.length };
          offset += m.source.length;
          return createEvent(EventTypes.inboundReceived, {
            mailbox: 'loop',
            uid: m.uid,
            messageId: m.envelope?.messageId,
            from: m.envelope?.from?.[0]?.address,
            subject: m.envelope?.subject,
            raw,
          });
        });
        if (!(await state.renewLease(lease, Date.now() + 600_000))) throw new Error('loop: lease lost');
        await sns.publishBatch(events);
        const seen = fetched.map((m) => ({ uid: m.uid, key: m.envelope?.messageId ?? String(m.uid) }));
        if (!(await state.markSeen(lease, uidValidity, seen))) throw new Error('loop: lease lost');
        const next = { uidValidity, lastUid: chunk[chunk.length - 1] as number };
        if (!(await state.advanceCheckpoint(lease, next, checkpoint))) throw new Error('loop: lease lost');
        checkpoint = next;
        handled += fetched.length;
      }
      lock.release();
      await c.logout();
      await state.releaseLease(lease);
      return (handled / (performance.now() - start)) * 1000;
    };
    // A first read warms the server's index and cache for all; then they take turns, each first in turn.
    await bareFetch();
    const bareRates: number[] = [];
    const ourRates: number[] = [];
    const loopRates: number[] = [];
    const contenders = [
      () => bareFetch().then((r) => bareRates.push(r)),
      (round: number) => ourCatchUp(round).then((r) => ourRates.push(r)),
      (round: number) => loopCatchUp(round).then((r) => loopRates.push(r)),
    ];
    for (let round = 0; round < 3; round += 1) {
      for (let k = 0; k < contenders.length; k += 1)
        await (contenders[(round + k) % contenders.length] as (round: number) => Promise<unknown>)(round);
    }
    const bareRate = percentile(bareRates, 50);
    const oursRate = percentile(ourRates, 50);
    const loopRate = percentile(loopRates, 50);
    record(
      section,
      `catch-up ${backlog} messages, ours`,
      oursRate,
      'msg/s',
      'per chunk of up to 250: parse, one S3 object, PublishBatch, one seen write, checkpoint',
    );
    record(
      section,
      `catch-up ${backlog} messages, hand-written loop`,
      loopRate,
      'msg/s',
      'same I/O: lease, fetch with envelope, S3 object per 250, lease renewed, PublishBatch, seen write, checkpoint',
    );
    record(
      section,
      'catch-up ratio ours / loop',
      oursRate / loopRate,
      '×',
      'target ≥ 0.9: what the poller costs beyond the I/O any poller does; median of 3, taking turns',
    );
    // A bare fetch publishes nothing: with one event a message, it measures SNS's request cost here, not the poller.
    record(
      section,
      `catch-up ${backlog} messages, bare imapflow fetch`,
      bareRate,
      'msg/s',
      `no target: nothing published (ours ${(oursRate / bareRate).toFixed(2)}× of it)`,
    );
  } finally {
    await writer.logout().catch(() => {});
    await dovecot.stop();
    await emulators.stop();
  }
}
