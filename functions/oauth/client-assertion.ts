import { X509Certificate, constants, createHash, randomUUID, sign, type KeyObject } from 'node:crypto';
import type { ClientCredentialsGrant, ServiceAccountGrant } from '#core/credential-source.js';

const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * A compact JWS `header.claims.signature`, signed with SHA-256 by RSASSA-PKCS1-v1_5 (RS256, RFC 7518 3.3) or by
 * RSASSA-PSS with a salt as long as the hash (PS256, RFC 7518 3.5).
 */
function signJwt(
  alg: 'RS256' | 'PS256',
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  key: KeyObject,
): string {
  const input = `${encode({ ...header, alg, typ: 'JWT' })}.${encode(claims)}`;
  const signingKey = alg === 'PS256' ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : key;
  return `${input}.${sign('sha256', Buffer.from(input), signingKey).toString('base64url')}`;
}

/**
 * The client assertion a Microsoft identity platform app signs with its certificate's key instead of sending a
 * client secret (RFC 7523 2.2): `aud` is the token endpoint, `iss` and `sub` the client ID, valid ten minutes.
 * Signed PS256, with the certificate uploaded to the app registration named by its SHA-256 thumbprint
 * (`x5t#S256`), as Microsoft's "certificate credentials" page asks (the SHA-1 `x5t` with RS256 is the old form).
 */
export function toClientAssertion(grant: ClientCredentialsGrant & { certificate: object }, nowMs: number): string {
  const der = new X509Certificate(grant.certificate.certificatePem).raw;
  const now = Math.floor(nowMs / 1000);
  const header = { 'x5t#S256': createHash('sha256').update(der).digest('base64url') };
  const claims = { aud: grant.tokenUrl, iss: grant.clientId, sub: grant.clientId, jti: randomUUID() };
  return signJwt('PS256', header, { ...claims, iat: now, nbf: now, exp: now + 600 }, grant.certificate.privateKey);
}

/**
 * The JWT a Google service account signs to act as a mailbox of its domain (domain-wide delegation; RFC 7523 2.1):
 * `iss` the account, `sub` the mailbox, `scope`, `aud` the token endpoint, valid one hour (Google's maximum), RS256
 * (the only algorithm Google's token endpoint takes).
 */
export function toServiceAccountAssertion(grant: ServiceAccountGrant, nowMs: number): string {
  const now = Math.floor(nowMs / 1000);
  return signJwt(
    'RS256',
    grant.privateKeyId ? { kid: grant.privateKeyId } : {},
    { iss: grant.clientEmail, sub: grant.username, scope: grant.scope, aud: grant.tokenUrl, iat: now, exp: now + 3600 },
    grant.privateKey,
  );
}
