import { PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SecretsProvider } from '@aws-lambda-powertools/parameters/secrets';
import { CredentialsError, type WritableCredentialSource } from '#core/credential-source.js';
import { boundedClientConfig } from './clients.js';

/**
 * Credentials from a Secrets Manager secret (JSON), through Powertools parameters with a cache of `maxAgeSeconds`.
 * `refresh` forces a fetch, so that after an authentication failure a rotated secret is read at once. `update`
 * writes changed fields (a rotated refresh token) as a new version of the secret, keeping every other field; it
 * needs `secretsmanager:PutSecretValue` on this secret, which the stack grants only where a secret is marked so.
 */
export function createSecretsManagerCredentials<T>(
  secretId: string,
  toCredentials: (value: unknown, secretId: string) => T,
  options: { maxAgeSeconds: number; client?: SecretsManagerClient },
): WritableCredentialSource<T> {
  // Bounded as every AWS client is: a Secrets Manager that never answers cannot hold a send or a poll.
  const client = options.client ?? new SecretsManagerClient(boundedClientConfig());
  const provider = new SecretsProvider({ awsSdkV3Client: client });
  const read = async (refresh: boolean): Promise<unknown> => {
    const text = await provider.get(secretId, { maxAge: options.maxAgeSeconds, forceFetch: refresh });
    try {
      return typeof text === 'string' ? JSON.parse(text) : text;
    } catch {
      // Parsed here, not by the provider's json transform: the parser's message quotes the start of the text, and a
      // password stored bare would reach the log, the dead-letter queue and the events.
      throw new CredentialsError(secretId, ['must be a JSON object; the secret string is not valid JSON']);
    }
  };
  return {
    async get({ refresh = false } = {}) {
      return toCredentials(await read(refresh), secretId);
    },
    async update(changes) {
      const current = await read(true);
      const next = { ...(typeof current === 'object' && current !== null ? current : {}), ...changes };
      toCredentials(next, secretId);
      await client.send(new PutSecretValueCommand({ SecretId: secretId, SecretString: JSON.stringify(next) }));
      await read(true);
    },
  };
}
