import { generateKeyPairSync } from 'node:crypto';
import { toMailCredentials, type MailCredentials, type WritableCredentialSource } from '#core/credential-source.js';
import { GOOGLE_MAIL_SCOPE } from '#core/credential-source.js';
import { startOAuth2Server, type OAuth2ServerOptions } from '#local/oauth2-server.js';
import { localTlsCertificate } from '#local/tls-certificate.js';

/** The mailbox every grant of the local OAuth2 server is for. */
export const OAUTH_MAILBOX = 'bounces';

/**
 * A local OAuth2 server with one registration of each kind a mailbox secret can name, and the secrets that use
 * them: a Microsoft-style app with a client secret, one with a certificate, a Google-style service account, and a
 * refresh token (rotated on every use).
 */
export async function startOAuthPeer(extra: Partial<OAuth2ServerOptions> = {}) {
  const cert = localTlsCertificate();
  const serviceKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const server = await startOAuth2Server({
    clients: [
      { clientId: 'app-secret', clientSecret: 'app-secret-value', mailbox: OAUTH_MAILBOX },
      { clientId: 'app-cert', certificatePem: cert.cert, mailbox: OAUTH_MAILBOX },
      // For a test to revoke.
      { clientId: 'app-revoked', clientSecret: 'revoked-secret', mailbox: OAUTH_MAILBOX },
    ],
    serviceAccounts: [
      {
        clientEmail: 'poller@project.iam.gserviceaccount.com',
        publicKeyPem: serviceKey.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
        subjects: [OAUTH_MAILBOX],
        scope: GOOGLE_MAIL_SCOPE,
      },
    ],
    refreshGrants: [
      {
        clientId: 'installed-app',
        clientSecret: 'installed-secret',
        refreshToken: 'refresh-1',
        username: OAUTH_MAILBOX,
      },
    ],
    rotateRefreshTokens: true,
    ...extra,
  });
  const secrets = {
    clientSecret: {
      type: 'oauth2-client-credentials',
      tenantId: 'contoso.onmicrosoft.com',
      clientId: 'app-secret',
      clientSecret: 'app-secret-value',
      username: OAUTH_MAILBOX,
      tokenUrl: `${server.url}/contoso.onmicrosoft.com/oauth2/v2.0/token`,
    },
    certificate: {
      type: 'oauth2-client-credentials',
      tenantId: 'contoso.onmicrosoft.com',
      clientId: 'app-cert',
      certificate: cert.cert,
      privateKey: cert.key,
      username: OAUTH_MAILBOX,
      tokenUrl: `${server.url}/contoso.onmicrosoft.com/oauth2/v2.0/token`,
    },
    serviceAccount: {
      type: 'service_account',
      client_email: 'poller@project.iam.gserviceaccount.com',
      private_key: serviceKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      private_key_id: 'key-1',
      token_uri: server.tokenUrl,
      subject: OAUTH_MAILBOX,
    },
    refreshToken: {
      type: 'oauth2-refresh-token',
      tokenUrl: server.tokenUrl,
      clientId: 'installed-app',
      clientSecret: 'installed-secret',
      refreshToken: 'refresh-1',
      username: OAUTH_MAILBOX,
    },
  } as const;
  return { server, secrets };
}

/**
 * A secret held in memory, as Secrets Manager holds it: read and checked on every `get`, changed by `update`
 * (a fake of our own port, counting its writes). `failWrites` makes writing fail, as a missing permission would.
 */
export function memorySecret(
  initial: object,
  options: { failWrites?: boolean } = {},
): WritableCredentialSource<MailCredentials> & { value: Record<string, unknown>; writes: number } {
  const holder = {
    value: { ...initial } as Record<string, unknown>,
    writes: 0,
    async get() {
      return toMailCredentials(holder.value, 'memory');
    },
    async update(changes: Record<string, string>) {
      if (options.failWrites)
        throw new Error('AccessDeniedException: not authorized to perform secretsmanager:PutSecretValue');
      holder.value = { ...holder.value, ...changes };
      holder.writes += 1;
    },
  };
  return holder;
}
