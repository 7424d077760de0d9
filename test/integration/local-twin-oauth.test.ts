import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createSuppressionStore } from '#aws/suppression-store.js';
import { ConfigError } from '#core/errors.js';
import { startDovecot } from '#local/dovecot.js';
import { createLocalFileCredentials, loadLocalSecrets } from '#local/local-credentials.js';
import { localTlsCertificate } from '#local/tls-certificate.js';
import { startTwin } from '#local/twin.js';
import { createEmailProducer } from '#producer/index.js';
import { emailJobFactory } from '../support/factories.js';
import { OAUTH_MAILBOX, startOAuthPeer } from '../support/oauth-harness.js';

const credentialsFile = (entries: object) => {
  const dir = mkdtempSync(join(tmpdir(), 'email-dispatch-twin-oauth-'));
  writeFileSync(join(dir, 'credentials.json'), JSON.stringify(entries));
  return { dir, path: join(dir, 'credentials.json') };
};

const RELAY = { username: 'relay', password: 'p' };
const REFRESH_ENTRY = {
  type: 'oauth2-refresh-token',
  tokenUrl: 'https://idp.example.com/token',
  clientId: 'c',
  clientSecret: 's',
  refreshToken: 'r',
  username: 'u',
};

describe('the local credentials file', () => {
  it('takes any credential type a secret takes, and names every problem of both entries', () => {
    const good = credentialsFile({ smtp: RELAY, imap: REFRESH_ENTRY });
    const bad = credentialsFile({
      smtp: { username: 'relay' },
      imap: { type: 'oauth2-client-credentials', tenantId: 't', username: 'u' },
    });
    try {
      expect(loadLocalSecrets(good.path).imap).toMatchObject({ type: 'oauth2-refresh-token', username: 'u' });
      const problems = (() => {
        try {
          loadLocalSecrets(bad.path);
          return [];
        } catch (error) {
          expect(error).toBeInstanceOf(ConfigError);
          return (error as ConfigError).problems;
        }
      })();
      expect(problems).toEqual([
        `${bad.path}#smtp: password is required (the password)`,
        `${bad.path}#imap: clientId is required (the application (client) ID)`,
        `${bad.path}#imap: clientSecret or certificate (with privateKey) is required`,
      ]);
    } finally {
      rmSync(good.dir, { recursive: true, force: true });
      rmSync(bad.dir, { recursive: true, force: true });
    }
  });

  it('writes a changed field back into its entry, keeping the rest of the file', async () => {
    const file = credentialsFile({ smtp: RELAY, imap: { ...REFRESH_ENTRY, refreshToken: 'old' } });
    try {
      const source = createLocalFileCredentials(file.path, 'imap');
      await source.update({ refreshToken: 'new' });
      expect(await source.get()).toMatchObject({ refreshToken: 'new', clientId: 'c' });
      expect(JSON.parse(readFileSync(file.path, 'utf8')).smtp).toEqual(RELAY);
    } finally {
      rmSync(file.dir, { recursive: true, force: true });
    }
  });
});

describe('the local twin with an IMAP server that takes only OAuth2 tokens', () => {
  it('signs in with the refresh token of the credentials file, polls, appends bounces, and keeps the rotated token', async () => {
    // Prepare: Dovecot checks tokens with the local OAuth2 server, which rotates refresh tokens on every use.
    const oauth = await startOAuthPeer();
    const cert = localTlsCertificate();
    const dovecot = await startDovecot({
      tls: cert,
      users: [{ username: OAUTH_MAILBOX, password: 'not-used-by-the-twin' }],
      oauth2: { introspectionUrl: oauth.server.introspectionUrl },
    });
    const file = credentialsFile({
      smtp: { username: 'twin-relay', password: 'relay-pass' },
      imap: oauth.secrets.refreshToken,
    });
    const twin = await startTwin({
      dataDir: file.dir,
      ports: { aws: 0, dynamodb: 0, ses: 0, smtp: 0, imap: 0 },
      pollIntervalSeconds: 10,
      imap: { host: dovecot.host, port: dovecot.port, security: 'starttls', mailbox: 'INBOX', ca: cert.cert },
    });
    try {
      const producer = createEmailProducer({ sqs: twin.clients.sqsClient, queueUrl: twin.resources.jobsQueueUrl });
      const suppressions = createSuppressionStore(twin.clients.documents, twin.resources.suppressionTable);

      // Act: a job to an address the relay bounces; the bounce is appended to Dovecot, and the poller reads it.
      await producer.sendEmail(emailJobFactory({ to: ['gone@bounce.test'] }));
      let suppressed = new Set<string>();
      for (let i = 0; i < 60 && suppressed.size === 0; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        suppressed = await suppressions.findSuppressed(['gone@bounce.test']);
      }

      // Assess
      expect(suppressed).toEqual(new Set(['gone@bounce.test']));
      expect(oauth.server.requests.map((r) => r.outcome)).toContain('issued');
      expect(oauth.server.requests.every((r) => r.grantType === 'refresh_token' && r.outcome === 'issued')).toBe(true);
      // The file holds the refresh token the server now honours, not the one it started with.
      const stored = (JSON.parse(readFileSync(file.path, 'utf8')) as { imap: { refreshToken: string } }).imap
        .refreshToken;
      expect(stored).not.toBe(oauth.secrets.refreshToken.refreshToken);
      expect(oauth.server.refreshTokens).toEqual([stored]);
    } finally {
      await twin.stop();
      await dovecot.stop();
      await oauth.server.stop();
      rmSync(file.dir, { recursive: true, force: true });
    }
  }, 90_000);
});
