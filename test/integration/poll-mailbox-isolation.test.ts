import { describe, expect, it } from 'vitest';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { createMailboxStateStore } from '#aws/mailbox-state-store.js';
import type { DispatchEvent } from '#core/events.js';
import { syncMailbox, type SyncDeps, type SyncOptions } from '#core/mailbox/sync-mailbox.js';
import { openImapSession } from '#imap/imap-session.js';
import { createLambdaContext } from '#local/lambda-context.js';
import {
  brokenBoundaries,
  deeplyNested,
  hugeHeader,
  longAddressField,
  longRecipientReport,
  manyPartsReport,
} from '../support/hostile-mail.js';
import { bounceMessage, plainMessage } from '../support/mail-samples.js';
import { createPollerUnderTest, createSyncDeps, credentialsOf, usePollerPeers } from '../support/poller-harness.js';

const peers = usePollerPeers('Isolation');

const run = (deps: SyncDeps, mailboxId: string, extra: Partial<SyncOptions> = {}) =>
  syncMailbox(deps, { mailboxId, runId: `run-${Math.random()}`, stopAtMs: Date.now() + 60_000, ...extra });
type Published = {
  type: string;
  uid: number;
  subject?: string;
  reason?: string;
  raw?: { bucket: string; key: string; offset: number; length: number };
};
const facts = (events: DispatchEvent[]) => (events as unknown as Published[]).slice().sort((a, b) => a.uid - b.uid);
/** A fresh mailbox of the Dovecot peer, and the poller's real dependencies on it. */
const pollerOnNewMailbox = async () => {
  const mailbox = await peers.newMailbox();
  const sync = await createSyncDeps(peers.aws, () => openImapSession(peers.imap.settings(mailbox), credentialsOf()));
  return { mailbox, ...sync };
};
/** The poller's dependencies with a clock that jumps `ms` ahead while the second message is parsed: a slow read. */
const slowSecondRead = (deps: SyncDeps, ms: number): SyncDeps => {
  let skew = 0;
  let parsed = 0;
  return {
    ...deps,
    clock: () => Date.now() + skew,
    parse: async (source) => {
      parsed += 1;
      if (parsed === 2) skew = ms;
      return deps.parse(source);
    },
  };
};
/**
 * A fresh mailbox of five messages (Message `first + n`), whose third one's parse never ends until `release`, as a
 * parse that outlives the function would not.
 */
const poisonedMailbox = async (first: number) => {
  const { mailbox, deps, published, resources } = await pollerOnNewMailbox();
  await peers.imap.append(
    mailbox,
    [1, 2, 3, 4, 5].map((n) => plainMessage(first + n, { subject: n === 3 ? 'Poison' : undefined })),
  );
  let release = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const poison = { deps, published, resources, gotStuck: () => {}, release: () => release() };
  poison.deps = {
    ...deps,
    parse: async (source) => {
      if (source.includes('Subject: Poison')) {
        poison.gotStuck();
        await released;
      }
      return deps.parse(source);
    },
  };
  return poison;
};
/**
 * Runs ten minutes apart (each lease long expired by the next), each left behind once it gets stuck, as Lambda would
 * end it, until one finishes (six at most); then the stuck ones are released. Counts each run's attempt writes.
 */
