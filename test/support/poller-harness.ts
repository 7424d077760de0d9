import { ImapFlow } from 'imapflow';
import { createMailboxStateStore } from '#aws/mailbox-state-store.js';
import { createRawMessageStore } from '#aws/raw-message-store.js';
import { createSuppressionStore } from '#aws/suppression-store.js';
import type { DispatchEvent } from '#core/events.js';
import type { MailboxStateStore, SyncDeps } from '#core/sync-mailbox.js';
import { openImapSession, type ImapSettings } from '#imap/imap-session.js';
import { parseInbound } from '#imap/parse-inbound.js';
import { startDovecot, type DovecotServer } from '#local/dovecot.js';
import { createLocalResources, LOCAL_NAMES } from '#local/resources.js';
import { localTlsCertificate } from '#local/tls-certificate.js';
import { DEFAULT_SETTINGS } from '#infra/settings.js';
import type { AwsEmulators } from './dispatch-harness.js';

export const IMAP_USER = { username: 'bounces', password: 'imap-pass-1' };

/**
 * A private Dovecot and a client to put mail into it, as a sender's MTA would. With `oauth2`, Dovecot also takes
 * access tokens, checked at that introspection endpoint.
 */
export async function startImapPeer(options: { oauth2?: { introspectionUrl: string } } = {}) {
  const cert = localTlsCertificate();
  const dovecot = await startDovecot({ tls: cert, users: [IMAP_USER], oauth2: options.oauth2 });
  const settings = (mailbox: string, port = dovecot.port, host = dovecot.host): ImapSettings => ({ host, port, security: 'starttls', mailbox, tls: { ca: cert.cert }, stepTimeoutMs: 5000 });
  const client = async () => {
    const c = new ImapFlow({ host: dovecot.host, port: dovecot.port, secure: false, doSTARTTLS: true, tls: { ca: cert.cert }, auth: { user: IMAP_USER.username, pass: IMAP_USER.password }, logger: false });
    c.on('error', () => {});
    await c.connect();
    return c;
  };
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
export type { DovecotServer };

let counter = 0;

/** The poller's real stores on the emulators, and a publisher that records what it was given. */
export async function createSyncDeps(aws: AwsEmulators, session: () => ReturnType<typeof openImapSession>) {
  counter += 1;
  const suffix = `${process.pid}-p${counter}`;
  const names = Object.fromEntries(Object.entries(LOCAL_NAMES).map(([k, v]) => [k, `${v}-${suffix}`])) as typeof LOCAL_NAMES;
  const resources = await createLocalResources(aws.clients, DEFAULT_SETTINGS, names);
  const published: DispatchEvent[] = [];
  const suppressions = createSuppressionStore(aws.clients.documents, resources.suppressionTable);
  const state: MailboxStateStore = createMailboxStateStore(aws.clients.documents, resources.mailboxStateTable);
  const deps: SyncDeps = {
    state,
    openSession: session,
    parse: parseInbound,
    storeRaw: createRawMessageStore(aws.clients.s3, resources.bucket),
    publishBatch: async (events) => {
      published.push(...events);
      return [];
    },
    suppress: (entry) => suppressions.suppress(entry),
  };
  return { deps, published, suppressions, resources, state };
}

export const credentialsOf = (user = IMAP_USER) => ({ get: async () => user });
