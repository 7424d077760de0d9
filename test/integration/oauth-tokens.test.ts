import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenError } from '#core/credential-source.js';
import { createMailLoginSource } from '#oauth/mail-login-source.js';
import { requestToken } from '#oauth/token-endpoint.js';
import { LOOPBACK, listenOnLoopback } from '#local/loopback.js';
import { memorySecret, OAUTH_MAILBOX, startOAuthPeer } from '../support/oauth-harness.js';

let peer: Awaited<ReturnType<typeof startOAuthPeer>>;
beforeAll(async () => {
  peer = await startOAuthPeer();
});
afterAll(async () => {
  await peer?.server.stop();
});

const fast = { endpoint: { timeoutMs: 2000, backoffMs: 20 } };
const requestsSince = (start: number) => peer.server.requests.slice(start);
const tokenOf = async (secret: object, options = fast) => {
  const login = await createMailLoginSource(memorySecret(secret), options).get();
  if (!('accessToken' in login)) throw new Error('no token');
  return login;
};

describe('fetching access tokens from a local OAuth2 server', () => {
  it.each([
    ['a Microsoft 365 app with a client secret', 'clientSecret', 'client_credentials'],
    ['a Microsoft 365 app with a certificate (signed client assertion)', 'certificate', 'client_credentials'],
    [
      'a Google service account (signed JWT-bearer assertion, subject = the mailbox)',
      'serviceAccount',
      'urn:ietf:params:oauth:grant-type:jwt-bearer',
    ],
    ['a refresh token', 'refreshToken', 'refresh_token'],
  ] as const)('gets a token for the mailbox with %s', async (_name, kind, grantType) => {
    const start = peer.server.requests.length;

    const login = await tokenOf(peer.secrets[kind]);

    expect(login.username).toBe(OAUTH_MAILBOX);
    expect(peer.server.isActive(login.accessToken)).toBe(true);
    expect(requestsSince(start)).toEqual([{ grantType, outcome: 'issued' }]);
  });

  it('is refused, without a retry, when an assertion is signed with a key the provider does not know', async () => {
    const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    const start = peer.server.requests.length;

    const failed = await tokenOf({ ...peer.secrets.serviceAccount, private_key: stranger }).catch(
      (error: unknown) => error,
    );

    expect(failed).toBeInstanceOf(TokenError);
    expect(failed).toMatchObject({ action: 'blocked', oauthError: 'invalid_grant', httpStatus: 400 });
    expect(requestsSince(start)).toEqual([
      { grantType: 'urn:ietf:params:oauth:grant-type:jwt-bearer', outcome: 'invalid_grant' },
    ]);
  });

  it('is refused, without a retry, for a client assertion signed with a certificate the app lacks', async () => {
    // Another self-signed certificate and its key, as an app registration that never had it uploaded would see it.
    const pem = execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=stranger', '-keyout', '-'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const stranger = {
      cert: pem.slice(pem.indexOf('-----BEGIN CERTIFICATE-----')),
      key: pem.slice(0, pem.indexOf('-----BEGIN CERTIFICATE-----')),
    };
    const start = peer.server.requests.length;

    const failed = await tokenOf({
      ...peer.secrets.certificate,
      certificate: stranger.cert,
      privateKey: stranger.key,
    }).catch((error: unknown) => error);

    expect(failed).toMatchObject({
      name: 'TokenError',
      action: 'blocked',
      oauthError: 'invalid_client',
      httpStatus: 401,
    });
    expect(failed).toHaveProperty(
      'message',
      expect.stringContaining('x5t#S256 does not name the registered certificate'),
    );
    expect(requestsSince(start)).toEqual([{ grantType: 'client_credentials', outcome: 'invalid_client' }]);
  });

  it('classifies invalid_client, invalid_grant and unauthorized_client as blocked and asks only once', async () => {
    for (const kind of ['invalid_client', 'invalid_grant', 'unauthorized_client'] as const) {
      peer.server.fail({ kind });
      const start = peer.server.requests.length;
      const failed = await tokenOf(peer.secrets.clientSecret).catch((error: unknown) => error);
      expect(failed).toMatchObject({ name: 'TokenError', action: 'blocked', oauthError: kind });
      expect(requestsSince(start)).toHaveLength(1);
    }
  });

  it('retries a 500 and a slow answer with backoff, and gets the token', async () => {
    peer.server.fail({ kind: 'server_error' }, { kind: 'slow', delayMs: 1500 });
    const start = peer.server.requests.length;

    const login = await tokenOf(peer.secrets.clientSecret, { endpoint: { timeoutMs: 500, backoffMs: 20 } });

    expect(peer.server.isActive(login.accessToken)).toBe(true);
    // The slow answer came after the client had given up on it (and was logged by the server once it came).
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(
      requestsSince(start)
        .map((r) => r.outcome)
        .sort(),
    ).toEqual(['issued', 'issued', 'server_error']);
  });

  it('retries an answer whose error says to try again (temporarily_unavailable), whatever its status', async () => {
    peer.server.fail({ kind: 'temporarily_unavailable' });
    const start = peer.server.requests.length;

    const login = await tokenOf(peer.secrets.clientSecret);

    expect(peer.server.isActive(login.accessToken)).toBe(true);
    expect(requestsSince(start).map((r) => r.outcome)).toEqual(['temporarily_unavailable', 'issued']);
  });

  it('gives up with a retryable failure when the endpoint keeps failing', async () => {
    peer.server.fail({ kind: 'server_error' }, { kind: 'server_error' }, { kind: 'server_error' });

    const failed = await tokenOf(peer.secrets.clientSecret).catch((error: unknown) => error);

    expect(failed).toMatchObject({ name: 'TokenError', action: 'retry', httpStatus: 500 });
    expect(String((failed as Error).message)).not.toContain('app-secret-value');
  });

  it('is refused at once for an address that is no token endpoint (404)', async () => {
    const failed = await tokenOf({ ...peer.secrets.refreshToken, tokenUrl: `${peer.server.url}/nowhere` }).catch(
      (error: unknown) => error,
    );
    expect(failed).toMatchObject({ name: 'TokenError', action: 'blocked', httpStatus: 404 });
  });

  it('does not follow a redirect, even to the real endpoint: credentials go only where configured', async () => {
    // Prepare: an endpoint that sends every request on to the OAuth2 server, as a hijacked address might.
    const redirector = createServer((req, res) => {
      req.resume();
      res.writeHead(307, { location: peer.server.tokenUrl }).end();
    });
    const port = await listenOnLoopback(redirector);
    const start = peer.server.requests.length;
    try {
      // Act
      const failed = await tokenOf({
        ...peer.secrets.refreshToken,
        tokenUrl: `http://${LOOPBACK}:${port}/token`,
      }).catch((error: unknown) => error);

      // Assess
      expect(failed).toMatchObject({ name: 'TokenError', action: 'blocked', httpStatus: 307 });
      expect(requestsSince(start)).toEqual([]);
    } finally {
      redirector.close();
    }
  });

  it('refuses a token endpoint without TLS before sending anything, unless it is on this machine', async () => {
    const failed = await requestToken('http://login.example.com/contoso/oauth2/v2.0/token', {
      grant_type: 'client_credentials',
      client_secret: 'hunter2',
    }).catch((error: unknown) => error);

    // Blocked, not retried: an unreachable endpoint would have been `retry` ("token endpoint unreachable").
    expect(failed).toMatchObject({ name: 'TokenError', action: 'blocked' });
    expect(String((failed as Error).message)).toBe('token endpoint must use https, not http:');
  });
});

