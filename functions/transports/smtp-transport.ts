import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import nodemailer from 'nodemailer';
import { untilAborted, type SendBudget } from '#core/attempt-budget.js';
import { AttemptAbortedError } from '#core/errors.js';
import { isTokenLogin, TokenError, type CredentialSource, type SmtpCredentials } from '#core/credential-source.js';
import { classifyOutcome } from '#core/classify-outcome.js';
import { isLoopbackHost } from '#core/is-loopback-host.js';
import { createSharedRateLimiter, type RateSource } from '#core/rate-limiter.js';
import { TransportError, type TransportFailure } from '#core/transport-failure.js';
import type { MailTransport, OutgoingMessage, SendReceipt } from '#core/mail-transport.js';
import { toMailOptions } from './to-mail-options.js';

/**
 * How the SMTP connection is secured.
 * - `starttls`: plain connect, then STARTTLS is required (`requireTLS`); a server without it gets nothing, not even AUTH.
 * - `implicit`: TLS from the first byte (port 465).
 * - `none`: plaintext; allowed only for a loopback host.
 */
export type SmtpSecurity = 'starttls' | 'implicit' | 'none';

export type SmtpSettings = {
  host: string;
  port: number;
  security: SmtpSecurity;
  /** Parallel connections in the pool. @default 5 */
  maxConnections?: number;
  /** Messages per connection before it is replaced. @default 100 */
  maxMessagesPerConnection?: number;
  /** A pool older than this is replaced before the next send, seconds. @default 300 */
  maxPoolAgeSeconds?: number;
  /**
   * A pool idle for longer than this is discarded rather than trusted, seconds. A frozen Lambda's sockets come back
   * reset, and servers drop idle clients ("421 4.4.2 Idle timeout"). @default 20
   */
  idleResetSeconds?: number;
  /**
   * The relay's send rate in recipients per second, shared by every instance (the SES SMTP interface counts
   * recipients); 0 for no limit. @default 0
   */
  maxSendRate?: RateSource;
  /** Instances that share the rate (the concurrency cap); each sends at most `maxSendRate / rateShares`. @default 1 */
  rateShares?: number;
  /**
   * Connect, greeting and socket (each command's reply) timeouts, milliseconds. They bound a send without a budget;
   * with one, its deadlines cut every wait shorter. @default 5000, 5000, 15000
   */
  connectionTimeoutMs?: number;
  greetingTimeoutMs?: number;
  socketTimeoutMs?: number;
  /** Extra TLS options (a private CA, a pinned server name). Certificates are always verified. */
  tls?: ConnectionOptions;
  /** The name we give in EHLO. @default the OS host name */
  clientName?: string;
  /**
   * The relay offers SMTPUTF8 (RFC 6531), so addresses with a non-ASCII local part may go to it. Without it they are
   * refused before sending (nodemailer would send them raw). Domains always go as A-labels. @default false
   */
  smtpUtf8?: boolean;
};

type Pool = {
  transporter: ReturnType<typeof nodemailer.createTransport>;
  createdAt: number;
  lastUsedAt: number;
  inFlight: number;
  retired: boolean;
  /**
   * The first send's verdict on the session (greeting, TLS, login): until it is known the pool's other sends wait,
   * and if it refused us they fail with the same failure without connecting. A relay that locks an account after a
   * few failed logins then sees one per pool, not one per pooled connection opening at once.
   */
  opened?: Promise<TransportFailure | undefined>;
};

/** Turns a nodemailer error into the facts the classifier needs; the only code that reads nodemailer's error shape. */
export function toSmtpFailure(error: unknown): TransportFailure {
  const e = (error ?? {}) as {
    code?: unknown;
    responseCode?: unknown;
    response?: unknown;
    command?: unknown;
    message?: unknown;
    originalCode?: unknown;
    rejectedErrors?: Array<{ recipient?: unknown; responseCode?: unknown; response?: unknown }>;
  };
  const rejected = Array.isArray(e.rejectedErrors)
    ? e.rejectedErrors.map((r) => ({
        recipient: String(r.recipient ?? ''),
        responseCode: typeof r.responseCode === 'number' ? r.responseCode : undefined,
        response: typeof r.response === 'string' ? r.response : undefined,
      }))
    : undefined;
  return {
    provider: 'smtp',
    code: typeof e.code === 'string' ? e.code : undefined,
    responseCode: typeof e.responseCode === 'number' ? e.responseCode : undefined,
    response: typeof e.response === 'string' ? e.response : undefined,
    command: typeof e.command === 'string' ? e.command : undefined,
    systemCode: typeof e.originalCode === 'string' ? e.originalCode : undefined,
    rejected: rejected && rejected.length > 0 ? rejected : undefined,
    message: typeof e.message === 'string' ? e.message : String(error),
  };
}