const runUntilOneFinishes = async (
  poison: Awaited<ReturnType<typeof poisonedMailbox>>,
  mailboxId: string,
  extra: Partial<SyncOptions> = {},
) => {
  const attemptWrites: number[][] = [];
  const stuck: Array<ReturnType<typeof syncMailbox>> = [];
  let finished: Awaited<ReturnType<typeof syncMailbox>> | undefined;
  for (let n = 0; n < 6 && !finished; n += 1) {
    const state = createMailboxStateStore(peers.aws.clients.documents, poison.resources.mailboxStateTable, {
      clock: () => Date.now() + n * 10 * 60_000,
    });
    const writes: number[] = [];
    attemptWrites.push(writes);
    const counted = {
      ...state,
      recordAttempt: async (...a: Parameters<typeof state.recordAttempt>) => {
        writes.push(a[1].uid);
        return state.recordAttempt(...a);
      },
    };
    const stuckNow = new Promise<'stuck'>((resolve) => (poison.gotStuck = () => resolve('stuck')));
    const running = run({ ...poison.deps, state: counted }, mailboxId, {
      startFrom: 'beginning',
      leaseWaitMs: 0,
      ...extra,
    });
    const outcome = await Promise.race([running, stuckNow]);
    if (outcome === 'stuck') stuck.push(running);
    else finished = outcome;
  }
  poison.release();
  return { stuck: stuck.length, finished, overtaken: await Promise.all(stuck), attemptWrites };
};
/** Messages 1 to 5 published once each, the third as unparsable because runs did not finish it. */
const expectGivenUpOnThird = (published: DispatchEvent[]) => {
  const events = facts(published);
  expect(events.map((e) => e.uid)).toEqual([1, 2, 3, 4, 5]);
  expect(events.map((e) => e.type)).toEqual([
    'inbound.received',
    'inbound.received',
    'inbound.unparsable',
    'inbound.received',
    'inbound.received',
  ]);
  expect(events[2]).toMatchObject({ reason: 'run-did-not-finish' });
};
/** The bytes an event's `raw` location names: a ranged read of its chunk's object. */
const rawBytesOf = async (event: Published | undefined) => {
  const raw = event?.raw;
  if (!raw) throw new Error('no raw location');
  const range = `bytes=${raw.offset}-${raw.offset + raw.length - 1}`;
  const object = await (await peers.aws.clients.s3()).send(
    new GetObjectCommand({ Bucket: raw.bucket, Key: raw.key, Range: range }),
  );
  return object.Body?.transformToString();
};

describe('the first run on a mailbox', () => {
  it('starts at UIDNEXT: the mail already there is neither published nor acted on, what comes after is', async () => {
    // Prepare: a mailbox with history, an old hard bounce among it
    const { mailbox, deps, published, suppressions, state } = await pollerOnNewMailbox();
    await peers.imap.append(mailbox, [plainMessage(1), bounceMessage('old@example.net'), plainMessage(3)]);

    // Act
    const first = await run(deps, 'history');
    await peers.imap.append(mailbox, [plainMessage(4)]);
    const second = await run(deps, 'history');

    // Assess
    expect(first).toMatchObject({ status: 'synced', processed: 0 });
    expect(second).toMatchObject({ status: 'synced', processed: 1 });
    expect(facts(published).map((e) => [e.uid, e.subject])).toEqual([[4, 'Message 4']]);
    expect(await suppressions.findSuppressed(['old@example.net'])).toEqual(new Set());
    expect(await state.getCheckpoint('history')).toMatchObject({ lastUid: 4 });
  });

  it('with startFrom "beginning" publishes and judges everything already there', async () => {
    const { mailbox, deps, published, suppressions } = await pollerOnNewMailbox();
    await peers.imap.append(mailbox, [plainMessage(1), bounceMessage('old@example.net'), plainMessage(3)]);

    const result = await run(deps, 'history-all', { startFrom: 'beginning' });

    expect(result).toMatchObject({ status: 'synced', processed: 3 });
    expect(facts(published).map((e) => e.type)).toEqual(['inbound.received', 'bounce.detected', 'inbound.received']);
    // The old bounce is read and judged like a new one: it quotes no mail of ours, so it suppresses no one.
    expect(published.find((e) => e.type === 'bounce.detected')).toMatchObject({ verified: false });
    expect(await suppressions.findSuppressed(['old@example.net'])).toEqual(new Set());
  });
});

