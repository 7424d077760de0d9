import { describe, expect, it } from 'vitest';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { createMailboxStateStore } from '#aws/mailbox-state-store.js';
import { createLambdaContext } from '#local/lambda-context.js';
import type { Checkpoint } from '#core/mailbox/ports.js';
import { syncMailbox, type SyncDeps } from '#core/mailbox/sync-mailbox.js';
import { openImapSession } from '#imap/imap-session.js';
import { bounceMessage, plainMessage } from '../support/mail-samples.js';
import { createPollerUnderTest, createSyncDeps, credentialsOf, usePollerPeers } from '../support/poller-harness.js';
import { startTcpProxy } from '../support/tcp-proxy.js';
import { startHoodiecrow } from '#local/hoodiecrow.js';

const peers = usePollerPeers('Test');

/** Events may go out in any order within a chunk (they are processed concurrently); the UID orders them. */
const byUid = (a: object, b: object) => (a as { uid: number }).uid - (b as { uid: number }).uid;

/** A run of the whole mailbox (`startFrom: beginning`, unless the test says otherwise). */
const run = (deps: SyncDeps, mailboxId: string, extra: Partial<Parameters<typeof syncMailbox>[1]> = {}) =>
  syncMailbox(deps, {
    mailboxId,
    runId: `run-${Math.random()}`,
    stopAtMs: Date.now() + 30_000,
    startFrom: 'beginning',
    ...extra,
  });

