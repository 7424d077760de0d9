import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { createSnsEventPublisher } from '#aws/event-publisher.js';
import { createMailboxStateStore } from '#aws/mailbox-state-store.js';
import { createRawMessageStore } from '#aws/raw-message-store.js';
import { createSentMessages } from '#aws/sent-messages.js';
import { createSuppressionStore } from '#aws/suppression-store.js';
import { toReportKeyring, type ReportKeyring } from '#core/message-id.js';
import { createInboundReportVerifier } from '#core/verify-report.js';
import type { CredentialSource, MailLogin } from '#core/credential-source.js';
import type { DispatchEvent } from '#core/events.js';
import type { MailboxStateStore } from '#core/mailbox/ports.js';
import type { SyncDeps } from '#core/mailbox/sync-mailbox.js';
import { loadPollerConfig, type PolledMailbox } from '#functions/config.js';
import { createPollMailboxHandler } from '#handlers/poll-mailbox-handler.js';
import { openImapSession, type ImapSettings } from '#imap/imap-session.js';
import { inboundReader } from '#inbound/inbound-reader.js';
import { parseInbound } from '#inbound/parse-inbound.js';
import { connectToDovecot, startDovecot } from '#local/dovecot.js';
import { createLocalResources, LOCAL_NAMES } from '#local/resources.js';
import { localTlsCertificate } from '#local/tls-certificate.js';
import { DEFAULT_SETTINGS } from '#infra/settings.js';
import { captureOutput } from './captured-output.js';
import type { LocalResources } from '#local/resources.js';
import { afterAll, beforeAll } from 'vitest';
import { startAwsEmulators, type AwsEmulators, type DispatchHarness } from './dispatch-harness.js';

export const IMAP_USER = { username: 'bounces', password: 'imap-pass-1' };

/**
 * A private Dovecot and a client to put mail into it, as a sender's MTA would. With `oauth2`, Dovecot also takes
 * access tokens, checked at that introspection endpoint.
 */
export async function startImapPeer(options: { oauth2?: { introspectionUrl: string } } = {}) {
  const cert = localTlsCertificate();
  const dovecot = await startDovecot({ tls: cert, users: [IMAP_USER], oauth2: options.oauth2 });
  const settings = (mailbox: string, port = dovecot.port, host = dovecot.host): ImapSettings => ({
    host,
    port,
    security: 'starttls',
    mailbox,
    tls: { ca: cert.cert },
    stepTimeoutMs: 5000,
  });
  const client = () => connectToDovecot(dovecot, IMAP_USER, cert.cert);
  const writer = await client();
  return {
    dovecot,
    cert,
    settings,
    writer,
    async createMailbox(name: string) {
      await writer.mailboxCreate(name);
    },
    async recreateMailbox(name: string) {
      await writer.mailboxDelete(name);
      await writer.mailboxCreate(name);
    },
    async append(mailbox: string, messages: string[]) {
      for (const m of messages) await writer.append(mailbox, m);
    },
    async stop() {
      await writer.logout().catch(() => {});
      await dovecot.stop();
    },
  };
}
export type ImapPeer = Awaited<ReturnType<typeof startImapPeer>>;

/**
 * The AWS emulators and the IMAP peer of the test file that calls this, started before its first test and stopped
 * after its last, and a fresh mailbox per call of `newMailbox` (named `<prefix><n>`).
 */
export function usePollerPeers(mailboxPrefix: string) {
  let started: { aws: AwsEmulators; imap: ImapPeer } | undefined;
  let mailboxes = 0;
  beforeAll(async () => {
    const [aws, imap] = await Promise.all([startAwsEmulators(), startImapPeer()]);
    started = { aws, imap };
  });
  afterAll(async () => {
    await started?.imap.stop();
    await started?.aws.stop();
  });
  const peers = () => {
    if (!started) throw new Error('the peers start in beforeAll; use them inside a test or hook');
    return started;
  };
  return {
    get aws(): AwsEmulators {
      return peers().aws;
    },
    get imap(): ImapPeer {
      return peers().imap;
    },
    async newMailbox(): Promise<string> {
      mailboxes += 1;
      const name = `${mailboxPrefix}${mailboxes}`;
      await peers().imap.createMailbox(name);
      return name;
    },
  };
}

let counter = 0;

/** The report keys of the harness's deployment. */
const HARNESS_REPORT_KEYS: ReportKeyring = toReportKeyring({ current: 'k1', k1: 'harness-key-'.repeat(3) }, 'x');

/**
 * The poller's real stores on the emulators, and a publisher that records what it was given. Reports are verified
 * with `verify.keys` against the dispatcher's idempotency table `verify.idempotencyTable` (the harness's own, empty,
 * unless told otherwise).
 */
