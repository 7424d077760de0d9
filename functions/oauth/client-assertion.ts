import { X509Certificate, createHash, randomUUID, sign, type KeyObject } from 'node:crypto';
import type { ClientCredentialsGrant, ServiceAccountGrant } from '#core/credential-source.js';

const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A compact JWS signed RS256 (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 3.3): `header.claims.signature`. */
function signJwt(header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject): string {
  const input = `${encode({ ...header, alg: 'RS256', typ: 'JWT' })}.${encode(claims)}`;
  return `${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`;
}

/**
 * The client assertion a Microsoft identity platform app signs with its certificate's key instead of sending a
 * client secret (RFC 7523 2.2): `aud` is the token endpoint, `iss` and `sub` the client ID, valid ten minutes.
 * `x5t` / `x5t#S256` name the certificate uploaded to the app registration by its thumbprint.
 */
export function toClientAssertion(grant: ClientCredentialsGrant & { certificate: object }, nowMs: number): string {
  const der = new X509Certificate(grant.certificate.certificatePem).raw;
  const thumbprint = (algorithm: string) => createHash(algorithm).update(der).digest('base64url');
  const now = Math.floor(nowMs / 1000);
  const header = { x5t: thumbprint('sha1'), 'x5t#S256': thumbprint('sha256') };
  const claims = { aud: grant.tokenUrl, iss: grant.clientId, sub: grant.clientId, jti: randomUUID() };
  return signJwt(header, { ...claims, iat: now, nbf: now, exp: now + 600 }, grant.certificate.privateKey);
}

/**
 * The JWT a Google service account signs to act as a mailbox of its domain (domain-wide delegation; RFC 7523 2.1):
 * `iss` the account, `sub` the mailbox, `scope`, `aud` the token endpoint, valid one hour (Google's maximum).
 */
export function toServiceAccountAssertion(grant: ServiceAccountGrant, nowMs: number): string {
  const now = Math.floor(nowMs / 1000);
  return signJwt(
    grant.privateKeyId ? { kid: grant.privateKeyId } : {},
    { iss: grant.clientEmail, sub: grant.username, scope: grant.scope, aud: grant.tokenUrl, iat: now, exp: now + 3600 },
    grant.privateKey,
  );
}
