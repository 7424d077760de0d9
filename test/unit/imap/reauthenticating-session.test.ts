import { describe, expect, it } from 'vitest';
import type { CredentialSource, MailLogin } from '#core/credential-source.js';
import type { FetchedMessage, MailboxSession, MailboxStatus } from '#core/mailbox/ports.js';
import { ImapError } from '#imap/imap-session.js';
import { openReauthenticatingSession } from '#imap/reauthenticating-session.js';

const expired = () =>
  new ImapError('NoConnection: Connection not available (BYE Session invalidated - AccessTokenExpired)', {
    tokenExpired: true,
  });
const message = (uid: number): FetchedMessage => ({ uid, source: Buffer.from(`m${uid}`), size: 2 });

/** A fake of our own session port: each opened session runs the script given for it. */
function fakeServer(
  scripts: Array<{
    uidValidity?: string;
    fetch?: (uids: number[]) => AsyncGenerator<FetchedMessage>;
    messagesAfter?: () => Promise<number[]>;
  }>,
) {
  const opened: Array<{ refresh: boolean | undefined }> = [];
  const fetched: number[][] = [];
  const open = async (credentials: CredentialSource<MailLogin>): Promise<MailboxSession> => {
    const login = await credentials.get();
    const script = scripts[opened.length] ?? {};
    opened.push({ refresh: (login as { refreshed?: boolean }).refreshed });
    const status: MailboxStatus = { uidValidity: script.uidValidity ?? '7', uidNext: 10, exists: 3 };
    return {
      status,
      messagesAfter: async () =>
        (await (script.messagesAfter?.() ?? Promise.resolve([1, 2, 3]))).map((uid) => ({ uid, size: 2 })),
      fetch: (uids) => {
        fetched.push(uids);
        return script.fetch
          ? script.fetch(uids)
          : (async function* () {
              for (const uid of uids) yield message(uid);
            })();
      },
      refresh: async () => status,
      close: async () => {},
    };
  };
  const credentials: CredentialSource<MailLogin> = {
    get: async (options) => ({ username: 'u', accessToken: 't', refreshed: options?.refresh }) as MailLogin,
  };
  return { open, credentials, opened, fetched };
}

describe('openReauthenticatingSession', () => {
  it('resumes a fetch cut by an expired token with the messages it had not handed out, after one fresh sign-in', async () => {
    const server = fakeServer([
      {
        fetch: async function* (uids) {
          yield message(uids[0] as number);
          throw expired();
        },
      },
      {},
    ]);
    const reasons: string[] = [];
    const session = await openReauthenticatingSession(server.open, server.credentials, (r) => reasons.push(r));

    const got: number[] = [];
    for await (const m of session.fetch([1, 2, 3])) got.push(m.uid);

    expect(got).toEqual([1, 2, 3]);
    expect(server.fetched).toEqual([
      [1, 2, 3],
      [2, 3],
    ]);
    expect(server.opened).toEqual([{ refresh: false }, { refresh: true }]);
    expect(reasons).toEqual(['access token expired']);
  });

  it('throws the second failure in a row instead of signing in again', async () => {
    const server = fakeServer([
      { messagesAfter: () => Promise.reject(expired()) },
      { messagesAfter: () => Promise.reject(expired()) },
      {},
    ]);
    const session = await openReauthenticatingSession(server.open, server.credentials);

    await expect(session.messagesAfter(0, 100)).rejects.toMatchObject({ tokenExpired: true });
    expect(server.opened).toHaveLength(2);
  });

  it('signs in again later once a command has succeeded since the last time', async () => {
    let calls = 0;
    const failEveryOther = () => (calls++ % 2 === 0 ? Promise.reject(expired()) : Promise.resolve([1]));
    const server = fakeServer([
      { messagesAfter: failEveryOther },
      { messagesAfter: failEveryOther },
      { messagesAfter: failEveryOther },
    ]);
    const session = await openReauthenticatingSession(server.open, server.credentials);

    await session.messagesAfter(0, 100);
    await session.messagesAfter(0, 100);

    expect(server.opened).toHaveLength(3);
  });

  it('stops when the mailbox comes back under another UIDVALIDITY: its UIDs name other messages', async () => {
    const server = fakeServer([{ messagesAfter: () => Promise.reject(expired()) }, { uidValidity: '8' }]);
    const session = await openReauthenticatingSession(server.open, server.credentials);

    await expect(session.messagesAfter(0, 100)).rejects.toThrow(/UIDVALIDITY changed from 7/);
  });

  it('does not sign in again for a failure that is not about the session (a timeout)', async () => {
    const server = fakeServer([
      { messagesAfter: () => Promise.reject(new ImapError('IMAP search timed out after 20000 ms')) },
    ]);
    const session = await openReauthenticatingSession(server.open, server.credentials);

    await expect(session.messagesAfter(0, 100)).rejects.toThrow(/timed out/);
    expect(server.opened).toHaveLength(1);
  });

  it('tries a refused first sign-in once more with fresh credentials', async () => {
    let attempts = 0;
    const server = fakeServer([{}]);
    const open = async (credentials: CredentialSource<MailLogin>) => {
      attempts += 1;
      if (attempts === 1) throw new ImapError('AUTHENTICATIONFAILED', { authentication: true });
      return server.open(credentials);
    };

    const session = await openReauthenticatingSession(open, server.credentials);

    expect(session.status.uidValidity).toBe('7');
    expect(server.opened).toEqual([{ refresh: true }]);
  });
});