describe('polling a Dovecot mailbox', () => {
  it('publishes each new message once, stores it, and advances the checkpoint; a second run finds nothing', async () => {
    // Prepare
    const mailbox = await peers.newMailbox();
    const { deps, published, state } = await createSyncDeps(peers.aws, () =>
      openImapSession(peers.imap.settings(mailbox), credentialsOf()),
    );
    const messages = [1, 2, 3, 4, 5].map((n) => plainMessage(n));
    await peers.imap.append(mailbox, messages);
    const seenReads: unknown[] = [];
    const counted: SyncDeps = {
      ...deps,
      state: { ...state, seenAmong: (...a) => (seenReads.push(a), state.seenAmong(...a)) },
    };

    // Act
    const first = await run(counted, 'box');
    const second = await run(counted, 'box');

    // Assess
    expect(first).toMatchObject({ status: 'synced', processed: 5 });
    expect(second).toMatchObject({ status: 'synced', processed: 0 });
    expect(published.map((e) => e.type)).toEqual(Array(5).fill('inbound.received'));
    expect(published.map((e) => (e as unknown as { uid: number }).uid).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(await state.getCheckpoint('box')).toMatchObject({ lastUid: 5, verifyUpTo: 5 });
    // No run died in between: nothing needed checking against the seen markers.
    expect(seenReads).toEqual([]);
    expect(published[0]).toMatchObject({
      subject: 'Message 1',
      raw: { key: expect.stringMatching(/^inbound\/box\/\d+\/1-5\.eml$/), offset: 0 },
    });
    // Each message's bytes are a range of its chunk's object.
    const third = (
      published.find((e) => (e as unknown as { uid: number }).uid === 3) as unknown as {
        raw: { bucket: string; key: string; offset: number; length: number };
      }
    ).raw;
    const object = await (await peers.aws.clients.s3()).send(
      new GetObjectCommand({
        Bucket: third.bucket,
        Key: third.key,
        Range: `bytes=${third.offset}-${third.offset + third.length - 1}`,
      }),
    );
    expect(await object.Body?.transformToString()).toBe(messages[2]);
  });

  it('chunks a backlog by count and by bytes: messages over the size bound with their sizes, a huge one alone', async () => {
    // Prepare: 3 messages or 6,000 bytes a chunk, so every message of at most 2,000 bytes counts as 2,000.
    const mailbox = await peers.newMailbox();
    const { deps, published } = await createSyncDeps(peers.aws, () =>
      openImapSession(peers.imap.settings(mailbox), credentialsOf()),
    );
    const padded = (n: number, bytes: number) => plainMessage(n) + 'Padding line.\r\n'.repeat(Math.ceil(bytes / 15));
    const sizes = [0, 0, 3000, 0, 0, 0, 7000, 0];
    await peers.imap.append(
      mailbox,
      sizes.map((bytes, i) => padded(i + 1, bytes)),
    );

    // Act
    const result = await run(deps, 'chunked', { chunkSize: 3, chunkBytes: 6000 });

    // Assess: 2,000 + 2,000 + 3,000 > 6,000 closes the first chunk before UID 3; UID 7 (over 6,000) goes alone.
    expect(result).toMatchObject({ status: 'synced', processed: 8 });
    const keys = new Set(published.map((e) => (e as unknown as { raw: { key: string } }).raw.key.replace(/^.*\//, '')));
    expect([...keys].sort()).toEqual(['1-2.eml', '3-4.eml', '5-6.eml', '7-7.eml', '8-8.eml']);
  });

  // A bounce about a message this deployment signed is verified and suppresses: see verified-reports.test.ts.
  it('reads a hard bounce as bounce.detected; one about mail we never sent suppresses no one', async () => {
    const mailbox = await peers.newMailbox();
    const { deps, published, suppressions } = await createSyncDeps(peers.aws, () =>
      openImapSession(peers.imap.settings(mailbox), credentialsOf()),
    );
    await peers.imap.append(mailbox, [
      bounceMessage('gone@example.net', { dispatchId: 'a'.repeat(32) }),
      bounceMessage('later@example.net', { status: '4.2.2', action: 'delayed' }),
    ]);

    await run(deps, 'bounces');

    published.sort(byUid);
    expect(published.map((e) => e.type)).toEqual(['bounce.detected', 'bounce.delayed']);
    const gone = { recipient: 'gone@example.net', status: '5.1.1', replyCode: 550, reason: 'user-unknown' };
    expect(published[0]).toMatchObject({
      verified: false,
      verification: { reason: 'no-token' },
      classification: {
        kind: 'bounce',
        recipients: [{ ...gone, permanent: true, suppress: true }],
        original: { dispatchId: 'a'.repeat(32) },
      },
    });
    const delayed = { recipient: 'later@example.net', reason: 'mailbox-full', permanent: false, suppress: false };
    expect(published[1]).toMatchObject({ verified: false, classification: { kind: 'delay', recipients: [delayed] } });
    expect(await suppressions.findSuppressed(['gone@example.net', 'later@example.net'])).toEqual(new Set());
  });

  it('lets one of two overlapping runs work and the other yield', async () => {
    const mailbox = await peers.newMailbox();
    const { deps, published } = await createSyncDeps(peers.aws, () =>
      openImapSession(peers.imap.settings(mailbox), credentialsOf()),
    );
    await peers.imap.append(
      mailbox,
      [1, 2, 3].map((n) => plainMessage(100 + n)),
    );

    const results = await Promise.all([
      run(deps, 'shared', { idleUntilMs: Date.now() + 1500, leaseWaitMs: 0 }),
      run(deps, 'shared', { idleUntilMs: Date.now() + 1500, leaseWaitMs: 0 }),
    ]);

    expect(results.map((r) => r.status).sort()).toEqual(['busy', 'synced']);
    expect(published).toHaveLength(3);
  });

  it('resynchronises after a UIDVALIDITY change without losing or repeating mail', async () => {
    const mailbox = await peers.newMailbox();
    const { deps, published, state } = await createSyncDeps(peers.aws, () =>
      openImapSession(peers.imap.settings(mailbox), credentialsOf()),
    );
    const old = [1, 2, 3, 4].map((n) => plainMessage(200 + n));
    await peers.imap.append(mailbox, old);
    await run(deps, 'recreated');
    const before = await state.getCheckpoint('recreated');
    await new Promise((resolve) => setTimeout(resolve, 1100));

    await peers.imap.recreateMailbox(mailbox);
    await peers.imap.append(mailbox, [...old, plainMessage(205), plainMessage(206)]);
    const result = await run(deps, 'recreated');

    const after = await state.getCheckpoint('recreated');
    expect(after?.uidValidity).not.toBe(before?.uidValidity);
    expect(result).toMatchObject({ resynchronised: true, processed: 2, skippedDuplicates: 4 });
    expect(published.map((e) => (e as unknown as { subject: string }).subject).sort()).toEqual([
      'Message 201',
      'Message 202',
      'Message 203',
      'Message 204',
      'Message 205',
      'Message 206',
    ]);
    expect(after?.lastUid).toBe(6);
  });

  it('finishes an interrupted resynchronisation under the next UIDVALIDITY without repeating mail', async () => {
    // Prepare: four messages published; the mailbox recreated and a resync that dies after its first chunk
    const mailbox = await peers.newMailbox();
    const { deps, published, state } = await createSyncDeps(peers.aws, () =>
      openImapSession(peers.imap.settings(mailbox), credentialsOf()),
    );
    const old = [1, 2, 3, 4].map((n) => plainMessage(500 + n));
    await peers.imap.append(mailbox, old);
    await run(deps, 'twice');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await peers.imap.recreateMailbox(mailbox);
    await peers.imap.append(mailbox, [...old, plainMessage(505)]);
    let marks = 0;
    const dying: SyncDeps = {
      ...deps,
      state: {
        ...state,
        markSeen: (...a) => ((marks += 1) === 2 ? Promise.reject(new Error('killed')) : state.markSeen(...a)),
      },
    };
    await expect(run(dying, 'twice', { chunkSize: 2 })).rejects.toThrow('killed');
    const interrupted = await state.getCheckpoint('twice');
    await new Promise((resolve) => setTimeout(resolve, 1100));

    // Act: recreated once more before the resync could finish
    await peers.imap.recreateMailbox(mailbox);
    await peers.imap.append(mailbox, [...old, plainMessage(505), plainMessage(506)]);
    const result = await run(deps, 'twice', { chunkSize: 2 });

    // Assess: messages 3 and 4 were never marked under the second UIDVALIDITY, only under the first
    expect(interrupted).toMatchObject({ lastUid: 2, resync: { until: 5, previous: [{ upToUid: 4 }] } });
    expect(result).toMatchObject({ resynchronised: true, processed: 2, skippedDuplicates: 4 });
    expect(published.map((e) => (e as unknown as { subject: string }).subject).sort()).toEqual([
      'Message 501',
      'Message 502',
      'Message 503',
      'Message 504',
      'Message 505',
      'Message 506',
    ]);
    const after = await state.getCheckpoint('twice');
    expect(after).toMatchObject({ lastUid: 6 });
    expect(after?.resync).toBeUndefined();
  });

  it('recovers on the next run after the socket is dropped in the middle of a FETCH', async () => {
    const mailbox = await peers.newMailbox();
    const proxy = await startTcpProxy({ host: peers.imap.dovecot.host, port: peers.imap.dovecot.port });
    const { deps, published } = await createSyncDeps(peers.aws, () =>
      openImapSession(peers.imap.settings(mailbox, proxy.port, proxy.host), credentialsOf()),
    );
    await peers.imap.append(
      mailbox,
      Array.from({ length: 20 }, (_, i) => plainMessage(300 + i, { subject: `Big ${i} ${'x'.repeat(2000)}` })),
    );
    proxy.dropAfter(12_000);

    await expect(run(deps, 'dropped')).rejects.toThrow();
    proxy.dropAfter(undefined);
    const second = await run(deps, 'dropped');

    await proxy.stop();
    const uids = published.map((e) => (e as unknown as { uid: number }).uid);
    expect(new Set(uids).size).toBe(uids.length);
    expect(uids.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(second.status).toBe('synced');
  });

  it('takes back the attempt it recorded for the next chunk when that chunk cannot be fetched', async () => {
    // Prepare: chunks of two; the socket is dropped while the third chunk is fetched
    const mailbox = await peers.newMailbox();
    const proxy = await startTcpProxy({ host: peers.imap.dovecot.host, port: peers.imap.dovecot.port });
    const { deps, published, state } = await createSyncDeps(peers.aws, () =>
      openImapSession(peers.imap.settings(mailbox, proxy.port, proxy.host), credentialsOf()),
    );
    await peers.imap.append(
      mailbox,
      Array.from({ length: 12 }, (_, i) => plainMessage(720 + i, { subject: `Big ${i} ${'x'.repeat(2000)}` })),
    );
    proxy.dropAfter(12_000);

    // Act
    await expect(run(deps, 'unplanned', { chunkSize: 2 })).rejects.toThrow();
    const after = await state.getCheckpoint('unplanned');
    proxy.dropAfter(undefined);
    const second = await run(deps, 'unplanned', { chunkSize: 2 });

    // Assess: the failed run got past a chunk or more, and left no attempt behind for the one it never read
    await proxy.stop();
    expect(after?.lastUid).toBeGreaterThanOrEqual(2);
    expect(after?.attempt).toBeUndefined();
    expect(second.status).toBe('synced');
    const uids = published.map((e) => (e as unknown as { uid: number }).uid);
    expect(new Set(uids).size).toBe(12);
  });

  it('ends a FETCH the server falls silent in with a timeout at its step bound', async () => {
    // Prepare
    const mailbox = await peers.newMailbox();
    const proxy = await startTcpProxy({ host: peers.imap.dovecot.host, port: peers.imap.dovecot.port });
    await peers.imap.append(mailbox, [plainMessage(700), plainMessage(701)]);
    const settings = { ...peers.imap.settings(mailbox, proxy.port, proxy.host), stepTimeoutMs: 1000 };
    const session = await openImapSession(settings, credentialsOf());
    const listed = await session.messagesAfter(0, 1024 * 1024);
    proxy.stall({ ms: Infinity, probability: 1 });

    // Act
    const started = Date.now();
    const fetching = (async () => {
      for await (const m of session.fetch(listed.map((l) => l.uid))) void m;
    })();
    const outcome = await fetching.then(
      () => 'completed',
      (error: Error) => error.message,
    );
    const elapsedMs = Date.now() - started;

    // Assess
    await session.close();
    await proxy.stop();
    expect(listed).toHaveLength(2);
    expect(outcome).toMatch(/fetch timed out after 1000 ms/);
    // The bound, with a generous margin for a loaded machine.
    expect(elapsedMs).toBeGreaterThanOrEqual(900);
    expect(elapsedMs).toBeLessThan(15_000);
  });

  it('hands new mail over within seconds in bounded-IDLE mode, without relying on notifications', async () => {
    const mailbox = await peers.newMailbox();
    const { deps, published } = await createSyncDeps(peers.aws, () =>
      openImapSession(peers.imap.settings(mailbox), credentialsOf()),
    );
    const seenAt = new Map<number, number>();
    const recording: SyncDeps = {
      ...deps,
      publishBatch: async (events) => {
        for (const e of events) seenAt.set((e as unknown as { uid: number }).uid, Date.now());
        return deps.publishBatch(events);
      },
    };
    const appendedAt: number[] = [];

    const running = run(recording, 'idle', { idleUntilMs: Date.now() + 5000, refreshEveryMs: 500 });
    for (let i = 0; i < 4; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 800));
      appendedAt.push(Date.now());
      await peers.imap.append(mailbox, [plainMessage(400 + i)]);
    }
    await running;

    expect(published).toHaveLength(4);
    const latencies = appendedAt.map((t, i) => (seenAt.get(i + 1) ?? Infinity) - t);
    for (const latency of latencies) expect(latency).toBeLessThan(3000);
  });
});

describe('the mailbox state store', () => {
  it('keeps seen markers per UIDVALIDITY, a thousand UIDs to an item, and reads them by UID or all up to one', async () => {
    // Prepare: 2,500 messages spread over three items, and more than a hundred items for the full read
    const { state } = await createSyncDeps(peers.aws, () =>
      openImapSession(peers.imap.settings('INBOX'), credentialsOf()),
    );
    const messages = Array.from({ length: 2500 }, (_, i) => ({ uid: i + 1, key: `key-${i + 1}` }));
    const sparse = Array.from({ length: 120 }, (_, i) => ({ uid: (i + 1) * 1000 + 7, key: `far-${i}` }));

    const lease = await state.acquireLease('batched', 'writer', Date.now() + 60_000);
    if (!lease) throw new Error('lease not taken');

    // Act
    await state.markSeen(lease, '7', messages.slice(0, 2400));
    await state.markSeen(lease, '7', sparse);
    const probe = [messages[0], messages[1500], messages[2399], messages[2400], { uid: 5, key: 'key-1500' }] as Array<{
      uid: number;
      key: string;
    }>;

    // Assess: a probe finds a key only among the markers of its own UID's item
    expect(await state.seenAmong('batched', '7', probe)).toEqual(new Set(['key-1', 'key-1501', 'key-2400']));
    expect(await state.seenAmong('batched', '8', probe)).toEqual(new Set());
    expect(await state.seenAmong('other', '7', probe)).toEqual(new Set());
    const all = await state.seenUpTo('batched', '7', 121_007);
    expect(all.size).toBe(2520);
    expect(all.has('far-119') && all.has('key-2400') && !all.has('key-2401')).toBe(true);
  });
});

describe('runs killed at random points', () => {
  it('processes 1,000 messages across runs: nothing lost, repeats only where a kill fell between publish and marking, checkpoint never backwards', async () => {
    // Prepare
    const mailbox = await peers.newMailbox();
    let offset = 0;
    const { deps, state, resources } = await createSyncDeps(peers.aws, () =>
      openImapSession(peers.imap.settings(mailbox), credentialsOf()),
    );
    const leaseState = createMailboxStateStore(peers.aws.clients.documents, resources.mailboxStateTable, {
      clock: () => Date.now() + offset,
    });
    const total = 1000;
    const delivered = Array.from({ length: total }, (_, i) => plainMessage(1000 + i));
    const events: Array<{ id: string; uid: number; type: string }> = [];
    const checkpoints: number[] = [];
    let random = 42;
    const rand = () => {
      random = (random * 1103515245 + 12345) % 2 ** 31;
      return random / 2 ** 31;
    };
    let killsBetweenPublishAndMark = 0; // messages whose event went out and whose seen marker did not, at a kill
    let kills = 0;

    // A run "dies" at a random step: every later call of it fails and it never releases its lease, as a killed
    // process would. The lease clock jumps ahead afterwards, as time passes before the next scheduled run.
    const killable = (): SyncDeps => {
      let dead = false;
      // Messages of this run that went out and were not yet marked seen: the window a kill repeats.
      const publishedInRun = new Set<string>();
      const markedInRun = new Set<string>();
      const step = async <T>(work: () => Promise<T>, where: string): Promise<T> => {
        if (dead) throw new Error('killed');
        if (rand() < 0.03) {
          dead = true;
          kills += 1;
          // Dying right after a publish went out is the one unavoidable repeat (so is dying before its seen marker).
          if (where === 'publish' && rand() < 0.5) await work();
          // Every message of the run published and not yet marked is repeated by the next run.
          killsBetweenPublishAndMark += [...publishedInRun].filter((k) => !markedInRun.has(k)).length;
          throw new Error(`killed at ${where}`);
        }
        return work();
      };
      return {
        ...deps,
        state: {
          acquireLease: (...a) => step(() => leaseState.acquireLease(...a), 'lease'),
          releaseLease: (...a) => (dead ? Promise.resolve() : leaseState.releaseLease(...a)),
          getCheckpoint: (...a) => step(() => state.getCheckpoint(...a), 'checkpoint-read'),
          renewLease: (...a) => step(() => leaseState.renewLease(...a), 'lease'),
          advanceCheckpoint: (lease, next: Checkpoint, expected) =>
            step(async () => {
              const ok = await state.advanceCheckpoint(lease, next, expected);
              if (ok) checkpoints.push(next.lastUid);
              return ok;
            }, 'checkpoint'),
          raiseVerifyMark: (...a) => step(() => state.raiseVerifyMark(...a), 'verify-mark'),
          recordAttempt: (...a) => step(() => state.recordAttempt(...a), 'attempt'),
          seenAmong: (...a) => step(() => state.seenAmong(...a), 'seen-read'),
          seenUpTo: (...a) => step(() => state.seenUpTo(...a), 'seen-read'),
          markSeen: (lease, uidValidity, messages) =>
            step(async () => {
              const ok = await state.markSeen(lease, uidValidity, messages);
              for (const m of messages) markedInRun.add(m.key);
              return ok;
            }, 'mark'),
        },
        storeRaw: (...a) => step(() => deps.storeRaw(...a), 'store'),
        suppress: (...a) => step(() => deps.suppress(...a), 'suppress'),
        publishBatch: (batch) =>
          step(async () => {
            for (const e of batch) {
              events.push({ id: e.id, uid: (e as unknown as { uid: number }).uid, type: e.type });
              publishedInRun.add((e as unknown as { messageKey: string }).messageKey);
            }
            return [];
          }, 'publish'),
        openSession: () => step(() => deps.openSession(), 'connect'),
      };
    };

    // Act: mail arrives in ten waves, runs go until everything is through
    let runs = 0;
    for (let wave = 0; wave < 10; wave += 1) {
      await peers.imap.append(mailbox, delivered.slice(wave * 100, wave * 100 + 100));
      for (let attempt = 0; attempt < 40; attempt += 1) {
        runs += 1;
        try {
          const options = { mailboxId: 'ledger', runId: `run-${runs}`, startFrom: 'beginning' as const, chunkSize: 25 };
          const ran = await syncMailbox(killable(), { ...options, stopAtMs: Date.now() + 60_000, leaseWaitMs: 0 });
          if (ran.status !== 'synced') throw new Error(ran.status);
        } catch {
          offset += 120_000;
          continue;
        }
        if ((await state.getCheckpoint('ledger'))?.lastUid === (wave + 1) * 100) break;
      }
    }

    // Assess
    const uids = events.map((e) => e.uid);
    const distinct = new Set(uids);
    expect(distinct.size).toBe(total);
    expect([...distinct].sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(uids.length - distinct.size).toBeLessThanOrEqual(killsBetweenPublishAndMark);
    const ids = new Map<number, Set<string>>();
    for (const e of events) ids.set(e.uid, (ids.get(e.uid) ?? new Set()).add(e.id));
    expect([...ids.values()].every((s) => s.size === 1)).toBe(true);
    for (let i = 1; i < checkpoints.length; i += 1)
      expect(checkpoints[i]).toBeGreaterThan(checkpoints[i - 1] as number);
    expect(kills).toBeGreaterThan(3);
    const givenUp = new Set(events.filter((e) => e.type === 'inbound.unparsable').map((e) => e.uid)).size;
    const repeated = uids.length - distinct.size;
    console.log(
      `ledger: ${total} delivered, ${distinct.size} processed, ${repeated} repeated, ${givenUp} given up, ` +
        `${kills} kills (${killsBetweenPublishAndMark} between publish and mark), ${runs} runs`,
    );
  }, 240_000);
});

describe('a server without CONDSTORE or UIDPLUS (hoodiecrow)', () => {
  it('polls, checkpoints and idles the same way', async () => {
    // Prepare
    const server = await startHoodiecrow({ users: [{ username: 'local', password: 'local-pass' }] });
    const settings = {
      host: server.host,
      port: server.port,
      security: 'none' as const,
      mailbox: 'INBOX',
      stepTimeoutMs: 5000,
    };
    const { deps, published, state } = await createSyncDeps(peers.aws, () =>
      openImapSession(settings, credentialsOf({ username: 'local', password: 'local-pass' })),
    );
    for (let n = 0; n < 3; n += 1) server.deliver(plainMessage(500 + n));
    server.deliver(bounceMessage('nobody@example.net', { lineEnding: '\n' }));

    // Act
    const first = await run(deps, 'hoodie', { idleUntilMs: Date.now() + 2500, refreshEveryMs: 300 });
    setTimeout(() => server.deliver(plainMessage(510)), 300);
    const second = await run(deps, 'hoodie', { idleUntilMs: Date.now() + 2000, refreshEveryMs: 300 });

    // Assess
    await server.stop();
    expect(first.processed).toBe(4);
    expect(second.processed).toBe(1);
    expect(published.sort(byUid).map((e) => e.type)).toEqual([
      'inbound.received',
      'inbound.received',
      'inbound.received',
      'bounce.detected',
      'inbound.received',
    ]);
    expect((await state.getCheckpoint('hoodie'))?.lastUid).toBe(5);
    expect((await state.getCheckpoint('hoodie'))?.highestModseq).toBeUndefined();
  });
});

describe('the scheduled poller function', () => {
  it('syncs every mailbox, publishes to the events topic, and counts a heartbeat per mailbox', async () => {
    // Prepare
    const mailbox = await peers.newMailbox();
    const mailboxes = [{ id: 'ops', mailbox, startFrom: 'beginning' }];
    const { handler, output, resources, suppressions } = await createPollerUnderTest(peers.aws, peers.imap, mailboxes);
    await peers.imap.append(mailbox, [plainMessage(600), bounceMessage('dead@example.net')]);

    // Act
    const summary = await handler({}, createLambdaContext('poll-mailbox', 20_000));

    // Assess
    expect(summary).toEqual({ ops: { status: 'synced', processed: 2 } });
    const tapped = await peers.aws.clients.sqsClient.send(
      new ReceiveMessageCommand({ QueueUrl: resources.eventsTapQueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
    );
    expect((tapped.Messages ?? []).map((m) => (JSON.parse(m.Body ?? '{}') as { type: string }).type).sort()).toEqual([
      'bounce.detected',
      'inbound.received',
    ]);
    // The bounce quotes a Message-ID this deployment never made: published, counted, and acted on by no one.
    expect(await suppressions.findSuppressed(['dead@example.net'])).toEqual(new Set());
    expect(output.metric('UnverifiedReports')).toBe(1);
    expect(output.metric('MailboxPolled')).toBe(1);
    expect(output.metric('BouncesDetected')).toBe(1);
    expect(output.lines.join('\n')).not.toContain('dead@example.net');
  });
});
