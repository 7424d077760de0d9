import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { connect, createServer as createTcpServer, type Socket } from 'node:net';
import { LOOPBACK, listenOnLoopback } from '#local/loopback.js';
import { billingUnits } from './cost.js';

/**
 * What a request or an SMTP command costs away from loopback, in ms: the round trip plus the service's own time.
 * `http` is keyed by the service as it signs its requests (`dynamodb`, `sqs`, `sns`, `s3`, `ses`), optionally with
 * the operation (`sns.PublishBatch`); `smtp` by the command's verb (`MAIL`, `RCPT`, `DATA`, `EHLO`, ...), with
 * `connect` for the TCP and greeting exchange, `end` for the message's final '.', and `command` for any other.
 */
export type LatencyProfile = {
  name: string;
  description: string;
  http: Record<string, number>;
  smtp: { connect: number; command: number; end: number } & Record<string, number>;
};

/**
 * The profiles the benchmarks run under; the README cites the published figures behind each number. AWS's own
 * services stay in the function's region in every profile (the stack deploys them together); what moves is the
 * relay.
 */
export const LATENCY_PROFILES = {
  'same-region': {
    name: 'same-region',
    description: 'the function, its tables, queue and topic, and SES (API or SMTP endpoint) in one region',
    http: { dynamodb: 5, sqs: 8, sns: 10, s3: 20, ses: 70 },
    smtp: { connect: 5, command: 2, end: 50 },
  },
  'cross-region': {
    name: 'cross-region',
    description: 'as same-region, but the relay (SES or SMTP) in another region, about 80 ms away',
    http: { dynamodb: 5, sqs: 8, sns: 10, s3: 20, ses: 150 },
    smtp: { connect: 160, command: 80, end: 130 },
  },
  'slow-relay': {
    name: 'slow-relay',
    description: 'AWS services in region, a third-party SMTP relay 20 ms away that takes 150 ms to accept a message',
    http: { dynamodb: 5, sqs: 8, sns: 10, s3: 20, ses: 150 },
    smtp: { connect: 40, command: 20, end: 170 },
  },
} satisfies Record<string, LatencyProfile>;

export type LatencyProfileName = keyof typeof LATENCY_PROFILES;

/** Told of each request or command (as counted) and the delay it was given, ms. */
type Observer = (key: string, ms: number) => void;

/**
 * Requests (or commands) seen per `service.Operation` (or `smtp.VERB`), with the bytes they carried and, for AWS
 * requests, the billing units they add up to (bench/cost.ts `billingUnits`).
 */
export type RequestCounts = Record<
  string,
  { count: number; bytes: number; units?: { write: number; read: number }; heldMs?: number; overMs?: number }
>;

/** The service a SigV4-signed request is for, from its credential scope (`.../<region>/<service>/aws4_request`). */
export function signedService(authorization: string | undefined): string {
  return /Credential=[^,]*\/([a-z0-9-]+)\/aws4_request/.exec(authorization ?? '')?.[1] ?? 'unknown';
}

/**
 * The operation of an AWS request: the JSON protocol's `X-Amz-Target` (`DynamoDB_20120810.PutItem`), the query
 * protocol's `Action` field, or for REST APIs (S3, SES v2) the method and the path's first segments.
 */