export async function createSyncDeps(
  aws: AwsEmulators,
  session: () => ReturnType<typeof openImapSession>,
  verify: { keys?: () => Promise<ReportKeyring>; idempotencyTable?: string; bounceDomain?: string } = {},
) {
  counter += 1;
  const suffix = `${process.pid}-p${counter}`;
  const names = Object.fromEntries(
    Object.entries(LOCAL_NAMES).map(([k, v]) => [k, `${v}-${suffix}`]),
  ) as typeof LOCAL_NAMES;
  const resources = await createLocalResources(aws.clients, DEFAULT_SETTINGS, names);
  const published: DispatchEvent[] = [];
  const suppressions = createSuppressionStore(aws.clients.documents, resources.suppressionTable);
  const state: MailboxStateStore = createMailboxStateStore(aws.clients.documents, resources.mailboxStateTable);
  const deps: SyncDeps = {
    state,
    openSession: session,
    parse: parseInbound,
    reader: inboundReader,
    storeRaw: createRawMessageStore(aws.clients.s3, resources.bucket),
    publishBatch: async (events) => {
      published.push(...events);
      return [];
    },
    suppress: (entry) => suppressions.suppress(entry),
    verifyReport: createInboundReportVerifier({
      keys: verify.keys ?? (async () => HARNESS_REPORT_KEYS),
      sent: createSentMessages(aws.clients.documents, verify.idempotencyTable ?? resources.idempotencyTable),
      bounceDomain: verify.bounceDomain,
    }),
  };
  return { deps, published, suppressions, resources, state };
}

export const credentialsOf = (user = IMAP_USER) => ({ get: async () => user });

/**
 * The scheduled poller's handler (no idling) on the emulators, polling `mailboxes` of the Dovecot peer, with its
 * logs and metrics captured. Mailboxes are given as the `MAILBOXES` variable lists them.
 */
export async function createPollerUnderTest(
  aws: AwsEmulators,
  imap: ImapPeer,
  mailboxes: Array<Record<string, unknown>>,
  credentialsFor: (mailbox: PolledMailbox) => CredentialSource<MailLogin> = () => credentialsOf(),
) {
  const session = () => openImapSession(imap.settings('INBOX'), credentialsOf());
  const { resources, suppressions } = await createSyncDeps(aws, session);
  const server = { host: imap.dovecot.host, port: imap.dovecot.port, security: 'starttls', secret: 'local' };
  const config = loadPollerConfig({
    MAILBOXES: JSON.stringify(mailboxes.map((m) => ({ ...server, ...m }))),
    MAILBOX_STATE_TABLE: resources.mailboxStateTable,
    SUPPRESSION_TABLE: resources.suppressionTable,
    EVENTS_TOPIC_ARN: resources.eventsTopicArn,
    RAW_MESSAGE_BUCKET: resources.bucket,
    IDLE: 'false',
  });
  const logger = new Logger({ serviceName: 'email-dispatch' });
  const metrics = new Metrics({ namespace: 'EmailDispatch', serviceName: 'email-dispatch', logger });
  const output = captureOutput(logger, metrics);
  const handler = createPollMailboxHandler({
    config,
    logger,
    metrics,
    state: createMailboxStateStore(aws.clients.documents, resources.mailboxStateTable),
    events: createSnsEventPublisher(aws.clients.sns, resources.eventsTopicArn),
    suppress: (entry) => suppressions.suppress(entry),
    storeRaw: createRawMessageStore(aws.clients.s3, resources.bucket),
    credentialsFor,
    tls: { ca: imap.cert.cert },
  });
  return { handler, output, resources, suppressions };
}

/** The poller function's configuration for one mailbox of the Dovecot peer, on the given resources, without IDLE. */
export function pollerConfigFor(imap: ImapPeer, resources: LocalResources, mailbox: string, id: string) {
  const { host, port } = imap.dovecot;
  return loadPollerConfig({
    MAILBOXES: JSON.stringify([
      { id, host, port, security: 'starttls', mailbox, secret: 'local', startFrom: 'beginning' },
    ]),
    MAILBOX_STATE_TABLE: resources.mailboxStateTable,
    SUPPRESSION_TABLE: resources.suppressionTable,
    EVENTS_TOPIC_ARN: resources.eventsTopicArn,
    RAW_MESSAGE_BUCKET: resources.bucket,
    IDLE: 'false',
  });
}

let reportMailboxes = 0;
/**
 * A fresh mailbox on `imap` holding `messages`, with the poller's sync dependencies for it: reports are verified
 * against `dispatcher`'s idempotency table with `keys`, and suppress into its suppression table.
 */
export async function createReportMailbox(
  aws: AwsEmulators,
  imap: ImapPeer,
  dispatcher: DispatchHarness,
  messages: string[],
  verify: { keys: () => Promise<ReportKeyring>; bounceDomain: string },
) {
  reportMailboxes += 1;
  const mailbox = `Reports${reportMailboxes}`;
  await imap.createMailbox(mailbox);
  await imap.append(mailbox, messages);
  const session = () => openImapSession(imap.settings(mailbox), credentialsOf());
  const sync = await createSyncDeps(aws, session, {
    ...verify,
    idempotencyTable: dispatcher.resources.idempotencyTable,
  });
  const suppressions = createSuppressionStore(aws.clients.documents, dispatcher.resources.suppressionTable);
  return { mailbox, number: reportMailboxes, sync, suppressions };
}
