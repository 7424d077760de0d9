import type { CredentialSource, MailLogin } from '#core/credential-source.js';
import type { FetchedMessage, MailboxSession } from '#core/mailbox/ports.js';
import { ImapError, toImapError } from './imap-session.js';

/**
 * A mailbox session that survives its sign-in expiring once: a login refused, or a session ended by the server
 * (Exchange: `BYE Session invalidated - AccessTokenExpired`), is followed by one new session with a freshly
 * fetched token (or re-read password), and the command that failed is run again on it. Commands go by UID, so a
 * repeat neither misses nor repeats a message; a fetch resumes with the messages it had not yet handed out. A second
 * failure in a row is thrown as it is, for the caller to classify.
 */
export async function openReauthenticatingSession(
  open: (credentials: CredentialSource<MailLogin>) => Promise<MailboxSession>,
  credentials: CredentialSource<MailLogin>,
  onReconnect: (reason: string) => void = () => {},
): Promise<MailboxSession> {
  const signIn = (fresh: boolean) =>
    open({ get: (options) => credentials.get({ refresh: fresh || options?.refresh === true }) });
  let session: MailboxSession;
  try {
    session = await signIn(false);
  } catch (error) {
    if (!(error instanceof ImapError && error.authentication)) throw error;
    onReconnect('authentication refused');
    session = await signIn(true);
  }
  const uidValidity = session.status.uidValidity;
  // Set by a reconnect, cleared by the next command that succeeds: a failure while set is not retried.
  let justReconnected = false;

  const reconnectAfter = async (error: unknown): Promise<void> => {
    const e = toImapError(error);
    if (justReconnected || !(e.tokenExpired || e.authentication || e.connectionLost)) throw e;
    justReconnected = true;
    if (e.tokenExpired) onReconnect('access token expired');
    else onReconnect(e.authentication ? 'authentication refused' : 'connection lost');
    await session.close().catch(() => {});
    session = await signIn(true);
    // UIDs name messages only under one UIDVALIDITY: after a change this run stops; the next one resynchronises.
    if (session.status.uidValidity !== uidValidity) {
      throw new ImapError(`UIDVALIDITY changed from ${uidValidity} while signing in again`);
    }
  };

  const command = async <T>(run: (s: MailboxSession) => Promise<T>): Promise<T> => {
    for (;;) {
      try {
        const result = await run(session);
        justReconnected = false;
        return result;
      } catch (error) {
        await reconnectAfter(error);
      }
    }
  };

  return {
    get status() {
      return session.status;
    },
    messagesAfter: (lastUid, sizeBound) => command((s) => s.messagesAfter(lastUid, sizeBound)),
    refresh: (waitMs) => command((s) => s.refresh(waitMs)),
    async *fetch(uids: number[], maxBytes?: number): AsyncGenerator<FetchedMessage> {
      const handedOut = new Set<number>();
      for (;;) {
        try {
          const pending = uids.filter((uid) => !handedOut.has(uid));
          for await (const message of session.fetch(pending, maxBytes)) {
            handedOut.add(message.uid);
            yield message;
          }
          justReconnected = false;
          return;
        } catch (error) {
          await reconnectAfter(error);
        }
      }
    },
    close: () => session.close(),
  };
}