describe('hostile messages', () => {
  it('gives a message up only after two runs stopped reading it, not for a run ended while fetching it', async () => {
    // Prepare: chunks of two. The first run is ended while the server is still sending it the second chunk (it never
    // reads message 3); the second run reads message 3 and is ended there once; the third run has nothing in its way.
    const { mailbox, deps, published, resources } = await pollerOnNewMailbox();
    await peers.imap.append(
      mailbox,
      [1, 2, 3, 4, 5].map((n) => plainMessage(890 + n)),
    );
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let gotStuck = () => {};
    const stalledFetchOfThird: SyncDeps['openSession'] = async () => {
      const session = await deps.openSession();
      return Object.assign(Object.create(session) as typeof session, {
        async *fetch(uids: number[], maxBytes?: number) {
          if (uids[0] === 3) await released;
          yield* session.fetch(uids, maxBytes);
        },
      });
    };
    const stoppedOnThird: SyncDeps['parse'] = async (source) => {
      if (source.includes('Subject: Message 893')) {
        gotStuck();
        await released;
      }
      return deps.parse(source);
    };
    const runs: Array<Partial<SyncDeps>> = [{ openSession: stalledFetchOfThird }, { parse: stoppedOnThird }, {}];

    // Act: each run ten minutes after the one before (its lease long expired), left behind once it gets stuck
    const stuck: Array<ReturnType<typeof syncMailbox>> = [];
    let finished: Awaited<ReturnType<typeof syncMailbox>> | undefined;
    for (const [n, overrides] of runs.entries()) {
      const state = createMailboxStateStore(peers.aws.clients.documents, resources.mailboxStateTable, {
        clock: () => Date.now() + n * 10 * 60_000,
      });
      const stuckNow = new Promise<'stuck'>((resolve) => (gotStuck = () => resolve('stuck')));
      // The first run is ended once it has moved past the first chunk, still waiting for the second.
      const watched: typeof state =
        n > 0
          ? state
          : {
              ...state,
              advanceCheckpoint: async (...a) => {
                const moved = await state.advanceCheckpoint(...a);
                if (moved && a[1].lastUid === 2) gotStuck();
                return moved;
              },
            };
      const running = run({ ...deps, state: watched, ...overrides }, 'ended-while-fetching', {
        startFrom: 'beginning',
        leaseWaitMs: 0,
        chunkSize: 2,
      });
      const outcome = await Promise.race([running, stuckNow]);
      if (outcome === 'stuck') stuck.push(running);
      else finished = outcome;
    }
    release();
    await Promise.all(stuck);

    // Assess: only one run ever stopped while reading message 3, so it is read and published like any other
    expect(stuck).toHaveLength(2);
    expect(finished).toMatchObject({ status: 'synced' });
    const events = facts(published);
    expect(events.map((e) => e.uid)).toEqual([1, 2, 3, 4, 5]);
    expect(events.map((e) => e.type)).toEqual(Array(5).fill('inbound.received'));
  });

  it('cannot stop a mailbox: each is published (unparsable where need be), the mail after it processed', async () => {
    // Prepare: good mail between pathological messages, in one chunk
    const { mailbox, deps, published, state, suppressions } = await pollerOnNewMailbox();
    const hostile = [
      manyPartsReport(1001),
      longAddressField(1024 * 1024),
      longRecipientReport(1024 * 1024),
      deeplyNested(100),
      hugeHeader(10 * 1024 * 1024),
      brokenBoundaries(),
    ];
    const delivered = hostile.flatMap((m, i) => [plainMessage(700 + i), m]).concat(plainMessage(799));
    await peers.imap.append(mailbox, delivered);

    // Act
    const result = await run(deps, 'hostile', { startFrom: 'beginning' });

    // Assess: one event per message, in UID order; the good ones all through; the checkpoint past everything
    const events = facts(published);
    expect(result).toMatchObject({ status: 'synced', processed: delivered.length });
    expect(events.map((e) => e.uid)).toEqual(delivered.map((_, i) => i + 1));
    const good = events.filter((e) => e.uid % 2 === 1);
    expect(good.map((e) => e.subject)).toEqual([...hostile.map((_, i) => `Message ${700 + i}`), 'Message 799']);
    expect(good.every((e) => e.type === 'inbound.received')).toBe(true);
    expect(await state.getCheckpoint('hostile')).toMatchObject({ lastUid: delivered.length });
    const byUid = new Map(events.map((e) => [e.uid, e]));
    // 1,001 parts: the parser refuses it; a 1 MB "recipient": no address, so a report naming nobody (or, were it
    // kept, an event that could never be published as it is); a 10 MiB header: over the size cap, never parsed.
    expect(byUid.get(2)).toMatchObject({ type: 'inbound.unparsable', reason: expect.any(String) });
    const longRecipient = byUid.get(6);
    if (longRecipient?.type === 'inbound.unparsable')
      expect(longRecipient).toMatchObject({ reason: 'event-too-large' });
    else expect(longRecipient).toMatchObject({ type: 'bounce.detected', classification: { recipients: [] } });
    expect(byUid.get(10)).toMatchObject({ type: 'inbound.unparsable', reason: 'too-large' });
    expect(await suppressions.findSuppressed(['someone@example.net'])).toEqual(new Set());
    // An unparsable message's event says where its raw bytes are: a range of its chunk's object.
    expect(await rawBytesOf(byUid.get(2))).toBe(hostile[0]);
  }, 120_000);

  it('reads no more of a message over the size cap than the cap: a prefix kept raw, published too-large', async () => {
    // Prepare: a 2 MiB message between two small ones, under a cap of 256 KiB. A message larger than the function
    // can hold or fetch in time would otherwise stop every run on the fetch itself, before anything is recorded.
    const { mailbox, deps, published, state } = await pollerOnNewMailbox();
    const cap = 256 * 1024;
    const huge = plainMessage(861, { subject: 'Huge' }) + `${'x'.repeat(998)}\r\n`.repeat(2100);
    await peers.imap.append(mailbox, [plainMessage(860), huge, plainMessage(862)]);
    const fetchedBytes: number[] = [];
    const recording: SyncDeps = {
      ...deps,
      openSession: async () => {
        const session = await deps.openSession();
        return Object.assign(Object.create(session) as typeof session, {
          async *fetch(uids: number[], maxBytes?: number) {
            for await (const m of session.fetch(uids, maxBytes)) {
              fetchedBytes.push(m.source.length);
              yield m;
            }
          },
        });
      },
    };

    // Act
    const result = await run(recording, 'oversized', { startFrom: 'beginning', maxMessageBytes: cap });

    // Assess
    expect(huge.length).toBeGreaterThan(2 * 1024 * 1024);
    expect(result).toMatchObject({ status: 'synced', processed: 3 });
    expect(Math.max(...fetchedBytes)).toBeLessThanOrEqual(cap + 1);
    const events = facts(published);
    expect(events.map((e) => e.type)).toEqual(['inbound.received', 'inbound.unparsable', 'inbound.received']);
    expect(events[1]).toMatchObject({ reason: 'too-large', detail: expect.stringContaining(`over ${cap}`) });
    expect(await rawBytesOf(events[1])).toBe(huge.slice(0, cap + 1));
    expect(await state.getCheckpoint('oversized')).toMatchObject({ lastUid: 3 });
  });

  it('gives up on a message runs keep stopping on: published unparsable, the mail after it processed', async () => {
    // Prepare: parsing message 3 never ends while the test runs, as a parse that outlives the function would not
    const poison = await poisonedMailbox(850);

    // Act
    const { stuck, finished, overtaken } = await runUntilOneFinishes(poison, 'poison');

    // Assess: three runs stopped on it (the last two with it alone); the fourth published it unparsable and went on
    expect(stuck).toBe(3);
    expect(finished).toMatchObject({ status: 'synced' });
    expect(overtaken.map((r) => r.status)).toEqual(['lease-lost', 'lease-lost', 'lease-lost']);
    expectGivenUpOnThird(poison.published);
  });

  it('gives up on a message of a later chunk too, whose attempt rode on the move past the chunk before', async () => {
    // Prepare: chunks of two; parsing message 3 (the second chunk's first) never ends while the test runs
    const poison = await poisonedMailbox(870);

    // Act
    const { stuck, finished, attemptWrites } = await runUntilOneFinishes(poison, 'poison-later', { chunkSize: 2 });

    // Assess: the first run wrote an attempt for its first chunk only, and still stopped on message 3 as an attempt;
    // the second stopped on it alone, the third published it unparsable and went on
    expect(attemptWrites[0]).toEqual([1]);
    expect(stuck).toBe(2);
    expect(finished).toMatchObject({ status: 'synced' });
    expectGivenUpOnThird(poison.published);
  });

  it('checks the deadline between the messages of a chunk: it stops mid-chunk, the next run goes on', async () => {
    // Prepare: time jumps past the deadline while the second message is parsed
    const { mailbox, deps, published, state } = await pollerOnNewMailbox();
    await peers.imap.append(
      mailbox,
      [1, 2, 3, 4, 5].map((n) => plainMessage(800 + n)),
    );
    const slow = slowSecondRead(deps, 120_000);

    // Act
    const first = await run(slow, 'deadline', { startFrom: 'beginning' });
    const afterFirst = facts(published).map((e) => e.uid);
    const second = await run(deps, 'deadline');

    // Assess
    expect(first).toMatchObject({ status: 'synced', processed: 2 });
    expect(afterFirst).toEqual([1, 2]);
    expect(second).toMatchObject({ status: 'synced', processed: 3 });
    expect(facts(published).map((e) => e.uid)).toEqual([1, 2, 3, 4, 5]);
    expect(await state.getCheckpoint('deadline')).toMatchObject({ lastUid: 5 });
  });
});

