import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { LOOPBACK, listenOnLoopback } from './loopback.js';
import type { TlsCertificate } from './tls-certificate.js';

/** Where in the SMTP dialogue a fault strikes. `end` is the reply to the final '.', after the data was sent. */
export type SmtpStage = 'connect' | 'auth' | 'mail' | 'rcpt' | 'data' | 'end';

/**
 * A fault: at `stage`, for an address matching `address` (a glob like `*@bounce.test`; the sender at `mail`,
 * the recipient at `rcpt`, any recipient at `data`/`end`), answer `reply`, or drop the socket, after `delayMs`.
 * `times` limits how often it fires (default: always).
 */
export type SmtpFaultRule = {
  stage: SmtpStage;
  address?: string;
  reply?: { code: number; message: string };
  drop?: boolean;
  delayMs?: number;
  times?: number;
  /** Fire only with this probability (0–1), from the sink's seeded generator. @default 1 */
  probability?: number;
  /** At `end`: keep the message as received before answering or dropping (the server has it; the client may not know). */
  keep?: boolean;
  /** Called when the rule fires, before it answers (tests kill a client process here). */
  run?: () => void;
};

export type ReceivedMessage = {
  from: string;
  to: string[];
  raw: Buffer;
  queueId: string;
  secure: boolean;
  user?: string;
  receivedAt: number;
};

export type SmtpSinkOptions = {
  /** @default 0 (any free port) */
  port?: number;
  /** STARTTLS (or implicit TLS) with this certificate; without it the server speaks plaintext only. */
  tls?: TlsCertificate;
  /** Offer STARTTLS? (false models a downgrading server). @default true when tls is given */
  offerStartTls?: boolean;
  /** TLS from the first byte (port-465 style). @default false */
  implicitTls?: boolean;
  /** Require AUTH with these credentials. */
  credentials?: { username: string; password: string };
  rules?: SmtpFaultRule[];
  /** Write every accepted message as `<queueId>.eml` here. */
  outboxDir?: string;
  /** Idle timeout before the server closes a connection. @default 60000 */
  socketTimeoutMs?: number;
  /** Seed of the generator behind `probability`. @default 1 */
  seed?: number;
  /** Called with every accepted message (the local twin turns refusals into bounces through this too). */
  onMessage?: (message: ReceivedMessage) => void;
  /**
   * Enforce a send rate as SES does, in recipients per second across all connections: a token bucket holding one
   * second's worth; a recipient over it gets "454 Throttling failure: Maximum sending rate exceeded."
   */
  maxRecipientsPerSecond?: number;
  /** Called when a recipient is refused with a 5xx at RCPT or end of data. */
  onRefusal?: (refusal: { from: string; recipient: string; reply: { code: number; message: string } }) => void;
};

