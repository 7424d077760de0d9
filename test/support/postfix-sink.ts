import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Postfix's test server, installed with the `postfix` package; it starts no Postfix daemon. */
const SMTP_SINK_BINARY = '/usr/sbin/smtp-sink';
const LOOPBACK = '127.0.0.1';

/** smtp-sink's names for the stages of a session; `CONNECT` is the greeting, `.` the end of data. */
export type PostfixStage = 'CONNECT' | 'EHLO' | 'HELO' | 'MAIL' | 'RCPT' | 'DATA' | '.';

/**
 * Faults smtp-sink injects (see `man smtp-sink`): `hard` answers 5xx (-f), `soft` 4xx (-r), `drop` disconnects
 * without a reply (-q), `close421` answers 421 and disconnects (-Q).
 */
export type PostfixFault = 'hard' | 'soft' | 'drop' | 'close421';
const FAULT_FLAGS: Record<PostfixFault, string> = { hard: '-f', soft: '-r', drop: '-q', close421: '-Q' };

export type PostfixSinkOptions = {
  /** Faults, each at one or more stages. */
  faults?: Array<{ fault: PostfixFault; stages: PostfixStage[] }>;
  /** Keep every mail transaction as a file (smtp-sink -d), to read the raw bytes with `dumps()`. */
  capture?: boolean;
  /** Extra smtp-sink arguments. */
  args?: string[];
};

/** Finds a free loopback port by binding port 0 and letting it go; smtp-sink needs a number, not 0. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, LOOPBACK, resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const canConnect = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: LOOPBACK, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

async function launch(port: number, args: string[]): Promise<ChildProcess | undefined> {
  // As root, smtp-sink insists on dropping to an unprivileged user (-u).
  const user = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
  const child = spawn(SMTP_SINK_BINARY, ['-4', ...user, ...args, `${LOOPBACK}:${port}`, '64'], { stdio: 'ignore' });
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  for (let i = 0; i < 100 && !exited; i += 1) {
    if (await canConnect(port)) return child;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (!exited) child.kill('SIGKILL');
  return undefined;
}

/**
 * Starts Postfix's smtp-sink on 127.0.0.1 at a free port, with the given faults: a second real SMTP peer beside
 * smtp-server, with Postfix's own replies (`500 5.3.0 Error: command failed`, `450 4.3.0 …`). Stopped by its PID.
 */
export async function startPostfixSink(options: PostfixSinkOptions = {}) {
  const dumpDir = options.capture ? mkdtempSync(join(tmpdir(), 'smtp-sink-')) : undefined;
  // smtp-sink writes as the unprivileged user.
  if (dumpDir) chmodSync(dumpDir, 0o777);
  const args = [
    ...(options.faults ?? []).flatMap(({ fault, stages }) => [FAULT_FLAGS[fault], stages.join(',')]),
    ...(dumpDir ? ['-d', `${dumpDir}/%H%M%S.`] : []),
    ...(options.args ?? []),
  ];
  // Another process may take the port between the probe and the launch: try a few.
  for (let tries = 0; tries < 5; tries += 1) {
    const port = await freePort();
    const child = await launch(port, args);
    if (!child) continue;
    return {
      host: LOOPBACK,
      port,
      pid: child.pid as number,
      /**
       * Captured transactions, raw (smtp-sink's X-Mail-Args / X-Rcpt-Args headers, then the message), by file name;
       * pass the names seen before to get only the new ones.
       */
      dumps(seen: ReadonlySet<string> = new Set()): Map<string, Buffer> {
        if (!dumpDir) return new Map();
        const names = readdirSync(dumpDir).filter((name) => !seen.has(name));
        return new Map(names.map((name) => [name, readFileSync(join(dumpDir, name))]));
      },
      async stop() {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise((resolve) => child.once('exit', resolve));
          process.kill(child.pid as number, 'SIGTERM');
          await exited;
        }
        if (dumpDir) rmSync(dumpDir, { recursive: true, force: true });
      },
    };
  }
  throw new Error(`smtp-sink did not start (${SMTP_SINK_BINARY} ${args.join(' ')})`);
}

export type PostfixSink = Awaited<ReturnType<typeof startPostfixSink>>;