export function operationOf(method: string, url: string, headers: IncomingMessage['headers'], body: Buffer): string {
  const target = headers['x-amz-target'];
  if (typeof target === 'string') return target.slice(target.lastIndexOf('.') + 1);
  const form = String(headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
  const action = form ? new URLSearchParams(body.subarray(0, 4096).toString('latin1')).get('Action') : null;
  if (action) return action;
  const path = url.split('?')[0] ?? '';
  return `${method} ${path.startsWith('/v2/') ? path.split('/').slice(0, 4).join('/') : 'object'}`;
}

/** The delay `profile` gives `key` (`service.Operation`), falling back to the service's. */
const httpDelay = (profile: LatencyProfile | undefined, service: string, operation: string) =>
  profile ? (profile.http[`${service}.${operation}`] ?? profile.http[service] ?? 0) : 0;

const bump = (counts: RequestCounts, key: string, bytes: number) => {
  const entry = (counts[key] ??= { count: 0, bytes: 0 });
  entry.count += 1;
  entry.bytes += bytes;
  return entry;
};

/** A proxy's profile, switched with `use`, and what it counted since `takeCounts` was last called. */
function proxyState(initial: LatencyProfile | undefined) {
  const state = {
    profile: initial,
    counts: {} as RequestCounts,
    use(next: LatencyProfile | undefined) {
      state.profile = next;
    },
    /** The counts since the last call (or the start), and a fresh start. */
    takeCounts(): RequestCounts {
      const taken = state.counts;
      state.counts = {};
      return taken;
    },
  };
  return state;
}

/** Longest request body counted for its billing units (the AWS APIs' own limits are below it). */
const MAX_BODY_BYTES = 16 * 1024 * 1024;

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Latency injected into an AWS emulator's own HTTP server: each request reaches the emulator at once, and its answer
 * goes back no sooner than its service's and operation's delay under the current profile after the request arrived.
 * The profile's figure is the whole request as the client sees it, the service's own time included, so the
 * emulator's time is not added on top: it only shows when the emulator takes longer than the figure (a burst
 * queueing on its one thread), and then the answer goes as soon as it is ready; that overrun is counted per
 * operation (`overMs`). No hop of its own: a proxy in front would add its own time to every request. The body is
 * seen as the emulator reads it (for the operation and the billing units), never taken from it. Counts every
 * request by `service.Operation`.
 */
export function delayAnswers(server: Server, initial?: LatencyProfile, observe?: Observer) {
  const state = proxyState(initial);
  const emulator = server.listeners('request') as RequestListener[];
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const arrived = performance.now();
    const chunks: Buffer[] = [];
    let size = 0;
    let delay = 0;
    let entry: RequestCounts[string] | undefined;
    // The whole body is in once the parser pushes its end, before the emulator can answer: the request is counted
    // and its delay known then.
    const push = req.push.bind(req);
    req.push = (chunk: unknown, encoding?: BufferEncoding) => {
      if (chunk === null) {
        const body = Buffer.concat(chunks);
        const service = signedService(req.headers.authorization);
        const operation = operationOf(req.method ?? 'GET', req.url ?? '/', req.headers, body);
        entry = bump(state.counts, `${service}.${operation}`, size);
        const units = billingUnits(service, operation, body);
        entry.units = { write: (entry.units?.write ?? 0) + units.write, read: (entry.units?.read ?? 0) + units.read };
        delay = httpDelay(state.profile, service, operation);
        observe?.(`${service}.${operation}`, delay);
      } else if (Buffer.isBuffer(chunk)) {
        size += chunk.length;
        if (size <= MAX_BODY_BYTES) chunks.push(chunk);
      }
      return push(chunk, encoding);
    };
    // The answer is held whole (head, body and end, in order) until its time.
    const held: Array<() => void> = [];
    let released = false;
    const release = () => {
      released = true;
      for (const step of held.splice(0)) step();
    };
    const hold =
      <A extends unknown[], R>(original: (...args: A) => R, result: (args: A) => R, last = false) =>
      (...args: A): R => {
        if (released) return original(...args);
        held.push(() => original(...args));
        if (last) {
          const wait = arrived + delay - performance.now();
          if (wait > 0) setTimeout(release, wait);
          else {
            if (delay > 0 && entry) entry.overMs = (entry.overMs ?? 0) - wait;
            release();
          }
        }
        return result(args);
      };
    res.writeHead = hold(res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse, () => res) as never;
    res.write = hold(res.write.bind(res) as (...args: unknown[]) => boolean, () => true) as never;
    res.end = hold(res.end.bind(res) as (...args: unknown[]) => ServerResponse, () => res, true) as never;
    for (const listener of emulator) listener.call(server, req, res);
  });
  return { use: state.use, takeCounts: state.takeCounts };
}

