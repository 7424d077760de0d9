import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBounceHistoryStore } from '#aws/bounce-history-store.js';
import { toReportKeyring } from '#core/message-id.js';
import type { RepeatPolicy } from '#core/mailbox/repeated-bounces.js';
import { syncMailbox, type SyncDeps } from '#core/mailbox/sync-mailbox.js';
import { openImapSession } from '#imap/imap-session.js';
import { buildDsn } from '#local/dsn.js';
import { createLambdaContext } from '#local/lambda-context.js';
import { startAwsEmulators, startDispatchHarness } from '../support/dispatch-harness.js';
import type { AwsEmulators, DispatchHarness } from '../support/dispatch-harness.js';
import { emailJobFactory } from '../support/factories.js';
import { bounceMessage } from '../support/mail-samples.js';
import {
  createPollerUnderTest,
  createReportMailbox,
  createSyncDeps,
  credentialsOf,
  startImapPeer,
} from '../support/poller-harness.js';
import type { ImapPeer } from '../support/poller-harness.js';

const BOUNCE_DOMAIN = 'bounces.example.com';
const KEYS = toReportKeyring({ current: 'k1', k1: 'report-key-of-the-repeat-deployment-0001' }, 'k1');
const DAY = 86_400_000;

let aws: AwsEmulators;
let imap: ImapPeer;
let dispatcher: DispatchHarness;

beforeAll(async () => {
  [aws, imap] = await Promise.all([startAwsEmulators(), startImapPeer()]);
  dispatcher = await startDispatchHarness(aws, {
    env: { REPORT_KEYS_SECRET_ID: 'local', BOUNCE_DOMAIN },
    environment: { reportKeys: { get: async () => KEYS } },
  });
});
afterAll(async () => {
  await dispatcher?.stop();
  await imap?.stop();
  await aws?.stop();
});

/** Sends a job to `to` through the real dispatcher; returns the headers of what the sink received. */
const send = async (to: string) => {
  await dispatcher.enqueue(emailJobFactory({ to: [to] }));
  await dispatcher.deliverAll();
  const received = dispatcher.sink.received.find((m) => m.to.join(',') === to);
  if (!received) throw new Error('the job did not reach the sink');
  return received.raw.toString('utf8').split(/\r?\n\r?\n/)[0] ?? '';
};

/**
 * Reads `reports` from a fresh mailbox with the poller as it runs `day` days from now, verifying against the
 * dispatcher's table, writing its suppression list, and keeping the failure history in `historyTable`.
 */
const pollOn = async (day: number, reports: string[], historyTable: string, policy: RepeatPolicy) => {
  const { mailbox, sync, suppressions } = await createReportMailbox(aws, imap, dispatcher, reports, {
    keys: async () => KEYS,
    bounceDomain: BOUNCE_DOMAIN,
  });
  const clock = () => Date.now() + day * DAY;
  const deps: SyncDeps = {
    ...sync.deps,
    clock,
    suppress: (entry) => suppressions.suppress(entry),
    repeats: { policy, history: createBounceHistoryStore(aws.clients.documents, historyTable) },
  };
  await syncMailbox(deps, {
    mailboxId: mailbox,
    runId: `run-${day}`,
    startFrom: 'beginning',
    stopAtMs: clock() + 30_000,
  });
  return { published: sync.published, suppressions };
};

const dsn = (recipient: string, headers: string, status: string, diagnostic: string) =>
  buildDsn({
    reportingMta: 'mx.relay.example',
    to: 'noreply@example.com',
    recipient,
    status,
    diagnostic,
    originalHeaders: headers,
  });

describe('bounces that suppress once they repeat, read by the poller', () => {
  it("suppresses a domain that keeps not resolving on the third day, never a block of our IP's", async () => {
    // Prepare: one job to each; the relay reports a missing domain for one and a blocklist for the other, daily.
    const lost = await send('someone@gone-domain.example');
    const blocked = await send('reader@strict.example');
    const reports = () => [
      dsn('someone@gone-domain.example', lost, '5.1.2', '550 5.1.2 Host or domain name not found'),
      dsn(
        'reader@strict.example',
        blocked,
        '5.7.1',
        '554 5.7.1 Service unavailable; Client host blocked using Spamhaus',
      ),
    ];
    const { resources } = await createSyncDeps(aws, () => openImapSession(imap.settings('INBOX'), credentialsOf()));
    const policy = { windowDays: 14, hostUnknownDays: 3, softBounceDays: 0 };
    const both = ['someone@gone-domain.example', 'reader@strict.example'];

    // Act and assess: twice on day 0 and once on day 1 is two days; day 2 is the third.
    for (const day of [0, 0, 1]) {
      const { published, suppressions } = await pollOn(day, reports(), resources.mailboxStateTable, policy);
      expect(published.map((e) => (e as { verified?: boolean }).verified)).toEqual([true, true]);
      expect(await suppressions.findSuppressed(both)).toEqual(new Set());
    }
    const { suppressions } = await pollOn(2, reports(), resources.mailboxStateTable, policy);
    expect(await suppressions.findSuppressed(both)).toEqual(new Set(['someone@gone-domain.example']));
    expect(await suppressions.check('someone@gone-domain.example')).toMatchObject({
      reason: 'hard-bounce',
      permanent: true,
      detail: 'host-unknown on 3 days',
    });
  });
});

describe('bounces that blame our side, read by the scheduled poller', () => {
  it('are counted for the SenderSideBouncesHigh alarm, beside every bounce', async () => {
    // Prepare: our sender domain refused (5.1.8), our DMARC (5.7.26), and a recipient's own unknown mailbox.
    const mailbox = 'SenderSide';
    await imap.createMailbox(mailbox);
    const mailboxList = [{ id: 'ops', mailbox, startFrom: 'beginning' }];
    const { handler, output } = await createPollerUnderTest(aws, imap, mailboxList);
    await imap.append(mailbox, [
      bounceMessage('a@partner.example', { status: '5.1.8' }),
      bounceMessage('b@partner.example', { status: '5.7.26' }),
      bounceMessage('c@partner.example', { status: '5.1.1' }),
    ]);

    // Act
    await handler({}, createLambdaContext('poll-mailbox', 20_000));

    // Assess
    expect(output.metric('BouncesDetected')).toBe(3);
    expect(output.metric('SenderSideBounces')).toBe(2);
  });
});
