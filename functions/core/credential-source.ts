import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { ConfigError } from './errors.js';
import { isLoopbackHost } from './is-loopback-host.js';

/**
 * Where a transport gets its credentials. Production reads Secrets Manager (cached); the local twin reads a file.
 * `refresh` bypasses the cache, used after an authentication failure so that a rotated secret is picked up.
 */
export interface CredentialSource<T> {
  get(options?: { refresh?: boolean }): Promise<T>;
}

/**
 * A credential source that can also store a changed field (a refresh token the provider rotated) in the secret, so
 * that the next reader, in this container or another, gets it.
 */
export interface WritableCredentialSource<T> extends CredentialSource<T> {
  update(changes: Record<string, string>): Promise<void>;
}

/**
 * A token request that failed, as an OAuth2 credential source (functions/oauth/) throws it from `get`; the transports
 * and the poller turn it into failures of their own. `blocked`: our setup is wrong (a revoked or mistyped client, a
 * consent or delegation missing); an operator must act, and retrying changes nothing. `retry`: the endpoint had
 * trouble; try again later. Never carries a token or a secret.
 */
export class TokenError extends Error {
  readonly action: 'blocked' | 'retry';
  /** The RFC 6749 5.2 `error` code, when the endpoint gave one. */
  readonly oauthError?: string;
  readonly httpStatus?: number;

  constructor(
    action: 'blocked' | 'retry',
    message: string,
    facts: { oauthError?: string; httpStatus?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: facts.cause });
    this.name = 'TokenError';
    this.action = action;
    this.oauthError = facts.oauthError;
    this.httpStatus = facts.httpStatus;
  }
}

/** The JSON stored in an SMTP or IMAP secret of type `password`: `{ "username": "...", "password": "..." }`. */
export type LoginCredentials = { username: string; password: string };

/** What a mail client signs in with: a password, or an OAuth2 access token (SASL XOAUTH2 / OAUTHBEARER). */
export type MailLogin = LoginCredentials | { username: string; accessToken: string; expiresAtMs?: number };
export type SmtpCredentials = MailLogin;

/** Whether a login carries an OAuth2 access token rather than a password. */
export const isTokenLogin = (login: MailLogin): login is Extract<MailLogin, { accessToken: string }> =>
  'accessToken' in login;

const CredentialTypes = {
  password: 'password',
  clientCredentials: 'oauth2-client-credentials',
  serviceAccount: 'oauth2-service-account',
  refreshToken: 'oauth2-refresh-token',
} as const;
type CredentialType = (typeof CredentialTypes)[keyof typeof CredentialTypes];

/** Microsoft 365 defaults: the v2.0 token endpoint of the tenant, and Exchange Online's resource. */
const MICROSOFT_AUTHORITY = 'https://login.microsoftonline.com';
const MICROSOFT_SCOPE = 'https://outlook.office365.com/.default';
/** Google defaults: the token endpoint and the full-mail scope IMAP and SMTP require. */
const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';
export const GOOGLE_MAIL_SCOPE = 'https://mail.google.com/';

type PasswordCredentials = { type: 'password'; username: string; password: string };
/** Microsoft 365 app-only (client-credentials grant), with a client secret or a certificate (signed assertion). */
export type ClientCredentialsGrant = {
  type: 'oauth2-client-credentials';
  /** The mailbox signed in to. */
  username: string;
  tenantId: string;
  clientId: string;
  tokenUrl: string;
  scope: string;
  clientSecret?: string;
  certificate?: { certificatePem: string; privateKey: KeyObject };
};
/** Google service account with domain-wide delegation (JWT-bearer grant, RFC 7523); `username` is the subject. */
export type ServiceAccountGrant = {
  type: 'oauth2-service-account';
  username: string;
  clientEmail: string;
  privateKey: KeyObject;
  privateKeyId?: string;
  tokenUrl: string;
  scope: string;
};
/** Any provider: a refresh token obtained once with consent, exchanged for access tokens (RFC 6749 6). */
export type RefreshTokenGrant = {
  type: 'oauth2-refresh-token';
  username: string;
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  refreshToken: string;
  scope?: string;
};
/** A mailbox or relay secret, checked. */
export type MailCredentials = PasswordCredentials | ClientCredentialsGrant | ServiceAccountGrant | RefreshTokenGrant;

