import { createServer, connect, type Socket } from 'node:net';
import { LOOPBACK } from '#local/loopback.js';

/**
 * A TCP proxy on 127.0.0.1 in front of a real server, that can cut a connection once the server has sent
 * `dropAfterServerBytes` bytes on it: a socket dropped in the middle of a response, as networks do.
 */
export async function startTcpProxy(target: { host: string; port: number }) {
  let dropAfterServerBytes: number | undefined;
  const sockets = new Set<Socket>();
  const clients = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    clients.add(client);
    client.on('close', () => clients.delete(client));
    let fromServer = 0;
    const limit = dropAfterServerBytes;
    upstream.on('data', (chunk: Buffer) => {
      fromServer += chunk.length;
      if (limit !== undefined && fromServer > limit) {
        client.write(chunk.subarray(0, Math.max(0, chunk.length - (fromServer - limit))));
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', close);
    upstream.on('error', close);
  });
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, () => resolve()));
  const address = server.address();
  return {
    host: LOOPBACK,
    port: typeof address === 'object' && address ? address.port : 0,
    /** Connections opened from now on are cut after the server sent this many bytes (undefined: never). */
    dropAfter(bytes: number | undefined) {
      dropAfterServerBytes = bytes;
    },
    /**
     * Ends every open connection as a server that invalidates sessions does: `line` (e.g. an IMAP
     * `* BYE Session invalidated - AccessTokenExpired`) goes to the client, then both sides are closed.
     */
    endSessions(line: string) {
      for (const client of clients) client.end(`${line}\r\n`, () => client.destroy());
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