/**
 * A token that could not be had, as a send failure: `EOAUTH2` (our client or grant refused: blocked) or `ETOKEN`
 * (the token endpoint had trouble: retry). Nothing reached the SMTP server.
 */
export function toTokenFailure(error: TokenError): TransportFailure {
  const code = error.action === 'blocked' ? 'EOAUTH2' : 'ETOKEN';
  return { provider: 'smtp', code, command: 'AUTH XOAUTH2', message: error.message };
}

/** Checks settings that would make the transport unsafe; throws naming the setting. */
export function assertSafeSmtpSettings(settings: Pick<SmtpSettings, 'host' | 'security' | 'tls'>): void {
  if (settings.security === 'none' && !isLoopbackHost(settings.host)) {
    throw new Error(
      `SMTP security "none" (plaintext) is only allowed for a loopback host, not ${settings.host}; use starttls or implicit`,
    );
  }
  if (settings.tls?.rejectUnauthorized === false) {
    throw new Error('SMTP tls.rejectUnauthorized=false is not allowed; give the server CA in tls.ca instead');
  }
}

/** Per-message progress, carried in the mail options to the stream plugin below. */
type Progress = { finalDotSent: boolean };
const PROGRESS = 'dispatchProgress';

/** The mail option through which a send learns that its message has been written up to the final '.'. */
const COMMIT_OPTION = 'dispatchOnCommit';

/**
 * The last stage of a message on its way to the connection, one per message. At the message's end it asks the send
 * whether it may commit: a send past its budget fails the stream instead, so the connection never writes the final
 * '.'. Then it watches the connection's data stream, which nodemailer pipes it into once the server said 354: that
 * stream ends when the socket has taken all of it, the final '.' included, and from then on a lost connection may
 * hide a delivery. (The message itself is produced into buffers long before, so its own end says nothing.)
 */
class CommitGuard extends Transform {
  constructor(
    private readonly commit: (() => boolean) | undefined,
    private readonly onFinalDot: () => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback) {
    callback(this.commit?.() === false ? new AttemptAbortedError('budget spent before the final dot') : null);
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    destination.once('end', this.onFinalDot);
    return super.pipe(destination, options);
  }
}

/**
 * nodemailer 'stream' plugin: puts a {@link CommitGuard} at the end of a message sent with progress to report (a
 * message moved to a fresh pooled connection is streamed again, through a new guard).
 */
const guardMessage: Parameters<ReturnType<typeof nodemailer.createTransport>['use']>[1] = (mail, done) => {
  const data = mail.data as Record<string, unknown>;
  const progress = data[PROGRESS] as Progress | undefined;
  const commit = data[COMMIT_OPTION] as (() => boolean) | undefined;
  if (progress || commit) {
    const message = mail.message as unknown as { processFunc(f: (input: Readable) => Readable): void };
    message.processFunc((input) => {
      const output = new CommitGuard(commit, () => {
        if (progress) progress.finalDotSent = true;
      });
      pipeline(input, output, () => {});
      return output;
    });
  }
  done();
};

// The server's queue id from its final reply, e.g. "250 2.0.0 Ok: queued as 4Yb2kq1XzLz3x" or "250 OK id=1sX4-0004".
const QUEUE_ID = /(?:queued as|id=|ok:?)\s*<?([A-Za-z0-9._@-]{4,})>?\s*$/i;

/**
 * SMTP over a nodemailer pool, created once per container and reused across invocations.
 * A pool idle past `idleResetSeconds` or older than `maxPoolAgeSeconds` is retired (closed once its sends finish)
 * and replaced; an authentication failure refreshes the credentials and retires the pool, so a rotated secret
 * takes effect on the next attempt.
 */
