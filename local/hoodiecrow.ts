import hoodiecrow from 'hoodiecrow-imap';
import { LOOPBACK, listenOnLoopback } from './loopback.js';

/**
 * An embedded IMAP server (hoodiecrow-imap) on 127.0.0.1, plaintext (loopback only), in memory. It has neither
 * CONDSTORE nor UIDPLUS: the poller's fallback path runs against it, and the local twin uses it as its mailbox.
 */
export async function startHoodiecrow(options: { users: Array<{ username: string; password: string }>; port?: number }) {
  const server = hoodiecrow({
    plugins: ['IDLE', 'ENABLE', 'SASL-IR', 'AUTH-PLAIN'],
    users: Object.fromEntries(options.users.map((u) => [u.username, { password: u.password }])),
    storage: { INBOX: { messages: [] }, '': { separator: '/', folders: {} } },
  });
  const port = await listenOnLoopback(server.server, options.port);
  return {
    host: LOOPBACK,
    port,
    /** Puts a message straight into a mailbox, as local delivery would (and announces it to IDLE clients). */
    deliver(raw: string, mailbox = 'INBOX') {
      server.appendMessage(server.getMailbox(mailbox), [], new Date(), raw);
    },
    async stop() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
export type HoodiecrowServer = Awaited<ReturnType<typeof startHoodiecrow>>;
