import { createServer, connect, type Socket } from 'node:net';
import { LOOPBACK } from '#local/loopback.js';

/**
 * How the proxy stalls: each answer (a chunk the server sends) is held `ms` before it goes on (`Infinity`: never,
 * and nothing after it on that connection either), with `probability` (from a seeded generator, default 1).
 * `Infinity` without a probability is a black hole: requests are not passed on either.
 */
export type StallMode = { ms: number; probability?: number; seed?: number };

/**
 * A TCP proxy on 127.0.0.1 in front of a real server, that can cut a connection once the server has sent
 * `dropAfterServerBytes` bytes on it (a socket dropped in the middle of a response, as networks do), or stall the
 * server's answers (a peer that accepts and never answers, or answers late).
 */
export async function startTcpProxy(target: { host: string; port: number }) {
  let dropAfterServerBytes: number | undefined;
  let stall: StallMode | undefined;
  let seed = 1;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
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
    // Answers leave in order: a held one holds back those after it.
    let releaseAt = 0;
    let silenced = false;
    const forward = (chunk: Buffer) => {
      const mode = stall;
      const held = mode && (mode.probability === undefined || random() < mode.probability) ? mode.ms : 0;
      if (held === Infinity) silenced = true;
      if (silenced) return;
      releaseAt = Math.max(releaseAt, Date.now() + held);
      const wait = releaseAt - Date.now();
      if (wait <= 0) client.write(chunk);
      else setTimeout(() => client.destroyed || client.write(chunk), wait);
    };
    upstream.on('data', (chunk: Buffer) => {
      fromServer += chunk.length;
      if (limit !== undefined && fromServer > limit) {
        client.write(chunk.subarray(0, Math.max(0, chunk.length - (fromServer - limit))));
        client.destroy();
        upstream.destroy();
        return;
      }
      forward(chunk);
    });
    client.on('data', (chunk: Buffer) => {
      // A peer that never answers at all never takes a request in either.
      if (stall?.ms === Infinity && stall.probability === undefined) silenced = true;
      if (!silenced) upstream.write(chunk);
    });
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
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    host: LOOPBACK,
    port,
    endpoint: `http://${LOOPBACK}:${port}`,
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
    /** Server answers from now on are held as `mode` says (undefined: passed on at once). */
    stall(mode: StallMode | undefined) {
      stall = mode;
      seed = mode?.seed ?? 1;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
export type TcpProxy = Awaited<ReturnType<typeof startTcpProxy>>;