describe('one writer at a time', () => {
  it('a run whose lease is taken over mid-run publishes and checkpoints nothing after losing it', async () => {
    // Prepare: run A works in chunks of two; while it parses UID 3, its lease looks expired to run B, which takes
    // the mailbox over and finishes it
    const { mailbox, deps, resources, state } = await pollerOnNewMailbox();
    await peers.imap.append(
      mailbox,
      [1, 2, 3, 4, 5, 6].map((n) => plainMessage(900 + n)),
    );
    const later = createMailboxStateStore(peers.aws.clients.documents, resources.mailboxStateTable, {
      clock: () => Date.now() + 600_000,
    });
    const byA: number[] = [];
    const byB: number[] = [];
    const recordingInto =
      (into: number[]): SyncDeps['publishBatch'] =>
      async (events) => {
        into.push(...events.map((e) => (e as unknown as Published).uid));
        return [];
      };
    const checkpointsByA: number[] = [];
    let resultB: Awaited<ReturnType<typeof syncMailbox>> | undefined;
    let parsedByA = 0;
    const runA: SyncDeps = {
      ...deps,
      publishBatch: recordingInto(byA),
      state: {
        ...state,
        advanceCheckpoint: async (...a) =>
          (await state.advanceCheckpoint(...a)) ? (checkpointsByA.push(a[1].lastUid), true) : false,
      },
      parse: async (source) => {
        parsedByA += 1;
        if (parsedByA === 3)
          resultB = await run({ ...deps, state: later, publishBatch: recordingInto(byB) }, 'contested', {
            leaseWaitMs: 0,
            chunkSize: 2,
          });
        return deps.parse(source);
      },
    };

    // Act
    const resultA = await run(runA, 'contested', { startFrom: 'beginning', chunkSize: 2 });

    // Assess
    expect(resultB).toMatchObject({ status: 'synced', processed: 4 });
    expect(resultA).toMatchObject({ status: 'lease-lost', processed: 2 });
    expect(byA).toEqual([1, 2]);
    expect(byB.sort((a, b) => a - b)).toEqual([3, 4, 5, 6]);
    expect(checkpointsByA).toEqual([2]);
    expect(await state.getCheckpoint('contested')).toMatchObject({ lastUid: 6 });
  });

  it('a run whose lease is taken over mid-chunk suppresses nobody after losing it', async () => {
    // Prepare: two bounces in run A's second chunk; while A parses the first of them, run B takes the mailbox over
    const { mailbox, deps, resources } = await pollerOnNewMailbox();
    await peers.imap.append(mailbox, [
      plainMessage(951),
      plainMessage(952),
      bounceMessage('gone-a@example.net'),
      bounceMessage('gone-b@example.net'),
    ]);
    const later = createMailboxStateStore(peers.aws.clients.documents, resources.mailboxStateTable, {
      clock: () => Date.now() + 600_000,
    });
    const suppressedByA: string[] = [];
    let taken = false;
    let parsedByA = 0;
    const runA: SyncDeps = {
      ...deps,
      suppress: async (entry) => {
        if (taken) suppressedByA.push(entry.address);
        return deps.suppress(entry);
      },
      parse: async (source) => {
        parsedByA += 1;
        if (parsedByA === 3) {
          await run({ ...deps, state: later }, 'contested-suppress', { leaseWaitMs: 0, chunkSize: 2 });
          taken = true;
        }
        return deps.parse(source);
      },
    };

    // Act
    const resultA = await run(runA, 'contested-suppress', { startFrom: 'beginning', chunkSize: 2 });

    // Assess: B acted on both bounces; A, overtaken before acting on them, wrote nothing
    expect(resultA).toMatchObject({ status: 'lease-lost' });
    expect(suppressedByA).toEqual([]);
  });

  it('renews the lease while a run works past its plan: a run arriving after the planned end finds it busy', async () => {
    // Prepare: run A is planned to end within a minute; reading its second message takes two minutes. Just before A
    // publishes, run B arrives: after A's planned lease, within the renewed one.
    const { mailbox, deps, resources, state } = await pollerOnNewMailbox();
    await peers.imap.append(
      mailbox,
      [1, 2, 3].map((n) => plainMessage(970 + n)),
    );
    let resultB: Awaited<ReturnType<typeof syncMailbox>> | undefined;
    const later = createMailboxStateStore(peers.aws.clients.documents, resources.mailboxStateTable, {
      clock: () => Date.now() + 130_000,
    });
    const runA: SyncDeps = {
      ...slowSecondRead(deps, 120_000),
      publishBatch: async (events) => {
        resultB ??= await run({ ...deps, state: later }, 'renewed', { leaseWaitMs: 0 });
        return deps.publishBatch(events);
      },
    };

    // Act
    const resultA = await run(runA, 'renewed', { startFrom: 'beginning', stopAtMs: Date.now() + 60_000 });

    // Assess: B stood back; A published and moved the checkpoint under its renewed lease
    expect(resultB).toMatchObject({ status: 'busy', processed: 0 });
    expect(resultA).toMatchObject({ status: 'synced', processed: 2 });
    expect(await state.getCheckpoint('renewed')).toMatchObject({ lastUid: 2 });
  });

  it('refuses every write of an overtaken lease: renewal, checkpoint, verify mark and seen markers', async () => {
    // Prepare
    const { resources, state } = await createSyncDeps(peers.aws, () =>
      openImapSession(peers.imap.settings('INBOX'), credentialsOf()),
    );
    const later = createMailboxStateStore(peers.aws.clients.documents, resources.mailboxStateTable, {
      clock: () => Date.now() + 600_000,
    });
    const first = await state.acquireLease('fenced', 'a', Date.now() + 30_000);
    if (!first) throw new Error('lease not taken');
    expect(await state.advanceCheckpoint(first, { uidValidity: '1', lastUid: 1 }, undefined)).toBe(true);
    expect(await state.markSeen(first, '1', [{ uid: 1, key: 'k1' }])).toBe(true);

    // Act
    const second = await later.acquireLease('fenced', 'b', Date.now() + 700_000);
    if (!second) throw new Error('lease not taken over');
    const checkpoint = await state.getCheckpoint('fenced');
    await later.markSeen(second, '1', [{ uid: 2, key: 'k2' }]);

    // Assess
    expect(second.fence).toBeGreaterThan(first.fence);
    expect(await state.acquireLease('fenced', 'a', Date.now() + 30_000)).toBeUndefined();
    expect(await state.renewLease(first, Date.now() + 60_000)).toBe(false);
    expect(await state.advanceCheckpoint(first, { uidValidity: '1', lastUid: 2 }, checkpoint)).toBe(false);
    expect(await state.raiseVerifyMark(first, '1', 9, checkpoint)).toBe(false);
    expect(await state.markSeen(first, '1', [{ uid: 3, key: 'k3' }])).toBe(false);
    expect(await state.advanceCheckpoint(second, { uidValidity: '1', lastUid: 2 }, checkpoint)).toBe(true);
    await later.releaseLease(second);
    const third = await state.acquireLease('fenced', 'c', Date.now() + 30_000);
    expect(third?.fence).toBeGreaterThan(second.fence);
  });
});