const TENANT = /^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$/;
const microsoftTokenUrl = (tenantId: string) => `${MICROSOFT_AUTHORITY}/${tenantId}/oauth2/v2.0/token`;

/** Reads a secret's fields, collecting every problem (by field name, never the value). */
class FieldReader {
  readonly problems: string[] = [];

  constructor(private readonly record: Record<string, unknown>) {}

  /** A non-empty string under the first of `names` present (the others are accepted spellings). */
  optional(...names: string[]): string | undefined {
    const name = names.find((n) => this.record[n] !== undefined);
    if (name === undefined) return undefined;
    const value = this.record[name];
    if (typeof value !== 'string' || value.trim() === '') {
      this.problems.push(`${name} must be a non-empty string`);
      return undefined;
    }
    return value;
  }

  required(why: string, ...names: string[]): string {
    const value = this.optional(...names);
    if (value === undefined && names.every((n) => this.record[n] === undefined)) {
      this.problems.push(`${names[0]} is required (${why})`);
    }
    return value ?? '';
  }

  url(names: string[], fallback: string | undefined): string {
    const value = this.optional(...names) ?? fallback;
    const name = names.find((n) => this.record[n] !== undefined) ?? names[0];
    if (value === undefined) {
      this.problems.push(`${name} is required (the provider's token endpoint)`);
      return '';
    }
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      this.problems.push(`${name} must be an absolute URL`);
      return value;
    }
    // Tokens and client secrets travel in this request: TLS always, except to this machine in tests.
    if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && isLoopbackHost(parsed.hostname))) {
      this.problems.push(`${name} must use https (plain http only for a loopback host)`);
    }
    return value;
  }

  privateKey(...names: string[]): KeyObject | undefined {
    const pem = this.required('a PEM private key', ...names);
    if (pem === '') return undefined;
    // Named as the secret spells it (Google's key file says private_key).
    const name = names.find((n) => this.record[n] !== undefined);
    try {
      const key = createPrivateKey(pem);
      if (key.asymmetricKeyType !== 'rsa') this.problems.push(`${name} must be an RSA key (tokens are signed RS256)`);
      return key;
    } catch {
      this.problems.push(`${name} is not a readable PEM private key`);
      return undefined;
    }
  }
}

function checkPassword(r: FieldReader): PasswordCredentials {
  return {
    type: 'password',
    username: r.required('the login name', 'username'),
    password: r.required('the password', 'password'),
  };
}

function checkClientCredentials(r: FieldReader): ClientCredentialsGrant {
  const tenantId = r.required('the directory (tenant) ID or its domain', 'tenantId');
  if (tenantId !== '' && !TENANT.test(tenantId)) r.problems.push('tenantId must be a tenant GUID or domain name');
  const grant: ClientCredentialsGrant = {
    type: 'oauth2-client-credentials',
    username: r.required('the mailbox to sign in to', 'username'),
    tenantId,
    clientId: r.required('the application (client) ID', 'clientId'),
    tokenUrl: r.url(['tokenUrl'], TENANT.test(tenantId) ? microsoftTokenUrl(tenantId) : undefined),
    scope: r.optional('scope') ?? MICROSOFT_SCOPE,
  };
  const clientSecret = r.optional('clientSecret');
  const certificatePem = r.optional('certificate');
  const either = r.problems.some((p) => /^(clientSecret|certificate) /.test(p));
  if (clientSecret !== undefined && certificatePem !== undefined) {
    r.problems.push('give clientSecret or certificate, not both');
  }
  if (clientSecret === undefined && certificatePem === undefined && !either) {
    r.problems.push('clientSecret or certificate (with privateKey) is required');
  }
  if (clientSecret !== undefined) grant.clientSecret = clientSecret;
  if (certificatePem !== undefined) {
    const privateKey = r.privateKey('privateKey');
    try {
      const certificate = new X509Certificate(certificatePem);
      const matches = privateKey !== undefined && certificate.checkPrivateKey(privateKey);
      if (privateKey && !matches) r.problems.push('privateKey does not belong to certificate');
      if (privateKey) grant.certificate = { certificatePem, privateKey };
    } catch {
      r.problems.push('certificate is not a readable PEM certificate');
    }
  }
  return grant;
}

