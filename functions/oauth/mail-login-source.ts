import type {
  CredentialSource,
  MailCredentials,
  MailLogin,
  RefreshTokenGrant,
  WritableCredentialSource,
} from '#core/credential-source.js';
import { toClientAssertion, toServiceAccountAssertion } from './client-assertion.js';
import { requestToken, type TokenEndpointOptions, type TokenResponse } from './token-endpoint.js';

export type MailLoginOptions = {
  endpoint?: TokenEndpointOptions;
  clock?: () => number;
  /** A rotated refresh token could not be written back to the secret (it is still used from memory). */
  onWriteBackFailed?: (error: Error) => void;
};

type TokenGrant = Exclude<MailCredentials, { type: 'password' }>;

/** The form parameters of the token request for each grant (RFC 6749 4.4 and 6, RFC 7523 2.1 and 2.2). */
function toTokenRequest(grant: TokenGrant, nowMs: number, refreshToken: string | undefined): Record<string, string> {
  switch (grant.type) {
    case 'oauth2-client-credentials':
      return grant.certificate
        ? {
            grant_type: 'client_credentials',
            client_id: grant.clientId,
            scope: grant.scope,
            client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
            client_assertion: toClientAssertion({ ...grant, certificate: grant.certificate }, nowMs),
          }
        : {
            grant_type: 'client_credentials',
            client_id: grant.clientId,
            client_secret: grant.clientSecret ?? '',
            scope: grant.scope,
          };
    case 'oauth2-service-account':
      return {
        grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
        assertion: toServiceAccountAssertion(grant, nowMs),
      };
    case 'oauth2-refresh-token':
      return {
        grant_type: 'refresh_token',
        refresh_token: refreshToken ?? grant.refreshToken,
        client_id: grant.clientId,
        client_secret: grant.clientSecret,
        ...(grant.scope ? { scope: grant.scope } : {}),
      };
  }
}

/** How long before its expiry a cached token is replaced: a tenth of its life, at most five minutes. */
const renewMarginMs = (lifetimeMs: number) => Math.min(300_000, lifetimeMs / 10);

/**
 * What the IMAP and SMTP clients sign in with, from a mailbox or relay secret: its username and password as they
 * are, or an access token fetched for its OAuth2 grant. A token is cached for this container until shortly before it
 * expires, and one fetch serves every caller waiting at the time. `refresh` (after a refused sign-in) re-reads the
 * secret and fetches a new token. A refresh token the provider rotates is written back to the secret.
 */
export function createMailLoginSource(
  secret: CredentialSource<MailCredentials> | WritableCredentialSource<MailCredentials>,
  options: MailLoginOptions = {},
): CredentialSource<MailLogin> {
  const clock = options.clock ?? Date.now;
  let cached: { login: MailLogin & { accessToken: string }; renewAtMs: number } | undefined;
  // The fetch under way, and whether it re-reads the secret and asks for a new token (a refresh).
  let inFlight: { run: Promise<MailLogin>; refresh: boolean } | undefined;
  // A rotated refresh token not yet in the secret (its write failed), with the one it replaced.
  let rotated: { replaced: string; current: string } | undefined;

  const writeBack = async (grant: RefreshTokenGrant, fresh: TokenResponse) => {
    if (!fresh.refreshToken || fresh.refreshToken === (rotated?.current ?? grant.refreshToken)) return;
    rotated = { replaced: grant.refreshToken, current: fresh.refreshToken };
    if (!('update' in secret)) return;
    try {
      await secret.update({ refreshToken: fresh.refreshToken });
      rotated = undefined;
    } catch (error) {
      options.onWriteBackFailed?.(error as Error);
    }
  };

  const fetchToken = async (grant: TokenGrant): Promise<MailLogin> => {
    const now = clock();
    // The secret may hold a token older than the one we were last given, if writing it back failed.
    const unsaved = grant.type === 'oauth2-refresh-token' && rotated?.replaced === grant.refreshToken;
    const refreshToken = unsaved ? rotated?.current : undefined;
    const fresh = await requestToken(grant.tokenUrl, toTokenRequest(grant, now, refreshToken), options.endpoint);
    if (grant.type === 'oauth2-refresh-token') await writeBack(grant, fresh);
    const lifetimeMs = fresh.expiresInSeconds * 1000;
    const login = { username: grant.username, accessToken: fresh.accessToken, expiresAtMs: now + lifetimeMs };
    cached = { login, renewAtMs: now + lifetimeMs - renewMarginMs(lifetimeMs) };
    return login;
  };

  return {
    async get({ refresh = false } = {}) {
      if (refresh) cached = undefined;
      if (cached && clock() < cached.renewAtMs) return cached.login;
      // Callers that meet at once share one fetch: a refresh token the provider rotates may be redeemed only once,
      // so several refused sign-ins (one per pooled connection) must not each redeem it. A refresh joins only a
      // refresh, since another fetch may still read a cached secret.
      if (inFlight && (inFlight.refresh || !refresh)) return inFlight.run;
      const run = (async () => {
        // A refresh token may have been rotated by another container since: read it fresh before using it.
        let credentials = await secret.get({ refresh });
        if (credentials.type === 'oauth2-refresh-token' && !refresh) credentials = await secret.get({ refresh: true });
        if (credentials.type === 'password') return { username: credentials.username, password: credentials.password };
        return fetchToken(credentials);
      })();
      inFlight = { run, refresh };
      try {
        return await run;
      } finally {
        if (inFlight?.run === run) inFlight = undefined;
      }
    },
  };
}