describe('the scheduled poller with two mailboxes, one failing', () => {
  it('emits the heartbeat of the healthy mailbox only, on its own Mailbox dimension', async () => {
    // Prepare: the second mailbox's login is refused
    const mailbox = await peers.newMailbox();
    const refused = { username: 'bounces', password: 'wrong' };
    const mailboxes = [
      { id: 'healthy', mailbox, startFrom: 'beginning' },
      { id: 'failing', mailbox, startFrom: 'beginning' },
    ];
    const { handler, output } = await createPollerUnderTest(peers.aws, peers.imap, mailboxes, (m) =>
      credentialsOf(m.id === 'failing' ? refused : undefined),
    );
    await peers.imap.append(mailbox, [plainMessage(950)]);

    // Act
    const summary = await handler({}, createLambdaContext('poll-mailbox', 20_000));

    // Assess
    // A refused sign-in is our setup (a wrong secret): blocked, and alarmed as such.
    expect(summary).toMatchObject({ healthy: { status: 'synced', processed: 1 }, failing: { status: 'blocked' } });
    const heartbeats = output.records().filter((r) => typeof r.MailboxPolled === 'number');
    expect(heartbeats.map((r) => [r.Mailbox, r.MailboxPolled, typeof r.PollLagSeconds, r.service])).toEqual([
      ['healthy', 1, 'number', 'email-dispatch'],
    ]);
    // The mailbox's own dimension stays on its own blob: the other counts are for the whole service.
    const others = output.records().filter((r) => '_aws' in r && typeof r.MailboxPolled !== 'number');
    expect(others.length).toBeGreaterThan(0);
    expect(others.every((r) => !('Mailbox' in r))).toBe(true);
    const dimensions = (heartbeats[0]?._aws as { CloudWatchMetrics: Array<{ Dimensions: string[][] }> })
      .CloudWatchMetrics[0]?.Dimensions;
    expect(dimensions).toEqual([['service', 'Mailbox']]);
    expect(output.metric('MailboxPollFailures')).toBe(1);
  });
});