/** The end of a message's data: CRLF '.' CRLF (the data's own first line cannot be a lone '.' once dot-stuffed). */
const END_OF_DATA = Buffer.from('\r\n.\r\n');
/** Commands counted by name; anything else (an AUTH continuation, say) is a `LINE`. */
const SMTP_VERBS = new Set([
  'EHLO',
  'HELO',
  'STARTTLS',
  'AUTH',
  'MAIL',
  'RCPT',
  'DATA',
  'RSET',
  'NOOP',
  'QUIT',
  'VRFY',
]);
/** Longest command line the proxy waits for before passing bytes on as they are. */
const MAX_LINE = 4096;

/** The DATA command: the verb alone on its line (it takes no parameter). */
const isDataCommand = (line: Buffer) => /^DATA\r?\n$/i.test(line.toString('latin1'));

/** The last line of an SMTP reply: its code, then a space (or nothing), where a line before it has a hyphen. */
const isLastReplyLine = (line: Buffer) => line.length < 4 || line[3] !== 0x2d;

/**
 * A TCP proxy on 127.0.0.1 in front of a plaintext SMTP server that makes each of the relay's answers reach the client
 * its delay under the current profile after what it answers: the greeting `connect` after the connection, each
 * command's reply its verb's delay (or `command`) after the command line, and the reply to the message's final '.'
 * `end` after it. As with the AWS services (delayAnswers), the profile's figure is the whole exchange as the client
 * sees it, the server's own time included: the client's bytes reach the server at once, its replies are held until
 * their time, and a server slower than the figure (a busy machine) shows as an overrun counted per verb (`overMs`),
 * its answer passed on as soon as it comes. Replies keep their order: a pipelined command's reply comes no sooner than
 * the one before it. Bytes pass unchanged and in order, in both directions. Counts commands as `smtp.VERB` (the data
 * as `smtp.END`, with its size).
 */
