import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  X509Certificate,
  constants,
  createHash,
  createPublicKey,
  randomBytes,
  verify,
  type KeyObject,
} from 'node:crypto';
import { LOOPBACK, listenOnLoopback } from './loopback.js';

/** An app registration: a client secret, or a certificate whose key signs assertions; the one mailbox it may use. */
type OAuth2Client = { clientId: string; clientSecret?: string; certificatePem?: string; mailbox: string };
/** A service account with domain-wide delegation: its public key, and the mailboxes it may act as. */
type OAuth2ServiceAccount = { clientEmail: string; publicKeyPem: string; subjects: string[]; scope?: string };
/** A refresh token granted once, with consent, to a client for a mailbox. */
type OAuth2RefreshGrant = { clientId: string; clientSecret: string; refreshToken: string; username: string };

/** What the server can be told to do to the next token requests. */
export type OAuth2Fault =
  | { kind: 'invalid_client' | 'invalid_grant' | 'unauthorized_client' }
  /** An error that says to try again, in a 400 as some providers send it (RFC 6749 4.1.2.1 names it). */
  | { kind: 'temporarily_unavailable' }
  | { kind: 'server_error' }
  | { kind: 'slow'; delayMs: number };

export type OAuth2ServerOptions = {
  clients?: OAuth2Client[];
  serviceAccounts?: OAuth2ServiceAccount[];
  refreshGrants?: OAuth2RefreshGrant[];
  /** `expires_in` of issued access tokens. @default 3600 */
  tokenLifetimeSeconds?: number;
  /** Issue a new refresh token with every refresh, and refuse the old one from then on. @default false */
  rotateRefreshTokens?: boolean;
};

type IssuedToken = { username: string; clientId: string; scope: string; expiresAtMs: number };

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const MAX_BODY = 64 * 1024;

/** How a JWT must be signed: RSASSA-PKCS1-v1_5 (RS256) or RSASSA-PSS (PS256), both with SHA-256 (RFC 7518 3.3, 3.5). */
type JwtAlgorithm = 'RS256' | 'PS256';

/** Checks a compact JWT signed `expect.alg` against `key` and its claims against `expect`; the claims or why not. */
function verifyJwt(
  jwt: string,
  key: KeyObject,
  expect: { alg: JwtAlgorithm; aud: string; iss: string; header?: Record<string, string> },
  nowMs: number,
): object | string {
  const [header, claims, signature] = jwt.split('.');
  if (!header || !claims || signature === undefined) return 'not a compact JWT';
  const head = JSON.parse(Buffer.from(header, 'base64url').toString()) as Record<string, unknown>;
  if (head.alg !== expect.alg) return `alg must be ${expect.alg}`;
  for (const [name, value] of Object.entries(expect.header ?? {})) {
    if (head[name] !== value) return `${name} does not name the registered certificate`;
  }
  const verifyKey = expect.alg === 'PS256' ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : key;
  const signed = verify('sha256', Buffer.from(`${header}.${claims}`), verifyKey, Buffer.from(signature, 'base64url'));
  if (!signed) return 'signature does not verify';
  const body = JSON.parse(Buffer.from(claims, 'base64url').toString()) as Record<string, unknown>;
  const now = nowMs / 1000;
  if (body.aud !== expect.aud) return 'aud is not this token endpoint';
  if (body.iss !== expect.iss) return 'iss is not the client';
  if (typeof body.exp !== 'number' || body.exp < now) return 'expired';
  if (typeof body.iat === 'number' && body.iat > now + 60) return 'issued in the future';
  if (typeof body.iat === 'number' && body.exp - body.iat > 3600) return 'valid for more than an hour';
  return body;
}

/**
 * A small OAuth2 authorisation server on 127.0.0.1 for tests and the twin: the client-credentials grant (client
 * secret or a PS256 client assertion naming the registered certificate, RFC 7523 2.2), the JWT-bearer grant of
 * service accounts (RFC 7523 2.1, RS256, signature checked with the account's public key), the refresh-token grant
 * (optionally rotating), and token introspection (RFC 7662) for Dovecot's oauth2 passdb and an SMTP server. It can be
 * told to fail the next token requests (`invalid_client`, 500, `temporarily_unavailable`, slow answers) or
 * introspections (500), to expire every token issued so far, and to revoke a client.
 */
