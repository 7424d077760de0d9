import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CredentialSource, MailLogin } from '#core/credential-source.js';
import { syncMailbox, type SyncDeps } from '#core/mailbox/sync-mailbox.js';
import { openImapSession, type ImapSettings } from '#imap/imap-session.js';
import { openReauthenticatingSession } from '#imap/reauthenticating-session.js';
import { createLambdaContext } from '#local/lambda-context.js';
import { createMailLoginSource } from '#oauth/mail-login-source.js';
import { startAwsEmulators, type AwsEmulators } from '../support/dispatch-harness.js';
import { plainMessage } from '../support/mail-samples.js';
import { memorySecret, startOAuthPeer } from '../support/oauth-harness.js';
import {
  createPollerUnderTest,
  createSyncDeps,
  IMAP_USER,
  startImapPeer,
  type ImapPeer,
} from '../support/poller-harness.js';
import { startDovecot } from '#local/dovecot.js';
import { startTcpProxy } from '../support/tcp-proxy.js';

let aws: AwsEmulators;
let imap: ImapPeer;
let oauth: Awaited<ReturnType<typeof startOAuthPeer>>;
let counter = 0;

beforeAll(async () => {
  oauth = await startOAuthPeer();
  [aws, imap] = await Promise.all([
    startAwsEmulators(),
    startImapPeer({ oauth2: { introspectionUrl: oauth.server.introspectionUrl } }),
  ]);
});
afterAll(async () => {
  await imap?.stop();
  await aws?.stop();
  await oauth?.server.stop();
});

const newMailbox = async (messages: number) => {
  counter += 1;
  const name = `OAuth${counter}`;
  await imap.createMailbox(name);
  await imap.append(
    name,
    Array.from({ length: messages }, (_, i) => plainMessage(700 + counter * 10 + i)),
  );
  return name;
};
const uidsOf = (events: object[]) => events.map((e) => (e as { uid: number }).uid).sort((a, b) => a - b);
const signInTo =
  (settings: ImapSettings, login: CredentialSource<MailLogin>, reasons: string[] = []) =>
  () =>
    openReauthenticatingSession(
      (signIn) => openImapSession(settings, signIn),
      login,
      (reason) => reasons.push(reason),
    );
const fast = { endpoint: { timeoutMs: 3000, backoffMs: 50 } };
/** One run over the whole mailbox, without idling. */
const syncFromStart = (deps: SyncDeps, mailbox: string) =>
  syncMailbox(deps, { mailboxId: mailbox, runId: 'run-1', startFrom: 'beginning', stopAtMs: Date.now() + 30_000 });

