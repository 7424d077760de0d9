import { createServer, type Server } from 'node:http';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSecretsManagerCredentials } from '#aws/secrets-credentials.js';
import { CredentialsError, toMailCredentials } from '#core/credential-source.js';
import { createMailLoginSource } from '#oauth/mail-login-source.js';
import { startOAuthPeer } from '../support/oauth-harness.js';

// A Secrets Manager endpoint on loopback (JSON 1.1 protocol): GetSecretValue answers `secretString`, PutSecretValue
// replaces it with the new version's text and records it.
let secretString = '';
const written: string[] = [];
let server: Server;
let client: SecretsManagerClient;
let oauth: Awaited<ReturnType<typeof startOAuthPeer>>;

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      const arn = 'arn:aws:secretsmanager:eu-west-1:1:secret:relay';
      if (req.headers['x-amz-target'] === 'secretsmanager.PutSecretValue') {
        secretString = String((JSON.parse(Buffer.concat(chunks).toString()) as { SecretString?: string }).SecretString);
        written.push(secretString);
        res.end(JSON.stringify({ ARN: arn, Name: 'relay', VersionId: `v${written.length + 1}` }));
        return;
      }
      res.end(JSON.stringify({ ARN: arn, Name: 'relay', SecretString: secretString, VersionId: 'v1' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  oauth = await startOAuthPeer();
  client = new SecretsManagerClient({
    region: 'eu-west-1',
    endpoint: `http://127.0.0.1:${port}`,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
});
afterAll(async () => {
  client?.destroy();
  await new Promise((resolve) => server?.close(resolve));
  await oauth?.server.stop();
});

describe('a relay or mailbox secret that is not JSON', () => {
  it.each([
    ['a bare password', 'hunter2-Sekr3t'],
    ['JSON cut short', '{"username":"relay","password":"hunter2-Sekr3t'],
    ['key=value text', 'password=hunter2-Sekr3t'],
  ])('is refused naming the secret and what is wrong, never quoting it (%s)', async (_name, value) => {
    secretString = value;
    const source = createSecretsManagerCredentials('relay', toMailCredentials, { maxAgeSeconds: 0, client });

    const error = (await source.get().catch((e: unknown) => e)) as Error;

    expect(error).toBeInstanceOf(Error);
    expect(error.message).toContain('relay');
    expect(error.message).toMatch(/JSON/);
    for (let i = 0; i + 4 <= 'hunter2-Sekr3t'.length; i += 1) {
      expect(error.message).not.toContain('hunter2-Sekr3t'.slice(i, i + 4));
    }
    expect(JSON.stringify(error, Object.getOwnPropertyNames(error))).not.toContain('hunt');
  });

  it('is read as it is once it is JSON', async () => {
    secretString = JSON.stringify({ username: 'relay', password: 'hunter2-Sekr3t' });
    const source = createSecretsManagerCredentials('relay', toMailCredentials, { maxAgeSeconds: 0, client });
    expect(await source.get()).toEqual({ type: 'password', username: 'relay', password: 'hunter2-Sekr3t' });
  });
});

describe('a refresh token the provider rotates, with the secret in Secrets Manager', () => {
  const fast = { endpoint: { timeoutMs: 3000, backoffMs: 50 } };
  const mailboxSecret = () =>
    createSecretsManagerCredentials('relay', toMailCredentials, { maxAgeSeconds: 300, client });

  it('is stored as a new version of the secret, other fields kept; the next container signs in with it', async () => {
    // Prepare: the secret holds the refresh token the provider honours now; it rotates it on every use.
    const stored = { ...oauth.secrets.refreshToken, refreshToken: oauth.server.refreshTokens[0] };
    secretString = JSON.stringify(stored);
    written.length = 0;
    const start = oauth.server.requests.length;

    // Act: one container exchanges it; a second one, started after, reads the secret and exchanges what it holds.
    const first = await createMailLoginSource(mailboxSecret(), fast).get();
    const second = await createMailLoginSource(mailboxSecret(), fast).get();

    // Assess
    expect(written).toHaveLength(2);
    const versions = written.map((text) => JSON.parse(text) as Record<string, unknown>);
    expect(versions[0]).toEqual({ ...stored, refreshToken: expect.any(String) });
    expect(versions[0]?.refreshToken).not.toBe(stored.refreshToken);
    expect(versions[1]?.refreshToken).toBe(oauth.server.refreshTokens[0]);
    expect(oauth.server.requests.slice(start)).toEqual([
      { grantType: 'refresh_token', outcome: 'issued' },
      { grantType: 'refresh_token', outcome: 'issued' },
    ]);
    expect([first, second].every((login) => 'accessToken' in login)).toBe(true);
  });

  it('refuses a change that would leave the secret unusable, and writes nothing', async () => {
    secretString = JSON.stringify(oauth.secrets.refreshToken);
    written.length = 0;

    const failed = await mailboxSecret()
      .update({ refreshToken: '' })
      .catch((error: unknown) => error);

    expect(failed).toBeInstanceOf(CredentialsError);
    expect((failed as CredentialsError).problems).toEqual(['refreshToken must be a non-empty string']);
    expect(written).toEqual([]);
  });
});
