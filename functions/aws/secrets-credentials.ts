import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SecretsProvider } from '@aws-lambda-powertools/parameters/secrets';
import type { CredentialSource } from '#core/credential-source.js';

/**
 * Credentials from a Secrets Manager secret (JSON), through Powertools parameters with a cache of `maxAgeSeconds`.
 * `refresh` forces a fetch, so that after an authentication failure a rotated secret is read at once.
 */
export function createSecretsManagerCredentials<T>(
  secretId: string,
  toCredentials: (value: unknown, secretId: string) => T,
  options: { maxAgeSeconds: number; client?: SecretsManagerClient },
): CredentialSource<T> {
  const provider = new SecretsProvider(options.client ? { awsSdkV3Client: options.client } : {});
  return {
    async get({ refresh = false } = {}) {
      const value = await provider.get(secretId, { transform: 'json', maxAge: options.maxAgeSeconds, forceFetch: refresh });
      return toCredentials(value, secretId);
    },
  };
}