export async function startSmtpLatencyProxy(
  target: { host: string; port: number },
  initial?: LatencyProfile,
  observe?: Observer,
) {
  const state = proxyState(initial);
  const sockets = new Set<Socket>();
  const server = createTcpServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    // Each write goes at once: a reply or a command held back for an acknowledgement would add its own delay.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    // The replies the client waits for, in order: when each is due, and the count it belongs to.
    const expected: Array<{ due: number; delay: number; verb: string; entry: RequestCounts[string] }> = [];
    let lastDue = performance.now();
    /** A reply the client will wait for, `ms` after now, and no sooner than the one before it. */
    const expect = (key: string, ms: number, bytes: number) => {
      observe?.(key, ms);
      const entry = bump(state.counts, key, bytes);
      const now = performance.now();
      // What this exchange adds to the connection's time: a pipelined command shares the wait of the one before it.
      entry.heldMs = (entry.heldMs ?? 0) + Math.min(ms, Math.max(0, now + ms - lastDue));
      lastDue = Math.max(lastDue, now + ms);
      expected.push({ due: lastDue, delay: ms, verb: key, entry });
    };
    const verbDelay = (verb: string) => (state.profile ? (state.profile.smtp[verb] ?? state.profile.smtp.command) : 0);
    expect('smtp.CONNECT', state.profile?.smtp.connect ?? 0, 0);

    // Client to server: passed on at once, read only to know which replies to expect.
    let pending: Buffer = Buffer.alloc(0);
    // In the data phase: the last bytes already passed on, so a terminator split across chunks is still found.
    let tail: Buffer | undefined;
    let dataBytes = 0;
    const take = (chunk: Buffer) => {
      if (!upstream.destroyed) upstream.write(chunk);
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      // Every turn consumes bytes or returns: each line's reply is expected before the server can send it.
      while (pending.length > 0) {
        if (tail) {
          const found = Buffer.concat([tail, pending]).indexOf(END_OF_DATA);
          const upTo = found === -1 ? pending.length : found + END_OF_DATA.length - tail.length;
          dataBytes += upTo;
          if (found === -1) tail = Buffer.concat([tail, pending]).subarray(-(END_OF_DATA.length - 1));
          else {
            expect('smtp.END', state.profile?.smtp.end ?? 0, dataBytes);
            tail = undefined;
          }
          pending = pending.subarray(upTo);
          continue;
        }
        const eol = pending.indexOf('\n');
        if (eol === -1) {
          if (pending.length > MAX_LINE) pending = Buffer.alloc(0);
          return;
        }
        const line = pending.subarray(0, eol + 1);
        const word = /^[A-Za-z]+/.exec(line.subarray(0, 16).toString('latin1'))?.[0]?.toUpperCase() ?? '';
        // DATA takes no parameter: a line that only begins with it (a base64 AUTH continuation) is no command.
        const verb = SMTP_VERBS.has(word) && (word !== 'DATA' || isDataCommand(line)) ? word : 'LINE';
        expect(`smtp.${verb}`, verbDelay(verb), line.length);
        pending = pending.subarray(line.length);
      }
    };
    /** The data phase begins once the server takes DATA (354), not before: a refused DATA is followed by commands. */
    const enterDataPhase = () => {
      // The DATA line's own CRLF counts as the terminator's first: an empty message is just '.' CRLF.
      tail = Buffer.from('\r\n');
      dataBytes = 0;
    };

    // Server to client: each whole reply held until it is due, then passed on; one timer drains them in order.
    let reply: Buffer = Buffer.alloc(0);
    const ready: Array<{ at: number; bytes: Buffer }> = [];
    let timer: NodeJS.Timeout | undefined;
    const close = () => {
      if (timer) clearTimeout(timer);
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    const drain = () => {
      timer = undefined;
      while (ready.length > 0 && (ready[0] as { at: number }).at <= performance.now()) {
        const unit = ready.shift() as { bytes: Buffer };
        if (!client.destroyed) client.write(unit.bytes);
      }
      if (ready.length > 0) timer = setTimeout(drain, Math.max(0, (ready[0] as { at: number }).at - performance.now()));
      else if (upstream.destroyed) close();
    };
    let lastReplyAt = 0;
    const answer = (chunk: Buffer) => {
      reply = reply.length === 0 ? chunk : Buffer.concat([reply, chunk]);
      let start = 0;
      for (let eol = reply.indexOf('\n'); eol !== -1; eol = reply.indexOf('\n', start)) {
        const line = reply.subarray(start, eol + 1);
        start = eol + 1;
        if (!isLastReplyLine(line)) continue;
        const bytes = reply.subarray(0, start);
        reply = reply.subarray(start);
        start = 0;
        // A reply nothing asked for (a server closing an idle connection) goes at once, after those before it.
        const due = expected.shift();
        const now = performance.now();
        // Late by what passed its due time after the reply before it came: pipelined replies share one lateness.
        const late = now - Math.max(due?.due ?? now, lastReplyAt);
        if (due && due.delay > 0 && late > 0) due.entry.overMs = (due.entry.overMs ?? 0) + late;
        lastReplyAt = now;
        if (due?.verb === 'smtp.DATA' && bytes[0] === 0x33) enterDataPhase();
        ready.push({ at: Math.max(due?.due ?? now, ready.at(-1)?.at ?? now), bytes: Buffer.from(bytes) });
      }
      // A line longer than any reply: passed on as it is.
      if (reply.length > MAX_LINE) {
        ready.push({ at: ready.at(-1)?.at ?? performance.now(), bytes: reply });
        reply = Buffer.alloc(0);
      }
      if (!timer) drain();
    };
    client.on('data', take);
    upstream.on('data', answer);
    // A server that closes after its last reply (221 to QUIT), or fails after it, closes the client once its replies
    // have gone, the bytes of an unfinished line after them.
    upstream.on('close', () => {
      if (reply.length > 0) ready.push({ at: ready.at(-1)?.at ?? performance.now(), bytes: reply });
      reply = Buffer.alloc(0);
      if (ready.length === 0) close();
      else if (!timer) drain();
    });
    upstream.on('error', () => {});
    client.on('error', close);
    client.on('close', close);
  });
  const port = await listenOnLoopback(server);
  return {
    host: LOOPBACK,
    port,
    use: state.use,
    takeCounts: state.takeCounts,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
