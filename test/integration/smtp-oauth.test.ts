import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SMTPServer } from 'smtp-server';
import { classifyOutcome } from '#core/classify-outcome.js';
import { TransportError } from '#core/transport-failure.js';
import { listenOnLoopback, LOOPBACK } from '#local/loopback.js';
import { createMailLoginSource } from '#oauth/mail-login-source.js';
import { createSmtpTransport } from '#transports/smtp-transport.js';
import type { MailTransport, OutgoingMessage } from '#core/mail-transport.js';
import { memorySecret, OAUTH_MAILBOX, startOAuthPeer } from '../support/oauth-harness.js';

let oauth: Awaited<ReturnType<typeof startOAuthPeer>>;
let server: SMTPServer;
let port: number;
const received: Array<{ user: unknown }> = [];
const transports: MailTransport[] = [];

/** Asks the OAuth2 server about a token (RFC 7662), as a relay that accepts XOAUTH2 does. */
async function introspect(token: string): Promise<{ active: boolean; username?: string }> {
  const response = await fetch(oauth.server.introspectionUrl, { method: 'POST', body: new URLSearchParams({ token }) });
  return (await response.json()) as { active: boolean; username?: string };
}

beforeAll(async () => {
  oauth = await startOAuthPeer();
  server = new SMTPServer({
    authMethods: ['XOAUTH2'],
    // Plaintext on loopback only, as the transport allows it only there.
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.method !== 'XOAUTH2' || !auth.accessToken) return callback(new Error('XOAUTH2 only'));
      introspect(auth.accessToken).then(
        (info) =>
          info.active && info.username === auth.username
            ? callback(null, { user: auth.username })
            : // Gmail's answer to a bad token: a 334 challenge with the error, then 535 (RFC 7628 3.2.2).
              callback(null, { data: { status: '401', schemes: 'bearer', scope: 'https://mail.google.com/' } }),
        (error: Error) => callback(error),
      );
    },
    onData(stream, session, callback) {
      stream.resume();
      stream.on('end', () => {
        received.push({ user: session.user });
        callback(null, 'Ok: queued as OAUTH0001');
      });
    },
  });
  port = await listenOnLoopback(server.server);
});
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close?.()));
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await oauth?.server.stop();
});

const message = (n: number): OutgoingMessage => ({
  messageId: `<oauth-${n}-${Date.now()}@example.com>`,
  from: 'noreply@example.com',
  to: ['someone@example.net'],
  cc: [],
  bcc: [],
  replyTo: [],
  subject: `OAuth ${n}`,
  text: 'Hello',
  headers: {},
  attachments: [],
  tags: {},
});
const transportFor = (secret: object) => {
  let now = Date.now();
  const transport = createSmtpTransport(
    { host: LOOPBACK, port, security: 'none', idleResetSeconds: 20 },
    createMailLoginSource(memorySecret(secret), { endpoint: { timeoutMs: 3000, backoffMs: 50 } }),
    () => now,
  );
  transports.push(transport);
  return { transport, idle: (seconds: number) => (now += seconds * 1000) };
};
const failureOf = async (sending: Promise<unknown>) => {
  const error = await sending.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TransportError);
  return (error as TransportError).failure;
};

describe('the SMTP transport signing in with OAuth2 (XOAUTH2)', () => {
  it('sends with a token the server checks against the OAuth2 server', async () => {
    const { transport } = transportFor(oauth.secrets.certificate);
    const before = { count: received.length, introspections: oauth.server.introspections };

    const receipt = await transport.send(message(1));

    expect(receipt.accepted).toEqual(['someone@example.net']);
    expect(received.slice(before.count)).toEqual([{ user: OAUTH_MAILBOX }]);
    expect(oauth.server.introspections).toBe(before.introspections + 1);
  });

  it('fetches a fresh token once when the server refuses the cached one, and sends', async () => {
    // Prepare: a first send caches a token; then the provider ends it early and the idle pool is replaced.
    const { transport, idle } = transportFor(oauth.secrets.clientSecret);
    await transport.send(message(2));
    const start = oauth.server.requests.length;
    oauth.server.expireTokens();
    idle(30);

    // Act
    const receipt = await transport.send(message(3));

    // Assess
    expect(receipt.accepted).toEqual(['someone@example.net']);
    expect(oauth.server.requests.slice(start)).toEqual([{ grantType: 'client_credentials', outcome: 'issued' }]);
  });

  it('ends as blocked when the client is revoked: the token endpoint refuses it (invalid_client)', async () => {
    // Prepare
    const { transport, idle } = transportFor({
      ...oauth.secrets.clientSecret,
      clientId: 'app-revoked',
      clientSecret: 'revoked-secret',
    });
    await transport.send(message(4));
    oauth.server.revoke('app-revoked');
    idle(30);

    // Act: the cached token is refused at AUTH, and the fresh one cannot be had.
    const refused = await failureOf(transport.send(message(5)));
    const again = await failureOf(transport.send(message(6)));

    // Assess
    expect(refused).toMatchObject({ code: 'EOAUTH2', command: 'AUTH XOAUTH2' });
    expect(classifyOutcome(refused).action).toBe('blocked');
    expect(classifyOutcome(again)).toMatchObject({ action: 'blocked', reason: 'smtp-eoauth2' });
    expect(refused.message).toContain('invalid_client');
    expect(JSON.stringify([refused, again])).not.toContain('revoked-secret');
  });

  it('retries later, not blocked, when the token endpoint keeps failing with 500', async () => {
    const { transport } = transportFor(oauth.secrets.serviceAccount);
    oauth.server.fail({ kind: 'server_error' }, { kind: 'server_error' }, { kind: 'server_error' });

    const failure = await failureOf(transport.send(message(7)));

    expect(failure).toMatchObject({ code: 'ETOKEN' });
    expect(classifyOutcome(failure).action).toBe('retry');
  });
});