function checkServiceAccount(r: FieldReader): ServiceAccountGrant {
  // The names of Google's downloaded key file are accepted too, so the key can be pasted in as it comes.
  const privateKey = r.privateKey('privateKey', 'private_key');
  const privateKeyId = r.optional('privateKeyId', 'private_key_id');
  return {
    type: 'oauth2-service-account',
    username: r.required('the mailbox to act as, by domain-wide delegation', 'subject'),
    clientEmail: r.required("the service account's e-mail address", 'clientEmail', 'client_email'),
    privateKey: privateKey as KeyObject,
    ...(privateKeyId ? { privateKeyId } : {}),
    tokenUrl: r.url(['tokenUrl', 'token_uri'], GOOGLE_TOKEN_URL),
    scope: r.optional('scope') ?? GOOGLE_MAIL_SCOPE,
  };
}

function checkRefreshToken(r: FieldReader): RefreshTokenGrant {
  const scope = r.optional('scope');
  return {
    type: 'oauth2-refresh-token',
    username: r.required('the mailbox to sign in to', 'username'),
    tokenUrl: r.url(['tokenUrl'], undefined),
    clientId: r.required('the OAuth2 client ID', 'clientId'),
    clientSecret: r.required('the OAuth2 client secret', 'clientSecret'),
    refreshToken: r.required('the refresh token from the one-time consent', 'refreshToken'),
    ...(scope ? { scope } : {}),
  };
}

const CHECKS: Record<CredentialType, (r: FieldReader) => MailCredentials> = {
  password: checkPassword,
  'oauth2-client-credentials': checkClientCredentials,
  'oauth2-service-account': checkServiceAccount,
  'oauth2-refresh-token': checkRefreshToken,
};

/** Thrown for a secret that cannot be used; lists every problem, naming fields and never their values. */
export class CredentialsError extends Error {
  readonly problems: string[];

  constructor(secretName: string, problems: string[]) {
    super(`secret ${secretName} cannot be used: ${problems.join('; ')}`);
    this.name = 'CredentialsError';
    this.problems = problems;
  }
}

/**
 * Checks a mailbox or relay secret's parsed JSON: `type` (one of {@link CredentialTypes}, @default password) and the
 * fields that type needs. Every problem is named in one {@link CredentialsError}.
 */
export function toMailCredentials(value: unknown, secretName: string): MailCredentials {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CredentialsError(secretName, ['must be a JSON object']);
  }
  const record = value as Record<string, unknown>;
  // Google's key file says "service_account"; it needs only `subject` added.
  const type = record.type === 'service_account' ? CredentialTypes.serviceAccount : (record.type ?? 'password');
  const check = typeof type === 'string' ? CHECKS[type as CredentialType] : undefined;
  if (!check) {
    throw new CredentialsError(secretName, [`type must be one of ${Object.values(CredentialTypes).join(', ')}`]);
  }
  const reader = new FieldReader(record);
  const credentials = check(reader);
  if (reader.problems.length > 0) throw new CredentialsError(secretName, reader.problems);
  return credentials;
}

/** Checks a secret that must hold a username and password (a server we run ourselves in the local twin). */
export function toLoginCredentials(value: unknown, secretName: string): LoginCredentials {
  const credentials = toMailCredentials(value, secretName);
  if (credentials.type !== 'password') throw new CredentialsError(secretName, ['type must be password here']);
  return { username: credentials.username, password: credentials.password };
}

/**
 * Reads every secret once and throws one {@link ConfigError} naming every problem of every secret: what an entry
 * point runs at start, so that a wrong secret stops it there rather than at the first send or poll.
 */
export async function checkCredentials(sources: Array<CredentialSource<unknown>>): Promise<void> {
  const results = await Promise.allSettled(sources.map((source) => source.get()));
  const problems = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
  if (problems.length > 0) throw new ConfigError(problems);
}
