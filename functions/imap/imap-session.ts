import { ImapFlow } from 'imapflow';
import type { ConnectionOptions } from 'node:tls';
import { isTokenLogin, type CredentialSource, type MailLogin } from '#core/credential-source.js';
import { isLoopbackHost } from '#core/is-loopback-host.js';
import type { FetchedMessage, MailboxSession, MailboxStatus, MessageRef } from '#core/mailbox/ports.js';

export type ImapSettings = {
  host: string;
  port: number;
  /** `implicit` (993), `starttls` (required, 143), or `none` (loopback only). */
  security: 'implicit' | 'starttls' | 'none';
  mailbox: string;
  /** Extra TLS options (a private CA). Certificates are always verified. */
  tls?: ConnectionOptions;
  /** Bound on any single network step, milliseconds. @default 20000 */
  stepTimeoutMs?: number;
};

/**
 * An IMAP failure, with imapflow's facts lifted out; `authentication` says the credentials were refused, and
 * `tokenExpired` that the server ended a signed-in session because its access token expired.
 */
export class ImapError extends Error {
  readonly authentication: boolean;
  readonly tokenExpired: boolean;
  /** The connection went away under a command (a server's BYE, a reset); a new session may succeed. */
  readonly connectionLost: boolean;

  constructor(
    message: string,
    options: { authentication?: boolean; tokenExpired?: boolean; connectionLost?: boolean; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'ImapError';
    this.authentication = options.authentication ?? false;
    this.tokenExpired = options.tokenExpired ?? false;
    this.connectionLost = options.connectionLost ?? this.tokenExpired;
  }
}

// Exchange Online ends a session whose token expired: "* BYE Session invalidated - AccessTokenExpired".
const TOKEN_EXPIRED = /AccessTokenExpired|token (?:has )?expired/i;
// imapflow's codes for a command that found the connection gone.
const CONNECTION_GONE = new Set(['NoConnection', 'EConnectionClosed', 'StateLogout']);

/** Turns an imapflow error into ours; the only code that reads imapflow's error shape. */
export function toImapError(error: unknown, byeReason?: string): ImapError {
  if (error instanceof ImapError) return error;
  const e = (error ?? {}) as {
    message?: string;
    code?: string;
    authenticationFailed?: boolean;
    serverResponseCode?: string;
    responseText?: string;
    reason?: unknown;
  };
  // imapflow flags every NO to a sign-in as authenticationFailed; RFC 5530's UNAVAILABLE is the server's own trouble
  // (Dovecot: "NO [UNAVAILABLE] Temporary authentication failure." when it cannot check a token), not a refusal.
  const authentication =
    (e.authenticationFailed === true || e.serverResponseCode === 'AUTHENTICATIONFAILED') &&
    e.serverResponseCode !== 'UNAVAILABLE';
  // imapflow puts the text of the server's BYE in `reason` of the NoConnection error every pending command gets; a
  // command started after the BYE gets none, so the session passes the client's `byeReason` too.
  const bye = typeof e.reason === 'string' ? e.reason : byeReason;
  const tokenExpired = bye !== undefined && TOKEN_EXPIRED.test(bye);
  const text = `${e.code ? `${e.code}: ` : ''}${e.responseText ?? e.message ?? String(error)}`;
  return new ImapError(`${text}${bye ? ` (BYE ${bye.slice(0, 120)})` : ''}`, {
    authentication,
    tokenExpired,
    connectionLost: tokenExpired || (e.code !== undefined && CONNECTION_GONE.has(e.code)),
    cause: error,
  });
}

/** Resolves, rejects, or fails with a timeout, and runs `onTimeout` (closing the socket) when the bound passes. */
async function bounded<T>(work: Promise<T>, ms: number, what: string, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          onTimeout();
          reject(new ImapError(`IMAP ${what} timed out after ${ms} ms`));
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Opens a mailbox with imapflow: TLS as configured (plaintext only for loopback), an `error` listener so a dropped
 * socket cannot crash the process, every step bounded, the mailbox selected (with CONDSTORE where offered).
 * The session is for one run: imapflow clients are not reused after logout.
 */
export async function openImapSession(
  settings: ImapSettings,
  credentials: CredentialSource<MailLogin>,
  onError: (error: Error) => void = () => {},
): Promise<MailboxSession> {
  if (settings.security === 'none' && !isLoopbackHost(settings.host))
    throw new ImapError(`IMAP plaintext is only allowed for a loopback host, not ${settings.host}`);
  const stepMs = settings.stepTimeoutMs ?? 20_000;
  const auth = await credentials.get();
  const client = new ImapFlow({
    host: settings.host,
    port: settings.port,
    secure: settings.security === 'implicit',
    doSTARTTLS: settings.security === 'starttls' ? true : settings.security === 'none' ? false : undefined,
    tls: { minVersion: 'TLSv1.2', ...settings.tls, rejectUnauthorized: true },
    // An access token signs in with OAUTHBEARER or XOAUTH2, whichever the server offers (imapflow chooses).
    auth: isTokenLogin(auth)
      ? { user: auth.username, accessToken: auth.accessToken }
      : { user: auth.username, pass: auth.password },
    logger: false,
    connectionTimeout: stepMs,
    greetingTimeout: stepMs,
    socketTimeout: Math.max(stepMs * 3, 60_000),
    disableAutoIdle: true,
    maxLockHoldTime: false,
  });
  client.on('error', (error: Error) => onError(error));
  const kill = () => client.close();
  let newMail = () => {};
  client.on('exists', () => newMail());

  try {
    await bounded(client.connect(), stepMs * 2, 'connect', kill);
  } catch (error) {
    kill();
    throw toImapError(error, client.byeReason);
  }
  let lock: { release(): void } | undefined;
  const select = async (): Promise<MailboxStatus> => {
    lock?.release();
    lock = await bounded(client.getMailboxLock(settings.mailbox), stepMs, 'select', kill);
    const mailbox = client.mailbox;
    if (!mailbox) throw new ImapError(`mailbox ${settings.mailbox} could not be selected`);
    return {
      // BigInt on the wire (JSON.stringify would throw): kept as decimal strings.
      uidValidity: String(mailbox.uidValidity),
      uidNext: Number(mailbox.uidNext),
      highestModseq: mailbox.highestModseq !== undefined ? String(mailbox.highestModseq) : undefined,
      exists: mailbox.exists,
    };
  };
  let status: MailboxStatus;
  try {
    status = await select();
  } catch (error) {
    kill();
    throw toImapError(error, client.byeReason);
  }

  return {
    get status() {
      return status;
    },
    async messagesAfter(lastUid: number, sizeBound: number): Promise<MessageRef[]> {
      if (!client.mailbox || client.mailbox.exists === 0) return [];
      const range = `${lastUid + 1}:*`;
      const search = async (query: { uid: string; larger?: number }) => {
        const found = await bounded(client.search(query, { uid: true }), stepMs, 'search', kill);
        if (!Array.isArray(found)) throw new ImapError(`UID SEARCH ${query.uid} failed`);
        return found;
      };
      try {
        // Two UID SEARCHes (one response line each) list what is new; sizes are fetched only for the messages over
        // the bound, which are few. A FETCH of every new message's size costs as much CPU as a third of fetching
        // the messages themselves.
        const uids = await search({ uid: range });
        const large = await search({ uid: range, larger: sizeBound });
        const sizes = new Map<number, number>();
        if (large.length > 0) {
          for (const m of await bounded(
            client.fetchAll(large.join(','), { uid: true, size: true }, { uid: true }),
            stepMs,
            'fetch sizes',
            kill,
          ))
            sizes.set(m.uid, m.size ?? sizeBound);
        }
        // RFC 3501 6.4.8: "n:*" always includes the highest UID, even when it is below n.
        return uids
          .filter((uid) => uid > lastUid)
          .sort((a, b) => a - b)
          .map((uid) => ({ uid, size: sizes.get(uid) ?? sizeBound }));
      } catch (error) {
        throw toImapError(error, client.byeReason);
      }
    },
    async *fetch(uids: number[], maxBytes?: number): AsyncGenerator<FetchedMessage> {
      if (uids.length === 0) return;
      // imapflow asks for BODY.PEEK[]<0.maxBytes> and strips the <0> from the answer's key.
      const source = maxBytes === undefined ? true : { maxLength: maxBytes };
      const results: FetchedMessage[] = [];
      // Each step of the FETCH (its first message, each one after) is bounded by one timer, re-armed at every
      // message rather than a timer and a race per message: a server that falls silent for `stepMs` has its
      // connection closed, which ends the FETCH with an error.
      let stalled = false;
      const watchdog = setTimeout(() => {
        stalled = true;
        kill();
      }, stepMs);
      const timedOut = () => new ImapError(`IMAP fetch timed out after ${stepMs} ms`);
      try {
        for await (const m of client.fetch(
          uids.join(','),
          { uid: true, source, internalDate: true, size: true },
          { uid: true },
        )) {
          watchdog.refresh();
          if (!m.source) continue;
          results.push({
            uid: m.uid,
            source: m.source,
            internalDate: m.internalDate ? new Date(m.internalDate) : undefined,
            size: m.size ?? m.source.length,
          });
        }
      } catch (error) {
        throw stalled ? timedOut() : toImapError(error, client.byeReason);
      } finally {
        clearTimeout(watchdog);
      }
      // A FETCH cut off by the bound is never taken for a complete one.
      if (stalled) throw timedOut();
      // imapflow cannot run commands while a FETCH is being read, so messages are handed out after it completes.
      yield* results.sort((a, b) => a.uid - b.uid);
    },
    async refresh(waitMs: number): Promise<MailboxStatus> {
      // Waits for an EXISTS notification or the timeout, then asks the server (NOOP): notifications can come late
      // or not at all, so the caller fetches by UID after every refresh anyway.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        newMail = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      newMail = () => {};
      try {
        await bounded(client.noop(), stepMs, 'noop', kill);
      } catch (error) {
        throw toImapError(error, client.byeReason);
      }
      const mailbox = client.mailbox;
      if (mailbox && String(mailbox.uidValidity) !== status.uidValidity) status = await select();
      // EXISTS after a NOOP does not carry UIDNEXT: report it as unknown (0) so the caller searches by UID.
      else if (mailbox)
        status = {
          ...status,
          uidNext: 0,
          exists: mailbox.exists,
          highestModseq: mailbox.highestModseq !== undefined ? String(mailbox.highestModseq) : status.highestModseq,
        };
      return status;
    },
    async close() {
      lock?.release();
      try {
        await bounded(client.logout(), 3000, 'logout', kill);
      } catch {
        kill();
      }
    },
  };
}