describe('the poller signing in to Dovecot with OAuth2 (oauth2 passdb, token introspection)', () => {
  it.each([
    ['oauth2-client-credentials with a client secret', 'clientSecret', 'client_credentials'],
    ['oauth2-client-credentials with a certificate', 'certificate', 'client_credentials'],
    ['oauth2-service-account', 'serviceAccount', 'urn:ietf:params:oauth:grant-type:jwt-bearer'],
    ['oauth2-refresh-token', 'refreshToken', 'refresh_token'],
  ] as const)('reads the mailbox with %s', async (_name, kind, grantType) => {
    // Prepare
    const mailbox = await newMailbox(3);
    const secret = memorySecret(
      kind === 'refreshToken'
        ? { ...oauth.secrets.refreshToken, refreshToken: oauth.server.refreshTokens[0] }
        : oauth.secrets[kind],
    );
    const login = createMailLoginSource(secret, fast);
    const { deps, published } = await createSyncDeps(aws, signInTo(imap.settings(mailbox), login));
    const before = { requests: oauth.server.requests.length, introspections: oauth.server.introspections };

    // Act
    const result = await syncFromStart(deps, mailbox);

    // Assess
    expect(result).toMatchObject({ status: 'synced', processed: 3 });
    expect(uidsOf(published)).toEqual([1, 2, 3]);
    expect(oauth.server.requests.slice(before.requests)).toEqual([{ grantType, outcome: 'issued' }]);
    // Dovecot asked the OAuth2 server about the token: the sign-in really was by token.
    expect(oauth.server.introspections).toBeGreaterThan(before.introspections);
    if (kind === 'refreshToken') expect(secret.writes).toBe(1);
  });

  it.each([
    ['XOAUTH2 where the server offers only that, as Exchange Online does', 'xoauth2'],
    ['OAUTHBEARER (RFC 7628) where the server offers only that', 'oauthbearer'],
  ] as const)('signs in with %s', async (_name, mechanism) => {
    // Prepare
    const oneMechanism = await startDovecot({
      tls: imap.cert,
      users: [IMAP_USER],
      oauth2: { introspectionUrl: oauth.server.introspectionUrl, mechanisms: [mechanism] },
    });
    try {
      const login = createMailLoginSource(memorySecret(oauth.secrets.certificate), fast);
      const settings: ImapSettings = {
        host: oneMechanism.host,
        port: oneMechanism.port,
        security: 'starttls',
        mailbox: 'INBOX',
        tls: { ca: imap.cert.cert },
        stepTimeoutMs: 5000,
      };
      const before = oauth.server.introspections;
      const reasons: string[] = [];

      // Act: a sign-in; then, the token expired early, another with the same cached token, refused at once.
      const session = await openImapSession(settings, login);
      const listed = await session.messagesAfter(0, 1000);
      await session.close();
      oauth.server.expireTokens();
      const again = await signInTo(settings, login, reasons)();
      const listedAgain = await again.messagesAfter(0, 1000);
      await again.close();

      // Assess: Dovecot offered no other mechanism for a token and asked the OAuth2 server about each one; the
      // refusal of the mechanism (its error challenge answered) came as a refused sign-in, and a fresh token passed.
      expect([listed, listedAgain]).toEqual([[], []]);
      expect(reasons).toEqual(['authentication refused']);
      expect(oauth.server.introspections).toBe(before + 3);
    } finally {
      await oneMechanism.stop();
    }
  });

  it('signs in once more with a fresh token when the provider expired the cached one early; reads all', async () => {
    // Prepare: a token is cached for this container; then the provider ends it long before its expires_in.
    const mailbox = await newMailbox(2);
    const login = createMailLoginSource(memorySecret(oauth.secrets.serviceAccount), fast);
    const spent = await login.get();
    oauth.server.expireTokens();
    const reasons: string[] = [];
    const { deps, published } = await createSyncDeps(aws, signInTo(imap.settings(mailbox), login, reasons));
    const start = oauth.server.requests.length;

    // Act
    const result = await syncFromStart(deps, mailbox);

    // Assess: Dovecot refused the cached token; one new token, one new sign-in, every message once.
    expect(result).toMatchObject({ status: 'synced', processed: 2 });
    expect(uidsOf(published)).toEqual([1, 2]);
    expect(reasons).toEqual(['authentication refused']);
    expect(oauth.server.requests.slice(start)).toEqual([
      { grantType: 'urn:ietf:params:oauth:grant-type:jwt-bearer', outcome: 'issued' },
    ]);
    expect('accessToken' in spent && oauth.server.isActive(spent.accessToken)).toBe(false);
  });

  it('survives a token that expires mid-session: one new sign-in with a fresh token, nothing missed or repeated', async () => {
    // Prepare: the session goes through a proxy that can end it as Exchange Online does.
    const mailbox = await newMailbox(2);
    const proxy = await startTcpProxy({ host: imap.dovecot.host, port: imap.dovecot.port });
    const login = createMailLoginSource(memorySecret(oauth.secrets.clientSecret), fast);
    const reasons: string[] = [];
    const settings: ImapSettings = {
      host: proxy.host,
      port: proxy.port,
      security: 'none',
      mailbox,
      stepTimeoutMs: 5000,
    };
    const { deps, published, state } = await createSyncDeps(aws, signInTo(settings, login, reasons));
    const start = oauth.server.requests.length;

    // Act: while the run idles, the token expires, the server ends the session, and new mail arrives.
    const running = syncMailbox(deps, {
      mailboxId: mailbox,
      runId: 'run-1',
      startFrom: 'beginning',
      stopAtMs: Date.now() + 30_000,
      idleUntilMs: Date.now() + 8000,
      refreshEveryMs: 300,
    });
    for (let i = 0; i < 50 && (await state.getCheckpoint(mailbox))?.lastUid !== 2; i += 1)
      await new Promise((resolve) => setTimeout(resolve, 100));
    oauth.server.expireTokens();
    proxy.endSessions('* BYE Session invalidated - AccessTokenExpired');
    await imap.append(mailbox, [plainMessage(790), plainMessage(791)]);
    const result = await running;
    await proxy.stop();

    // Assess
    expect(result).toMatchObject({ status: 'synced', processed: 4 });
    expect(uidsOf(published)).toEqual([1, 2, 3, 4]);
    expect(reasons).toEqual(['access token expired']);
    // The cached token was known to be spent: the new sign-in used a new one.
    expect(oauth.server.requests.slice(start).map((r) => r.outcome)).toEqual(['issued', 'issued']);
  });

  it('fails after one new sign-in when the fresh token is refused too', async () => {
    // Prepare: a token for another mailbox than the one signed in to.
    const mailbox = await newMailbox(1);
    const login = createMailLoginSource(
      memorySecret({ ...oauth.secrets.clientSecret, username: 'someone-else' }),
      fast,
    );
    const reasons: string[] = [];
    const { deps } = await createSyncDeps(aws, signInTo(imap.settings(mailbox), login, reasons));
    const start = oauth.server.requests.length;

    // Act
    const failed = await syncFromStart(deps, mailbox).catch((error: unknown) => error);

    // Assess
    expect(failed).toMatchObject({ name: 'ImapError', authentication: true });
    expect(reasons).toEqual(['authentication refused']);
    expect(oauth.server.requests.slice(start)).toHaveLength(2);
  });
});