export function createSmtpTransport(
  settings: SmtpSettings,
  credentials?: CredentialSource<SmtpCredentials>,
  clock: () => number = Date.now,
): MailTransport {
  assertSafeSmtpSettings(settings);
  const idleResetMs = (settings.idleResetSeconds ?? 20) * 1000;
  const maxAgeMs = (settings.maxPoolAgeSeconds ?? 300) * 1000;
  let current: Pool | undefined;
  let refreshCredentials = false;
  const limiter = createSharedRateLimiter(settings.maxSendRate, settings.rateShares ?? 1);

  const retire = (pool: Pool) => {
    pool.retired = true;
    if (current === pool) current = undefined;
    if (pool.inFlight === 0) pool.transporter.close();
  };

  const build = async (): Promise<Pool> => {
    const auth = credentials ? await credentials.get({ refresh: refreshCredentials }) : undefined;
    refreshCredentials = false;
    const transporter = nodemailer.createTransport({
      pool: true,
      host: settings.host,
      port: settings.port,
      secure: settings.security === 'implicit',
      requireTLS: settings.security === 'starttls',
      ignoreTLS: settings.security === 'none',
      auth: !auth
        ? undefined
        : isTokenLogin(auth)
          ? { type: 'OAuth2', user: auth.username, accessToken: auth.accessToken, expires: auth.expiresAtMs }
          : { user: auth.username, pass: auth.password },
      maxConnections: settings.maxConnections ?? 5,
      maxMessages: settings.maxMessagesPerConnection ?? 100,
      // The pool moves a message to a fresh connection only when a reused one closed before a byte of the message
      // was sent (a server's idle drop, a frozen container's dead socket): safe, and what makes a stale pooled
      // connection harmless. Once data went out, a failure is reported to us and the queue retries.
      maxRequeues: 2,
      connectionTimeout: settings.connectionTimeoutMs ?? 5000,
      greetingTimeout: settings.greetingTimeoutMs ?? 5000,
      socketTimeout: settings.socketTimeoutMs ?? 15_000,
      name: settings.clientName,
      tls: { minVersion: 'TLSv1.2', ...settings.tls, rejectUnauthorized: true },
      disableFileAccess: true,
      disableUrlAccess: true,
      logger: false,
    });
    transporter.use('stream', guardMessage);
    if (auth && credentials && isTokenLogin(auth)) {
      // Each new pooled connection asks for a token: the cached one until shortly before it expires, a fresh one
      // (`renew`) when the server refused the last (XOAUTH2's 334 error challenge), once.
      type Provided = (error: Error | null, token?: string, expires?: number) => void;
      transporter.set('oauth2_provision_cb', (_user: string, renew: boolean, callback: Provided) => {
        credentials.get({ refresh: renew }).then(
          (login) =>
            isTokenLogin(login)
              ? callback(null, login.accessToken, login.expiresAtMs)
              : callback(new Error('the relay secret no longer holds an OAuth2 grant')),
          (error: Error) => callback(error),
        );
      });
    }
    const now = clock();
    return { transporter, createdAt: now, lastUsedAt: now, inFlight: 0, retired: false };
  };

  let building: Promise<Pool> | undefined;
  const acquire = async (): Promise<Pool> => {
    const now = clock();
    if (current && (now - current.lastUsedAt > idleResetMs || now - current.createdAt > maxAgeMs)) retire(current);
    if (current) return current;
    building ??= build().finally(() => {
      building = undefined;
    });
    const pool = await building;
    current ??= pool;
    return current;
  };

  return {
    name: 'smtp',
    smtpUtf8: settings.smtpUtf8 === true,
    async send(message: OutgoingMessage, budget?: SendBudget): Promise<SendReceipt> {
      if (budget?.signal.aborted) throw new AttemptAbortedError('no time left to start the send');
      let pool: Pool;
      try {
        pool = await acquire();
      } catch (error) {
        if (error instanceof TokenError) throw new TransportError(toTokenFailure(error), { cause: error });
        // Fetching credentials failed: our setup, not the message.
        throw new TransportError(
          { provider: 'smtp', code: 'ECONFIG', message: `SMTP credentials unavailable: ${(error as Error).message}` },
          { cause: error },
        );
      }
      pool.inFlight += 1;
      pool.lastUsedAt = clock();
      const progress: Progress = { finalDotSent: false };
      const cut = budget ? cutOff(budget) : undefined;
      let openSession: ((refused: TransportFailure | undefined) => void) | undefined;
      let sending = false;
      try {
        if (pool.opened) {
          const refused = await untilAborted(pool.opened, budget?.signal);
          if (refused) throw new TransportError(refused, { cause: new Error(NOT_TRIED) });
        } else {
          pool.opened = new Promise((resolve) => {
            openSession = resolve;
          });
        }
        // Paced once the pool's session is known: a send does not take its slot and then wait on a login, which would
        // bunch the sends paced meanwhile into one burst at the relay.
        await limiter.take(message.to.length + message.cc.length + message.bcc.length, budget?.signal);
        sending = true;
        const options = { ...toMailOptions(message), [PROGRESS]: progress, ...cut?.mailOptions } as ReturnType<
          typeof toMailOptions
        >;
        const info = await pool.transporter.sendMail(options);
        const rejectedErrors = (info as { rejectedErrors?: unknown[] }).rejectedErrors ?? [];
        const failure = toSmtpFailure({ rejectedErrors });
        return {
          providerMessageId: typeof info.response === 'string' ? QUEUE_ID.exec(info.response)?.[1] : undefined,
          accepted: ((info.accepted ?? []) as Array<string | { address: string }>).map((a) =>
            typeof a === 'string' ? a : a.address,
          ),
          rejected: failure.provider === 'smtp' ? (failure.rejected ?? []) : [],
        };
      } catch (error) {
        // Waiting on the pool's first session ended it: nothing was sent.
        if (!sending) throw error;
        if (cut?.aborted() === 'before-commit') {
          const message = 'the SMTP send ran out of its budget before the final dot; nothing was sent';
          throw new AttemptAbortedError(message, { cause: error });
        }
        // Past '.', the answer was given up: a timeout with the data sent (ambiguous).
        const smtpFailure = () =>
          cut?.aborted() === 'after-commit'
            ? { ...toSmtpFailure(error), code: 'ETIMEDOUT', command: 'DATA', dataSent: true }
            : { ...toSmtpFailure(error), dataSent: progress.finalDotSent };
        // A token fetch that failed inside nodemailer comes back as the TokenError itself, coded EAUTH.
        const failure = error instanceof TokenError ? toTokenFailure(error) : smtpFailure();
        // The session itself was refused (login, TLS, greeting): the sends waiting on this pool do not try again, and
        // the next send (the breaker's probe) opens a new pool.
        if (isSessionRefusal(failure)) {
          openSession?.(failure);
          retire(pool);
        }
        // A rate reply (454, 421 4.7.x "rate") slows the whole instance down, not only this job.
        if (classifyOutcome(failure).action === 'throttled') limiter.slowDown();
        if (failure.provider === 'smtp' && ['EAUTH', 'ENOAUTH', 'EOAUTH2', 'ETOKEN'].includes(failure.code ?? '')) {
          refreshCredentials = true;
          retire(pool);
        } else if (
          failure.provider === 'smtp' &&
          (failure.code === 'ECONNECTION' || failure.code === 'ESOCKET' || failure.code === 'ETIMEDOUT')
        ) {
          // One broken socket is reason enough not to trust its siblings.
          retire(pool);
        }
        throw new TransportError(failure, { cause: error });
      } finally {
        // Anything else (a delivery, a refused recipient, a lost connection) says the session can be had.
        openSession?.(undefined);
        cut?.dispose();
        pool.inFlight -= 1;
        pool.lastUsedAt = clock();
        if (pool.retired && pool.inFlight === 0) pool.transporter.close();
      }
    },
    async close() {
      if (current) retire(current);
    },
  };
}

