import type { Socket } from 'node:net';
import hoodiecrow from 'hoodiecrow-imap';
import { LOOPBACK, listenOnLoopback } from './loopback.js';

/**
 * An embedded IMAP server (hoodiecrow-imap) on 127.0.0.1, plaintext (loopback only), in memory. It has neither
 * CONDSTORE nor UIDPLUS: the poller's fallback path runs against it, and the local twin uses it as its mailbox.
 */
export async function startHoodiecrow(options: {
  users: Array<{ username: string; password: string }>;
  port?: number;
}) {
  const server = hoodiecrow({
    plugins: ['IDLE', 'ENABLE', 'SASL-IR', 'AUTH-PLAIN'],
    users: Object.fromEntries(options.users.map((u) => [u.username, { password: u.password }])),
    storage: { INBOX: { messages: [] }, '': { separator: '/', folders: {} } },
  });
  const sockets = new Set<Socket>();
  server.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
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
      // A client idling on the mailbox would hold close() open until it leaves.
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
export type HoodiecrowServer = Awaited<ReturnType<typeof startHoodiecrow>>;