describe('the token cache of a container', () => {
  it('serves one token to every caller until shortly before it expires, then fetches a new one', async () => {
    let now = Date.now();
    const source = createMailLoginSource(memorySecret(peer.secrets.clientSecret), { ...fast, clock: () => now });
    const start = peer.server.requests.length;

    const [a, b] = await Promise.all([source.get(), source.get()]);
    now += 3000 * 1000; // 50 minutes on: still well within the hour.
    const c = await source.get();
    now += 360 * 1000; // 4 minutes before expiry: inside the five-minute renewal margin.
    const d = await source.get();

    expect(a).toBe(b);
    expect(c).toBe(a);
    expect(d).not.toEqual(a);
    expect(requestsSince(start)).toHaveLength(2);
  });

  it('fetches a new token when asked to refresh (after a sign-in was refused)', async () => {
    const source = createMailLoginSource(memorySecret(peer.secrets.certificate), fast);
    const first = await source.get();
    const second = await source.get({ refresh: true });
    expect(second).not.toEqual(first);
  });
});

describe('a refresh token the provider rotates', () => {
  it('is written back to the secret, and the new one is what the next fetch uses', async () => {
    const secret = memorySecret({ ...peer.secrets.refreshToken, refreshToken: peer.server.refreshTokens[0] });
    const source = createMailLoginSource(secret, fast);

    await source.get();
    const afterFirst = secret.value.refreshToken;
    await source.get({ refresh: true });

    expect(secret.writes).toBe(2);
    expect(afterFirst).not.toBe(peer.secrets.refreshToken.refreshToken);
    expect(secret.value.refreshToken).toBe(peer.server.refreshTokens[0]);
  });

  it('is redeemed once when several sign-ins are refused at once (each pooled connection asks to refresh)', async () => {
    const secret = memorySecret({ ...peer.secrets.refreshToken, refreshToken: peer.server.refreshTokens[0] });
    const source = createMailLoginSource(secret, fast);
    await source.get();
    const start = peer.server.requests.length;

    // A provider that rotates refresh tokens accepts each one once: a second redemption is invalid_grant (blocked).
    const logins = await Promise.all([1, 2, 3].map(() => source.get({ refresh: true })));

    expect(logins.every((login) => 'accessToken' in login)).toBe(true);
    expect(requestsSince(start)).toEqual([{ grantType: 'refresh_token', outcome: 'issued' }]);
    expect(secret.value.refreshToken).toBe(peer.server.refreshTokens[0]);
  });

  it('is kept in memory when it cannot be written back, and the failure is reported', async () => {
    const secret = memorySecret(
      { ...peer.secrets.refreshToken, refreshToken: peer.server.refreshTokens[0] },
      { failWrites: true },
    );
    const failures: string[] = [];
    const source = createMailLoginSource(secret, {
      ...fast,
      onWriteBackFailed: (error) => failures.push(error.message),
    });

    await source.get();
    const again = await source.get({ refresh: true });

    expect('accessToken' in again).toBe(true);
    expect(failures).toHaveLength(2);
    expect(failures[0]).toContain('PutSecretValue');
  });
});