export async function startOAuth2Server(options: OAuth2ServerOptions = {}) {
  const clients = new Map((options.clients ?? []).map((c) => [c.clientId, c]));
  const accounts = new Map(
    (options.serviceAccounts ?? []).map((a) => [a.clientEmail, { ...a, key: createPublicKey(a.publicKeyPem) }]),
  );
  const refreshGrants = new Map((options.refreshGrants ?? []).map((g) => [g.refreshToken, g]));
  const revoked = new Set<string>();
  const tokens = new Map<string, IssuedToken>();
  const faults: OAuth2Fault[] = [];
  const log: Array<{ grantType: string; outcome: string }> = [];
  let introspections = 0;
  let introspectionFailures = 0;

  const issue = (username: string, clientId: string, scope: string) => {
    const accessToken = randomBytes(24).toString('base64url');
    const lifetime = options.tokenLifetimeSeconds ?? 3600;
    tokens.set(accessToken, { username, clientId, scope, expiresAtMs: Date.now() + lifetime * 1000 });
    return { access_token: accessToken, token_type: 'Bearer', expires_in: lifetime, scope };
  };

  /** The token request's answer: [status, body]. */
  const grant = (form: URLSearchParams, tokenUrl: string): [number, Record<string, unknown>] => {
    const refuse = (error: string, description: string, status = 400): [number, Record<string, unknown>] => [
      status,
      { error, error_description: description },
    ];
    const grantType = form.get('grant_type') ?? '';
    if (grantType === 'client_credentials') {
      const client = clients.get(form.get('client_id') ?? '');
      if (!client || revoked.has(client.clientId)) {
        return refuse('invalid_client', 'AADSTS700016: Application not found in the directory.', 401);
      }
      if (form.get('client_assertion_type') === ASSERTION_TYPE) {
        if (!client.certificatePem) return refuse('invalid_client', 'no certificate registered for this client', 401);
        // As the Microsoft identity platform asks: PS256, the certificate named by its SHA-256 thumbprint.
        const certificate = new X509Certificate(client.certificatePem);
        const thumbprint = createHash('sha256').update(certificate.raw).digest('base64url');
        const expected = {
          alg: 'PS256',
          aud: tokenUrl,
          iss: client.clientId,
          header: { 'x5t#S256': thumbprint },
        } as const;
        const checked = verifyJwt(form.get('client_assertion') ?? '', certificate.publicKey, expected, Date.now());
        if (typeof checked === 'string') return refuse('invalid_client', `client assertion refused: ${checked}`, 401);
      } else if (!client.clientSecret || form.get('client_secret') !== client.clientSecret) {
        return refuse('invalid_client', 'AADSTS7000215: Invalid client secret provided.', 401);
      }
      return [200, issue(client.mailbox, client.clientId, form.get('scope') ?? '')];
    }
    if (grantType === JWT_BEARER) {
      const assertion = form.get('assertion') ?? '';
      const payload = Buffer.from(assertion.split('.')[1] ?? '', 'base64url').toString() || '{}';
      const claims = JSON.parse(payload) as { iss?: string; sub?: string; scope?: string };
      const account = accounts.get(claims.iss ?? '');
      if (!account || revoked.has(account.clientEmail)) {
        return refuse('invalid_client', 'The OAuth client was not found.', 401);
      }
      const expected = { alg: 'RS256', aud: tokenUrl, iss: account.clientEmail } as const;
      const checked = verifyJwt(assertion, account.key, expected, Date.now());
      if (typeof checked === 'string') return refuse('invalid_grant', `Invalid JWT: ${checked}`);
      // Domain-wide delegation: only the mailboxes and scope the administrator allowed.
      if (!claims.sub || !account.subjects.includes(claims.sub)) {
        return refuse('unauthorized_client', 'Client is unauthorized to retrieve access tokens using this method.');
      }
      if (account.scope && claims.scope !== account.scope) {
        return refuse('unauthorized_client', 'Client not authorized for any of the scopes requested.');
      }
      return [200, issue(claims.sub, account.clientEmail, claims.scope ?? '')];
    }
    if (grantType === 'refresh_token') {
      const held = refreshGrants.get(form.get('refresh_token') ?? '');
      if (!held || form.get('client_id') !== held.clientId) {
        return refuse('invalid_grant', 'Token has been expired or revoked.');
      }
      if (revoked.has(held.clientId) || form.get('client_secret') !== held.clientSecret) {
        return refuse('invalid_client', 'The OAuth client was not found.', 401);
      }
      const answer: Record<string, unknown> = issue(held.username, held.clientId, form.get('scope') ?? '');
      if (options.rotateRefreshTokens) {
        const next = randomBytes(24).toString('base64url');
        refreshGrants.delete(held.refreshToken);
        refreshGrants.set(next, { ...held, refreshToken: next });
        answer.refresh_token = next;
      }
      return [200, answer];
    }
    return refuse('unsupported_grant_type', `grant_type ${grantType} is not supported`);
  };

  const send = (res: ServerResponse, status: number, body: object) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };

  const readForm = async (req: IncomingMessage): Promise<URLSearchParams> => {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY) throw new Error('request body too large');
      chunks.push(chunk);
    }
    return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  };

  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const form = req.method === 'POST' ? await readForm(req) : new URLSearchParams();
      if (req.method === 'POST' && url.pathname.endsWith('/token')) {
        const grantType = form.get('grant_type') ?? '';
        const fault = faults.shift();
        if (fault?.kind === 'slow') await new Promise((resolve) => setTimeout(resolve, fault.delayMs));
        if (fault?.kind === 'server_error') {
          log.push({ grantType, outcome: 'server_error' });
          return send(res, 500, { error: 'server_error', error_description: 'AADSTS90033: transient error' });
        }
        if (fault && fault.kind !== 'slow') {
          log.push({ grantType, outcome: fault.kind });
          const status = fault.kind === 'invalid_client' ? 401 : 400;
          return send(res, status, { error: fault.kind, error_description: `told to answer ${fault.kind}` });
        }
        // Assertions must name the endpoint they were sent to as their audience.
        const [status, body] = grant(form, `${base}${url.pathname}`);
        log.push({ grantType, outcome: status === 200 ? 'issued' : String(body.error) });
        return send(res, status, body);
      }
      if (url.pathname === '/introspect') {
        // RFC 7662 2.1: the token comes as a form field; Dovecot's other modes send it as a bearer header or query.
        introspections += 1;
        if (introspectionFailures > 0) {
          introspectionFailures -= 1;
          return send(res, 500, { error: 'server_error' });
        }
        const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
        const token = form.get('token') ?? url.searchParams.get('token') ?? bearer ?? '';
        const held = tokens.get(token);
        if (!held || held.expiresAtMs <= Date.now() || revoked.has(held.clientId)) {
          return send(res, 200, { active: false });
        }
        const exp = Math.floor(held.expiresAtMs / 1000);
        return send(res, 200, {
          active: true,
          username: held.username,
          client_id: held.clientId,
          scope: held.scope,
          exp,
        });
      }
      return send(res, 404, { error: 'not_found' });
    })().catch((error: Error) => {
      if (!res.headersSent) send(res, 400, { error: 'invalid_request', error_description: error.message });
    });
  });
  const port = await listenOnLoopback(server);
  const base = `http://${LOOPBACK}:${port}`;

  return {
    url: base,
    /** The token endpoint (any path ending in /token answers, e.g. `/<tenant>/oauth2/v2.0/token`). */
    tokenUrl: `${base}/token`,
    introspectionUrl: `${base}/introspect`,
    /** The next token requests meet these faults, one each, in order. */
    fail(...next: OAuth2Fault[]) {
      faults.push(...next);
    },
    /** Every access token issued so far is expired from now on (introspection says inactive). */
    expireTokens() {
      for (const token of tokens.values()) token.expiresAtMs = 0;
    },
    /** The client (ID or service account address) is refused from now on, and its tokens are inactive. */
    revoke(clientId: string) {
      revoked.add(clientId);
    },
    /** The refresh tokens currently valid. */
    get refreshTokens() {
      return [...refreshGrants.keys()];
    },
    /** Every token request, in order: its grant type and what it got. */
    get requests() {
      return [...log];
    },
    /** The next `count` introspection requests answer 500, as an identity provider in trouble would. */
    failIntrospections(count: number) {
      introspectionFailures += count;
    },
    get introspections() {
      return introspections;
    },
    /** Whether a token is active now, as introspection would say. */
    isActive(token: string) {
      const held = tokens.get(token);
      return held !== undefined && held.expiresAtMs > Date.now() && !revoked.has(held.clientId);
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
