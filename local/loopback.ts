import { createServer, type Server } from 'node:net';

/** Every server of the local twin, the tests and the benchmarks binds here and nowhere else. */
export const LOOPBACK = '127.0.0.1';

/** A TCP port free on loopback right now (for servers that cannot listen on port 0 themselves). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Listens on 127.0.0.1 (`port` 0 for any free one) and resolves with the port it got. */
export async function listenOnLoopback(server: Pick<Server, 'listen' | 'address'>, port = 0): Promise<number> {
  await new Promise<void>((resolve) => server.listen(port, LOOPBACK, () => resolve()));
  const address = server.address();
  return typeof address === 'object' && address ? address.port : 0;
}