describe('the scheduled poller with an OAuth2 mailbox', () => {
  /** The scheduled handler (no idling) polling one mailbox of the Dovecot peer as `m365`, signing in with `login`. */
  const pollerFor = (mailbox: string, login: CredentialSource<MailLogin>) =>
    createPollerUnderTest(aws, imap, [{ id: 'm365', mailbox, startFrom: 'beginning' }], () => login);
  const run = (handler: Awaited<ReturnType<typeof pollerFor>>['handler']) =>
    handler({}, createLambdaContext('poll-mailbox', 20_000));

  it('reports a revoked client as blocked, with the sign-in alarm metric, and logs no token or secret', async () => {
    // Prepare: a first run signs in; then the app's registration is revoked.
    const mailbox = await newMailbox(1);
    const login = createMailLoginSource(
      memorySecret({ ...oauth.secrets.clientSecret, clientId: 'app-revoked', clientSecret: 'revoked-secret' }),
      fast,
    );
    const { handler, output } = await pollerFor(mailbox, login);
    const first = await run(handler);
    const issued = await login.get();
    oauth.server.revoke('app-revoked');

    // Act
    const second = await run(handler);

    // Assess
    expect(first).toEqual({ m365: { status: 'synced', processed: 1 } });
    expect(second).toMatchObject({
      m365: { status: 'blocked', processed: 0, error: expect.stringContaining('invalid_client') },
    });
    expect(output.metric('MailboxSignInBlocked')).toBe(1);
    const logged = output.lines.join('\n');
    expect(logged).toContain('"blocked":true');
    expect(logged).not.toContain('revoked-secret');
    expect(issued).toHaveProperty('accessToken');
    expect(logged).not.toContain((issued as { accessToken: string }).accessToken);
    const token = await login.get().catch(() => undefined);
    expect(token).toBeUndefined();
  });

  it('counts a token endpoint failing with 500 as failed, not blocked; the next run reads the mail', async () => {
    // Prepare: every request of the first run's backoff answers 500; the next run's first answer is too slow.
    const mailbox = await newMailbox(2);
    const login = createMailLoginSource(memorySecret(oauth.secrets.serviceAccount), {
      endpoint: { timeoutMs: 1000, backoffMs: 20 },
    });
    const { handler, output } = await pollerFor(mailbox, login);
    oauth.server.fail({ kind: 'server_error' }, { kind: 'server_error' }, { kind: 'server_error' });
    const start = oauth.server.requests.length;

    // Act
    const failed = await run(handler);
    const afterFailure = oauth.server.requests.slice(start).map((r) => r.outcome);
    oauth.server.fail({ kind: 'slow', delayMs: 2500 });
    const next = await run(handler);

    // Assess: three requests with backoff, then a failure for the next run to retry; no sign-in alarm.
    expect(failed).toMatchObject({
      m365: { status: 'failed', processed: 0, error: expect.stringContaining('500 server_error') },
    });
    expect(afterFailure).toEqual(['server_error', 'server_error', 'server_error']);
    expect(output.metric('MailboxPollFailures')).toBe(1);
    expect(output.metric('MailboxSignInBlocked')).toBe(0);
    // The slow answer was given up on after the timeout and asked again: the run read both messages.
    expect(next).toEqual({ m365: { status: 'synced', processed: 2 } });
  });
  it("counts the server's trouble checking a token (NO [UNAVAILABLE]) as a failed poll, not a refusal", async () => {
    // Prepare: twice, Dovecot cannot reach a verdict on the token: its introspection requests fail.
    const mailbox = await newMailbox(1);
    const login = createMailLoginSource(memorySecret(oauth.secrets.clientSecret), fast);
    const { handler, output } = await pollerFor(mailbox, login);
    const start = oauth.server.requests.length;
    oauth.server.failIntrospections(2);

    // Act
    const failed = [await run(handler), await run(handler)];
    const next = await run(handler);

    // Assess: a passing failure, retried by the next run with the same token; no alarm, no token spent on a refresh.
    const failure = {
      m365: { status: 'failed', processed: 0, error: expect.stringContaining('Temporary authentication failure') },
    };
    expect(failed).toEqual([failure, failure]);
    expect(output.metric('MailboxSignInBlocked')).toBe(0);
    expect(next).toEqual({ m365: { status: 'synced', processed: 1 } });
    expect(oauth.server.requests.slice(start)).toEqual([{ grantType: 'client_credentials', outcome: 'issued' }]);
  });
});