const toRegExp = (glob: string) =>
  new RegExp(
    `^${glob
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    'i',
  );

/**
 * An SMTP server on 127.0.0.1 that accepts mail into memory (and optionally `.eml` files) and can answer any reply
 * code at any stage, drop the socket, or stall: the real peer the transport is tested against.
 */
export async function startSmtpSink(options: SmtpSinkOptions = {}) {
  const rules: Array<SmtpFaultRule & { fired: number }> = (options.rules ?? []).map((r) => ({ ...r, fired: 0 }));
  const received: ReceivedMessage[] = [];
  const authAttempts: Array<{ secure: boolean; username?: string }> = [];
  const sockets = new Map<string, Socket>();
  let connections = 0;

  // A seeded generator, so that a run of probabilistic faults can be repeated.
  let seed = options.seed ?? 1;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const pick = (stage: SmtpStage, addresses: string[]) =>
    rules.find(
      (r) =>
        r.stage === stage &&
        (r.times === undefined || r.fired < r.times) &&
        (!r.address || addresses.some((a) => toRegExp(r.address as string).test(a))) &&
        (r.probability === undefined || random() < r.probability),
    );

  const rateReplies: number[] = [];
  const rate = options.maxRecipientsPerSecond ?? 0;
  let tokens = rate;
  let refilledAt = Date.now();
  /** Takes one recipient from the bucket; false when the sender is over the rate. */
  const withinRate = () => {
    if (rate <= 0) return true;
    const now = Date.now();
    tokens = Math.min(rate, tokens + ((now - refilledAt) / 1000) * rate);
    refilledAt = now;
    if (tokens < 1) {
      rateReplies.push(now);
      return false;
    }
    tokens -= 1;
    return true;
  };

  const socketOf = (session: SMTPServerSession) => sockets.get(`${session.remotePort}`);

  /** Applies a matching rule; resolves true when the rule answered (the caller must not answer again). */
  const applyFault = async (
    stage: SmtpStage,
    addresses: string[],
    session: SMTPServerSession,
    callback: (err?: Error | null) => void,
    keep?: () => void,
  ): Promise<boolean> => {
    const rule = pick(stage, addresses);
    if (!rule) return false;
    rule.fired += 1;
    if (rule.keep) keep?.();
    rule.run?.();
    if (rule.delayMs) await new Promise((resolve) => setTimeout(resolve, rule.delayMs));
    if (rule.drop) {
      socketOf(session)?.destroy();
      return true;
    }
    if (rule.reply) {
      const error = Object.assign(new Error(rule.reply.message), { responseCode: rule.reply.code });
      if (rule.reply.code >= 500 && (stage === 'rcpt' || stage === 'end')) {
        for (const recipient of addresses)
          options.onRefusal?.({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            recipient,
            reply: rule.reply,
          });
      }
      callback(error);
      return true;
    }
    return false;
  };

  const server = new SMTPServer({
    secure: options.implicitTls ?? false,
    key: options.tls?.key,
    cert: options.tls?.cert,
    hideSTARTTLS: !options.tls || options.offerStartTls === false,
    // The sink accepts plaintext AUTH so that a client that sends it can be caught doing so.
    allowInsecureAuth: true,
    authOptional: !options.credentials,
    authMethods: ['PLAIN', 'LOGIN'],
    // A server that does not offer STARTTLS must not accept it either (smtp-server would, with a built-in cert).
    disabledCommands: [
      ...(options.credentials ? [] : ['AUTH']),
      ...(!options.tls || options.offerStartTls === false ? ['STARTTLS'] : []),
    ],
    socketTimeout: options.socketTimeoutMs ?? 60_000,
    size: 40 * 1024 * 1024,
    logger: false,
    banner: 'email-dispatch test sink',
    async onConnect(session, callback) {
      connections += 1;
      interceptDataCommand(session);
      if (!(await applyFault('connect', [], session, callback))) callback();
    },
    onAuth(auth, session, callback) {
      authAttempts.push({ secure: session.secure, username: auth.username });
      void (async () => {
        if (await applyFault('auth', [], session, callback as (err?: Error | null) => void)) return;
        const ok =
          options.credentials &&
          auth.username === options.credentials.username &&
          auth.password === options.credentials.password;
        if (!ok)
          return callback(Object.assign(new Error('5.7.8 Authentication credentials invalid'), { responseCode: 535 }));
        callback(null, { user: auth.username });
      })();
    },
    onMailFrom(address, session, callback) {
      void applyFault('mail', [address.address], session, callback).then((answered) => answered || callback());
    },
    onRcptTo(address, session, callback) {
      if (!withinRate()) {
        return callback(
          Object.assign(new Error('Throttling failure: Maximum sending rate exceeded.'), { responseCode: 454 }),
        );
      }
      void applyFault('rcpt', [address.address], session, callback).then((answered) => answered || callback());
    },
    onData(stream, session, callback) {
      const recipients = session.envelope.rcptTo.map((r) => r.address);
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        void (async () => {
          const queueId = randomBytes(6).toString('hex').toUpperCase();
          const message: ReceivedMessage = {
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: recipients,
            raw: Buffer.concat(chunks),
            queueId,
            secure: session.secure,
            user: session.user as string | undefined,
            receivedAt: Date.now(),
          };
          const keep = () => received.push(message);
          if (await applyFault('end', recipients, session, callback, keep)) return;
          received.push(message);
          if (options.outboxDir) {
            mkdirSync(options.outboxDir, { recursive: true });
            writeFileSync(join(options.outboxDir, `${Date.now()}-${queueId}.eml`), message.raw);
          }
          options.onMessage?.(message);
          callback(null, `2.0.0 Ok: queued as ${queueId}`);
        })();
      });
    },
  });
  type ConnectionInternals = {
    session: SMTPServerSession;
    send(code: number, message: string): void;
    handler_DATA(command: unknown, callback: () => void): void;
  };
  // smtp-server has no hook for the DATA command itself (it answers 354 on its own): a 'data' fault wraps the
  // connection's DATA handler to answer the command instead, as a server refusing DATA does.
  function interceptDataCommand(session: SMTPServerSession) {
    const connection = [...(server as unknown as { connections: Set<ConnectionInternals> }).connections].find(
      (c) => c.session === session,
    );
    if (!connection) return;
    const original = connection.handler_DATA.bind(connection);
    connection.handler_DATA = (command, callback) => {
      const recipients = connection.session.envelope.rcptTo.map((r) => r.address);
      const rule = pick('data', recipients);
      if (!rule) return original(command, callback);
      rule.fired += 1;
      setTimeout(() => {
        if (rule.drop) socketOf(connection.session)?.destroy();
        else if (rule.reply) connection.send(rule.reply.code, rule.reply.message);
        else return original(command, callback);
        callback();
      }, rule.delayMs ?? 0);
    };
  }

  server.server.on('connection', (socket: Socket) => {
    const key = `${socket.remotePort}`;
    sockets.set(key, socket);
    socket.on('close', () => sockets.delete(key));
  });
  server.on('error', () => {});

  const port = await listenOnLoopback(server.server, options.port);

  return {
    host: LOOPBACK,
    port,
    received,
    authAttempts,
    /** When each "454 Throttling failure" was answered (with `maxRecipientsPerSecond`). */
    rateReplies,
    get connections() {
      return connections;
    },
    get openSockets() {
      return sockets.size;
    },
    /** Adds a fault rule; it applies to commands from now on. */
    addRule(rule: SmtpFaultRule) {
      rules.push({ ...rule, fired: 0 });
    },
    clearRules() {
      rules.length = 0;
    },
    /** Destroys every open connection, as a server does to idle clients or a network does to a frozen container. */
    dropConnections() {
      for (const socket of sockets.values()) socket.destroy();
    },
    async stop() {
      for (const socket of sockets.values()) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export type SmtpSink = Awaited<ReturnType<typeof startSmtpSink>>;