/** Why a send waiting on its pool's first session failed without connecting. */
const NOT_TRIED =
  'not tried: the first session of this connection pool was refused, and another login would not fix it';

/** nodemailer's commands of the session itself (the greeting is `CONN`), before any message. */
const SESSION_COMMAND = /^(?:CONN|EHLO|HELO|LHLO|STARTTLS|AUTH\b)/;

/**
 * A refusal of the session itself (greeting, EHLO, TLS, login) that the classifier calls our setup: every send over
 * the same settings would meet it. A sender refused at MAIL FROM is not one (it may be the job's own sender).
 */
function isSessionRefusal(failure: TransportFailure): boolean {
  return (
    failure.provider === 'smtp' &&
    (failure.command === undefined || SESSION_COMMAND.test(failure.command)) &&
    classifyOutcome(failure).action === 'blocked'
  );
}

/**
 * A send's cut-off: one AbortSignal for nodemailer (its pool then closes the connection delivering the message),
 * aborted when the budget's `signal` fires before the message reached its final '.', or when `finishSignal` fires
 * while the answer to '.' is still awaited. Which of the two happened decides whether anything may have been sent.
 */
function cutOff(budget: SendBudget) {
  const controller = new AbortController();
  let committed = false;
  let aborted: 'before-commit' | 'after-commit' | undefined;
  const onCommitDeadline = () => {
    if (committed || aborted) return;
    aborted = 'before-commit';
    controller.abort(budget.signal.reason);
  };
  const onFinishDeadline = () => {
    if (aborted) return;
    aborted = committed ? 'after-commit' : 'before-commit';
    controller.abort(budget.finishSignal.reason);
  };
  budget.signal.addEventListener('abort', onCommitDeadline, { once: true });
  budget.finishSignal.addEventListener('abort', onFinishDeadline, { once: true });
  return {
    mailOptions: {
      signal: controller.signal,
      // Called by the stream guard at the end of the message, just before nodemailer writes '.': true commits.
      [COMMIT_OPTION]: () => {
        if (aborted || budget.signal.aborted) return false;
        committed = true;
        return true;
      },
    },
    aborted: () => aborted,
    dispose() {
      budget.signal.removeEventListener('abort', onCommitDeadline);
      budget.finishSignal.removeEventListener('abort', onFinishDeadline);
    },
  };
}
