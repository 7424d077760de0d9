import { createServer, type Server } from 'node:http';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSecretsManagerCredentials } from '#aws/secrets-credentials.js';
import { toMailCredentials } from '#core/credential-source.js';

// A Secrets Manager endpoint on loopback answering GetSecretValue (JSON 1.1 protocol) with `secretString`.
let secretString = '';
let server: Server;
let client: SecretsManagerClient;

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(
        JSON.stringify({
          ARN: 'arn:aws:secretsmanager:eu-west-1:1:secret:relay',
          Name: 'relay',
          SecretString: secretString,
          VersionId: 'v1',
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  client = new SecretsManagerClient({
    region: 'eu-west-1',
    endpoint: `http://127.0.0.1:${port}`,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
});
afterAll(async () => {
  client?.destroy();
  await new Promise((resolve) => server?.close(resolve));
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
